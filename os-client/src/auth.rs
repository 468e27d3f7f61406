//! Keystone v3 password authentication: a scoped token and its catalog.
//!
//! [`authenticate`] does one `POST <auth_url>/v3/auth/tokens` and returns the
//! `X-Subject-Token` and the service catalog. The auth URL may be given with
//! or without its `/v3` suffix, as the OpenStack tools accept both.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ClientError;
use crate::http_util::{api_error, parse_json};
use crate::transport::SharedTransport;

/// Password credentials scoped to a project, as clouds.yaml spells them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub auth_url: String,
    pub username: String,
    /// Never serialized into results files.
    #[serde(skip_serializing, default)]
    pub password: String,
    #[serde(default)]
    pub project_name: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    /// Domain of the user (name); `Default` when neither name nor id is given.
    #[serde(default)]
    pub user_domain_name: Option<String>,
    #[serde(default)]
    pub user_domain_id: Option<String>,
    #[serde(default)]
    pub project_domain_name: Option<String>,
    #[serde(default)]
    pub project_domain_id: Option<String>,
    #[serde(default)]
    pub region_name: Option<String>,
    /// Catalog interface: `public` (default), `internal` or `admin`.
    #[serde(default)]
    pub interface: Option<String>,
}

impl Credentials {
    /// DevStack-style credentials (domain `Default`) for `auth_url`.
    pub fn password(
        auth_url: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
        project_name: impl Into<String>,
    ) -> Self {
        Self {
            auth_url: auth_url.into(),
            username: username.into(),
            password: password.into(),
            project_name: Some(project_name.into()),
            ..Self::default()
        }
    }

    /// The same credentials against another auth URL (another entry point).
    pub fn with_auth_url(&self, auth_url: impl Into<String>) -> Self {
        Self {
            auth_url: auth_url.into(),
            ..self.clone()
        }
    }

    /// `<auth_url>/v3/auth/tokens`, accepting auth URLs with or without `/v3`.
    pub fn tokens_url(&self) -> String {
        let base = self.auth_url.trim_end_matches('/');
        if base.ends_with("/v3") {
            format!("{base}/auth/tokens")
        } else {
            format!("{base}/v3/auth/tokens")
        }
    }

    /// The auth URL without a trailing `/v3` or `/identity`: the endpoint's base
    /// (where `/mock/v1/info` lives on the mock).
    pub fn base_url(&self) -> String {
        let mut base = self.auth_url.trim_end_matches('/');
        for suffix in ["/v3", "/identity"] {
            if let Some(b) = base.strip_suffix(suffix) {
                base = b.trim_end_matches('/');
            }
        }
        base.to_string()
    }

    fn domain(name: &Option<String>, id: &Option<String>) -> Value {
        match (id, name) {
            (Some(id), _) => json!({ "id": id }),
            (None, Some(name)) => json!({ "name": name }),
            (None, None) => json!({ "id": "default" }),
        }
    }

    /// The JSON body of the password-auth request.
    pub fn auth_body(&self) -> Value {
        let user = json!({
            "name": self.username,
            "password": self.password,
            "domain": Self::domain(&self.user_domain_name, &self.user_domain_id),
        });
        let mut auth = json!({
            "identity": { "methods": ["password"], "password": { "user": user } }
        });
        let project = match (&self.project_id, &self.project_name) {
            (Some(id), _) => Some(json!({ "id": id })),
            (None, Some(name)) => Some(json!({
                "name": name,
                "domain": Self::domain(&self.project_domain_name, &self.project_domain_id),
            })),
            (None, None) => None,
        };
        if let Some(p) = project {
            auth["scope"] = json!({ "project": p });
        }
        json!({ "auth": auth })
    }
}

/// One endpoint of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub interface: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub region_id: Option<String>,
    pub url: String,
}

/// One service of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    #[serde(rename = "type")]
    pub service_type: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

/// The service catalog of a token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    pub services: Vec<CatalogEntry>,
}

impl Catalog {
    /// The URL of `service_type` at `interface`, in `region` when given
    /// (matched on `region_id`, falling back to `region`, as keystoneauth does).
    pub fn endpoint(
        &self,
        service_type: &str,
        interface: &str,
        region: Option<&str>,
    ) -> Result<String, ClientError> {
        self.services
            .iter()
            .filter(|s| s.service_type == service_type)
            .flat_map(|s| s.endpoints.iter())
            .find(|e| {
                e.interface == interface
                    && region.is_none_or(|r| {
                        e.region_id.as_deref() == Some(r) || e.region.as_deref() == Some(r)
                    })
            })
            .map(|e| e.url.trim_end_matches('/').to_string())
            .ok_or_else(|| ClientError::NoEndpoint {
                service_type: service_type.to_string(),
                interface: interface.to_string(),
                region: region.map(str::to_string),
            })
    }
}

