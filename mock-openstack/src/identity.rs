//! Keystone v3: version discovery, password/token authentication with
//! project, domain, system or no scope, and a few read-only lookups.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{HeaderMap, HeaderValue, StatusCode};
use os_wire::time::rfc3339_micros;
use os_wire::{ApiError, Service};
use serde_json::{json, Value};

use crate::defaults::{self, User, DOMAIN_ID, DOMAIN_NAME, PROJECTS, USERS};
use crate::error::ApiResult;
use crate::http::{json_body, ok, with_status};
use crate::state::{parse_query, State, Token};

const S: Service = Service::Identity;

pub fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/identity", get(versions))
        .route("/identity/v3", get(version))
        .route(
            "/identity/v3/auth/tokens",
            get(validate).post(issue).delete(revoke),
        )
        .route("/identity/v3/auth/projects", get(my_projects))
        .route("/identity/v3/users/{id}/projects", get(user_projects))
        .route("/identity/v3/projects", get(list_projects))
        .route("/identity/v3/projects/{id}", get(show_project))
        .route("/identity/v3/services", get(list_services))
        .route("/identity/v3/endpoints", get(list_endpoints))
        .route("/identity/v3/regions", get(list_regions))
        .route("/identity/v3/domains", get(list_domains))
        .route("/identity/v3/domains/{id}", get(show_domain))
}

fn version_obj(base: &str) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/identity/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    })
}

async fn versions(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> Response {
    let base = st.base_url(&headers);
    with_status(
        StatusCode::MULTIPLE_CHOICES,
        json!({"versions": {"values": [version_obj(&base)]}}),
    )
}

async fn version(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> Response {
    ok(json!({"version": version_obj(&st.base_url(&headers))}))
}

fn unauthorized(msg: &str) -> ApiError {
    ApiError::new(S, StatusCode::UNAUTHORIZED, msg)
}

/// Finds a domain reference `{id}` or `{name}`; only Default exists.
fn domain_ok(d: Option<&Value>) -> bool {
    match d {
        None => false,
        Some(d) => {
            d.get("id").and_then(Value::as_str) == Some(DOMAIN_ID)
                || d.get("name").and_then(Value::as_str) == Some(DOMAIN_NAME)
        }
    }
}

fn find_user(u: &Value) -> ApiResult<&'static User> {
    if let Some(id) = u.get("id").and_then(Value::as_str) {
        return USERS
            .iter()
            .find(|x| x.id == id)
            .ok_or_else(|| unauthorized("The request you have made requires authentication."));
    }
    let name = u
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request(S, "Expecting to find id or name in user"))?;
    if !domain_ok(u.get("domain")) {
        return Err(unauthorized(
            "The request you have made requires authentication.",
        ));
    }
    USERS
        .iter()
        .find(|x| x.name == name)
        .ok_or_else(|| unauthorized("The request you have made requires authentication."))
}

fn find_project(p: &Value) -> ApiResult<(&'static str, &'static str)> {
    let found = if let Some(id) = p.get("id").and_then(Value::as_str) {
        PROJECTS.iter().find(|x| x.0 == id)
    } else {
        let name = p
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad_request(S, "Expecting to find id or name in project"))?;
        if !domain_ok(p.get("domain")) {
            return Err(unauthorized("Could not find project in the given domain."));
        }
        PROJECTS.iter().find(|x| x.1 == name)
    };
    found
        .copied()
        .ok_or_else(|| unauthorized("Could not find project."))
}