/// A token with what came with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub value: String,
    /// RFC 3339, as Keystone sent it.
    pub expires_at: Option<String>,
    pub catalog: Catalog,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub roles: Vec<String>,
}

/// Authenticates with a password and returns the scoped token and catalog.
///
/// Errors: [`ClientError::Transport`] when the URL cannot be reached,
/// [`ClientError::Auth`] on 401/403, [`ClientError::Malformed`] when the
/// answer is not a Keystone token.
pub async fn authenticate(
    transport: &SharedTransport,
    creds: &Credentials,
) -> Result<Token, ClientError> {
    let url = creds.tokens_url();
    let body = serde_json::to_vec(&creds.auth_body())
        .map_err(|e| ClientError::Config(format!("cannot encode the auth request: {e}")))?;
    let req = http::Request::post(&url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .body(Bytes::from(body))
        .map_err(|_| ClientError::Url(url.clone()))?;
    let resp = transport.call(req).await?;
    let status = resp.status().as_u16();
    if status == 401 || status == 403 {
        let message = match api_error(&resp) {
            ClientError::Api { message, .. } => message,
            other => other.to_string(),
        };
        return Err(ClientError::Auth {
            auth_url: creds.auth_url.clone(),
            message,
        });
    }
    if !(200..300).contains(&status) {
        return Err(api_error(&resp));
    }
    let value = resp
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| ClientError::malformed(&url, "no X-Subject-Token header"))?;
    let body: Value = parse_json(&url, resp.body())?;
    let token = body
        .get("token")
        .ok_or_else(|| ClientError::malformed(&url, "no \"token\" object"))?;
    let catalog = match token.get("catalog") {
        Some(c) => Catalog {
            services: serde_json::from_value(c.clone())
                .map_err(|e| ClientError::malformed(&url, format!("bad catalog: {e}")))?,
        },
        None => Catalog::default(),
    };
    let str_at = |v: &Value, path: &[&str]| -> Option<String> {
        let mut cur = v;
        for p in path {
            cur = cur.get(*p)?;
        }
        cur.as_str().map(str::to_string)
    };
    let roles = token
        .get("roles")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(Token {
        value,
        expires_at: str_at(token, &["expires_at"]),
        catalog,
        project_id: str_at(token, &["project", "id"]),
        user_id: str_at(token, &["user", "id"]),
        roles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_url_and_base_url_accept_both_forms() {
        let c = Credentials::password("http://h:1/identity", "u", "p", "demo");
        assert_eq!(c.tokens_url(), "http://h:1/identity/v3/auth/tokens");
        assert_eq!(c.base_url(), "http://h:1");
        let c = c.with_auth_url("http://h:1/identity/v3/");
        assert_eq!(c.tokens_url(), "http://h:1/identity/v3/auth/tokens");
        assert_eq!(c.base_url(), "http://h:1");
    }

    #[test]
    fn catalog_matches_type_interface_region() {
        let cat: Vec<CatalogEntry> = serde_json::from_value(json!([
            {"type": "compute", "endpoints": [
                {"interface": "public", "region": "R1", "region_id": "R1", "url": "http://a/compute/v2.1/"},
                {"interface": "public", "region": "R2", "url": "http://b/compute/v2.1"}
            ]}
        ]))
        .unwrap();
        let cat = Catalog { services: cat };
        assert_eq!(
            cat.endpoint("compute", "public", Some("R2")).unwrap(),
            "http://b/compute/v2.1"
        );
        assert_eq!(
            cat.endpoint("compute", "public", None).unwrap(),
            "http://a/compute/v2.1"
        );
        assert!(matches!(
            cat.endpoint("image", "public", None),
            Err(ClientError::NoEndpoint { .. })
        ));
    }

    #[test]
    fn auth_body_defaults_domains() {
        let b = Credentials::password("x", "demo", "secret", "demo").auth_body();
        assert_eq!(
            b["auth"]["identity"]["password"]["user"]["domain"]["id"],
            "default"
        );
        assert_eq!(b["auth"]["scope"]["project"]["name"], "demo");
    }
}