async fn issue(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let v = json_body(S, &body)?;
    let auth = v
        .get("auth")
        .ok_or_else(|| ApiError::bad_request(S, "Expecting to find auth in request body"))?;
    let identity = auth
        .get("identity")
        .ok_or_else(|| ApiError::bad_request(S, "Expecting to find identity in auth"))?;
    let methods: Vec<String> = identity
        .get("methods")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|m| m.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let user: &'static User = if methods.iter().any(|m| m == "password") {
        let u = identity
            .pointer("/password/user")
            .ok_or_else(|| ApiError::bad_request(S, "Expecting to find user in password"))?;
        let user = find_user(u)?;
        if u.get("password").and_then(Value::as_str) != Some(defaults::PASSWORD) {
            return Err(unauthorized(
                "The request you have made requires authentication.",
            ));
        }
        user
    } else if methods.iter().any(|m| m == "token") {
        let id = identity
            .pointer("/token/id")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad_request(S, "Expecting to find id in token"))?;
        st.token(id)
            .map(|t| t.user)
            .ok_or_else(|| unauthorized("Could not find token."))?
    } else {
        return Err(unauthorized(
            "Attempted to authenticate with an unsupported method.",
        ));
    };

    let scope = auth.get("scope");
    let (project, domain_scoped, roles): (Option<(&str, &str)>, bool, Vec<&'static str>) =
        match scope {
            Some(s) if s.get("project").is_some() => {
                let p = find_project(s.get("project").unwrap_or(&Value::Null))?;
                let roles = user
                    .projects
                    .iter()
                    .find(|(pid, _)| *pid == p.0)
                    .map(|(_, r)| r.to_vec())
                    .ok_or_else(|| {
                        unauthorized(&format!(
                            "User {} has no access to project {}",
                            user.id, p.0
                        ))
                    })?;
                (Some(p), false, roles)
            }
            Some(s) if s.get("domain").is_some() => {
                if !domain_ok(s.get("domain")) || user.domain_roles.is_empty() {
                    return Err(unauthorized("User has no access to domain"));
                }
                (None, true, user.domain_roles.to_vec())
            }
            Some(s) if s.get("system").is_some() => {
                if user.domain_roles.is_empty() {
                    return Err(unauthorized("User has no access to the system"));
                }
                (None, false, user.domain_roles.to_vec())
            }
            _ => (None, false, vec![]),
        };

    let now = cp_model::clock::utc_now();
    let ttl = chrono::Duration::seconds(st.cfg.token_ttl_s.min(10 * 365 * 86400) as i64);
    let token = Token {
        user,
        project,
        domain_scoped,
        roles,
        methods,
        issued_at: now,
        expires_at: now + ttl,
        audit_id: uuid::Uuid::new_v4().simple().to_string()[..22].to_string(),
    };
    let nocatalog = parse_query(raw.as_deref())
        .iter()
        .any(|(k, _)| k == "nocatalog");
    let body = token_body(&st, &headers, &token, !nocatalog);
    let id = st.store_token(token);
    let mut resp = with_status(StatusCode::CREATED, body);
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-subject-token", v);
    }
    Ok(resp)
}

fn token_body(st: &State, headers: &HeaderMap, t: &Token, with_catalog: bool) -> Value {
    let domain = json!({"id": DOMAIN_ID, "name": DOMAIN_NAME});
    let mut tok = json!({
        "methods": t.methods,
        "expires_at": rfc3339_micros(t.expires_at),
        "issued_at": rfc3339_micros(t.issued_at),
        "audit_ids": [t.audit_id],
        "user": {"id": t.user.id, "name": t.user.name, "domain": domain, "password_expires_at": null},
        "is_domain": false,
    });
    if !t.roles.is_empty() {
        tok["roles"] = t
            .roles
            .iter()
            .map(|r| json!({"id": defaults::role_id(r), "name": r}))
            .collect();
    }
    if let Some((pid, pname)) = t.project {
        tok["project"] = json!({"id": pid, "name": pname, "domain": domain});
    } else if t.domain_scoped {
        tok["domain"] = domain.clone();
    } else if !t.roles.is_empty() {
        tok["system"] = json!({"all": true});
    }
    let scoped = !t.roles.is_empty();
    if with_catalog && scoped {
        tok["catalog"] = catalog(&st.base_url(headers), &st.cfg.region);
    } else if with_catalog {
        tok["catalog"] = json!([]);
    }
    json!({ "token": tok })
}

/// The service catalog, every URL under `base`.
pub fn catalog(base: &str, region: &str) -> Value {
    let entry = |ty: &str, name: &str, path: &str, id: &str| {
        json!({
            "type": ty, "name": name, "id": format!("{id}0000000000000000000000000000"),
            "endpoints": [{
                "id": format!("{id}1111111111111111111111111111"),
                "interface": "public", "region": region, "region_id": region,
                "url": format!("{base}{path}"),
            }],
        })
    };
    json!([
        entry("identity", "keystone", "/identity", "1d1d"),
        entry("compute", "nova", "/compute/v2.1", "c0c0"),
        entry("image", "glance", "/image", "1a1a"),
        entry("network", "neutron", "/network", "2e2e"),
        entry("placement", "placement", "/placement", "3b3b"),
    ])
}

async fn validate(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    let subject = headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let t = st
        .token(&subject)
        .ok_or_else(|| ApiError::not_found(S, "Could not find token."))?;
    let mut resp = ok(token_body(&st, &headers, &t, true));
    if let Ok(v) = HeaderValue::from_str(&subject) {
        resp.headers_mut().insert("x-subject-token", v);
    }
    Ok(resp)
}

async fn revoke(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    let subject = headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if st.revoke_token(subject) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(S, "Could not find token."))
    }
}

fn project_obj(base: &str, id: &str, name: &str) -> Value {
    json!({
        "id": id, "name": name, "domain_id": DOMAIN_ID, "enabled": true,
        "description": "", "is_domain": false, "parent_id": DOMAIN_ID, "tags": [],
        "links": {"self": format!("{base}/identity/v3/projects/{id}")},
    })
}

fn projects_of(st: &State, headers: &HeaderMap, user_id: &str) -> Value {
    let base = st.base_url(headers);
    let list: Vec<Value> = USERS
        .iter()
        .filter(|u| u.id == user_id)
        .flat_map(|u| u.projects.iter())
        .filter_map(|(pid, _)| PROJECTS.iter().find(|p| p.0 == *pid))
        .map(|(id, name)| project_obj(&base, id, name))
        .collect();
    json!({"projects": list, "links": {"self": null, "next": null, "previous": null}})
}

async fn my_projects(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> ApiResult<Response> {
    let ctx = st.authenticate(&headers, S)?;
    Ok(ok(projects_of(&st, &headers, ctx.user_id)))
}

async fn user_projects(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let ctx = st.authenticate(&headers, S)?;
    if !ctx.is_admin && ctx.user_id != id {
        return Err(ApiError::forbidden(
            S,
            "You are not authorized to perform the requested action.",
        ));
    }
    Ok(ok(projects_of(&st, &headers, &id)))
}

async fn list_projects(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let ctx = st.authenticate(&headers, S)?;
    let query = parse_query(raw.as_deref());
    let name = crate::state::q(&query, "name");
    let base = st.base_url(&headers);
    let list: Vec<Value> = PROJECTS
        .iter()
        .filter(|(id, _)| {
            ctx.is_admin
                || USERS
                    .iter()
                    .any(|u| u.id == ctx.user_id && u.projects.iter().any(|p| p.0 == *id))
        })
        .filter(|(_, n)| name.is_none_or(|x| x == *n))
        .map(|(id, n)| project_obj(&base, id, n))
        .collect();
    Ok(ok(
        json!({"projects": list, "links": {"self": null, "next": null, "previous": null}}),
    ))
}

async fn show_project(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    let base = st.base_url(&headers);
    PROJECTS
        .iter()
        .find(|p| p.0 == id)
        .map(|(id, n)| ok(json!({"project": project_obj(&base, id, n)})))
        .ok_or_else(|| ApiError::not_found(S, format!("Could not find project: {id}.")))
}

fn domain_obj() -> Value {
    json!({"id": DOMAIN_ID, "name": DOMAIN_NAME, "enabled": true, "description": "The default domain", "tags": [], "links": {}})
}

async fn list_domains(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    Ok(ok(json!({"domains": [domain_obj()], "links": {}})))
}

async fn show_domain(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    if id == DOMAIN_ID || id == DOMAIN_NAME {
        Ok(ok(json!({"domain": domain_obj()})))
    } else {
        Err(ApiError::not_found(
            S,
            format!("Could not find domain: {id}."),
        ))
    }
}

/// `/v3/services` and `/v3/endpoints`, flattened from the catalog.
async fn list_services(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    let cat = catalog(&st.base_url(&headers), &st.cfg.region);
    let list: Vec<Value> = cat
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| json!({"id": e["id"], "type": e["type"], "name": e["name"], "enabled": true, "description": ""}))
                .collect()
        })
        .unwrap_or_default();
    Ok(ok(
        json!({"services": list, "links": {"self": null, "next": null, "previous": null}}),
    ))
}

async fn list_endpoints(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    let cat = catalog(&st.base_url(&headers), &st.cfg.region);
    let list: Vec<Value> = cat
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    let ep = &e["endpoints"][0];
                    json!({"id": ep["id"], "service_id": e["id"], "interface": "public",
                        "region": ep["region"], "region_id": ep["region_id"], "url": ep["url"], "enabled": true})
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(ok(
        json!({"endpoints": list, "links": {"self": null, "next": null, "previous": null}}),
    ))
}

async fn list_regions(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> ApiResult<Response> {
    st.authenticate(&headers, S)?;
    Ok(ok(
        json!({"regions": [{"id": st.cfg.region, "description": "", "parent_region_id": null}],
        "links": {"self": null, "next": null, "previous": null}}),
    ))
}
