//! The agent's client of its own cloudlet: real OpenStack APIs only
//! (Keystone, Nova, Placement), over [`os_client::Transport`].
//!
//! Identity mapping: the agent keeps one token per project, obtained with
//! its *service account* scoped to that project (the account needs a role,
//! `admin` for capacity and all-tenant listing, in every project), and
//! refreshes it 60 s before expiry or after a 401. The user's own password
//! is only used once, to authenticate the user at their entry agent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use os_client::{HttpRequest, HttpResponse, SharedTransport, TransportError};
use serde_json::{json, Value};

use crate::error::CallError;
use crate::AgentConfig;

/// Public endpoints of one cloudlet, from its catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub identity: String,
    pub compute: String,
    pub image: String,
    pub network: String,
    pub placement: Option<String>,
}

/// A service-account token scoped to one project.
#[derive(Debug, Clone)]
pub struct ScopedToken {
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
    pub project_id: String,
    pub endpoints: Endpoints,
}

/// A project named portably (IDs differ between cloudlets; names do not).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProjectRef {
    pub name: String,
    pub domain: String,
}

/// Which service a call goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Svc {
    Identity,
    Compute,
    Image,
    Network,
    Placement,
}

/// Free capacity and load of a cloudlet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capacity {
    pub free_vcpus: i64,
    pub free_ram_mb: i64,
    pub free_disk_gb: i64,
    pub total_vcpus: i64,
    pub builds_in_flight: u32,
}

pub struct CloudletClient {
    transport: SharedTransport,
    auth_url: String,
    region: String,
    username: String,
    password: String,
    domain: String,
    service_project: ProjectRef,
    timeout: Duration,
    cache: Mutex<HashMap<ProjectRef, Arc<ScopedToken>>>,
}

pub const REQUEST_ID: &str = "x-openstack-request-id";

/// Builds a request; `None` body means empty.
pub fn build_request(
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<Bytes>,
    request_id: &str,
) -> Result<HttpRequest, CallError> {
    let mut b = http::Request::builder()
        .method(method)
        .uri(url)
        .header("accept", "application/json");
    if let Some(t) = token {
        b = b.header("x-auth-token", t);
    }
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    if !request_id.is_empty() {
        b = b.header(REQUEST_ID, request_id);
    }
    b.body(body.unwrap_or_default())
        .map_err(|e| CallError::Transport(TransportError::InvalidRequest(e.to_string())))
}

/// The error of a non-2xx response, with the OpenStack message if any.
pub fn status_error(resp: &HttpResponse) -> CallError {
    let message = serde_json::from_slice::<Value>(resp.body())
        .ok()
        .and_then(|v| os_wire::error::message_of(&v))
        .unwrap_or_else(|| {
            String::from_utf8_lossy(resp.body())
                .chars()
                .take(200)
                .collect()
        });
    CallError::Status {
        status: resp.status().as_u16(),
        message,
    }
}

pub fn json_of(resp: &HttpResponse) -> Result<Value, CallError> {
    if !resp.status().is_success() {
        return Err(status_error(resp));
    }
    serde_json::from_slice(resp.body()).map_err(|e| CallError::BadResponse(e.to_string()))
}

/// Extracts public endpoints for `region` from a Keystone v3 catalog.
pub fn parse_catalog(catalog: &Value, region: &str) -> Endpoints {
    let find = |kind: &str| -> Option<String> {
        let entries = catalog.as_array()?;
        let entry = entries
            .iter()
            .find(|e| e.get("type").and_then(Value::as_str) == Some(kind))?;
        let eps = entry.get("endpoints")?.as_array()?;
        let public = |e: &&Value| e.get("interface").and_then(Value::as_str) == Some("public");
        let in_region = |e: &&Value| {
            e.get("region_id").and_then(Value::as_str) == Some(region)
                || e.get("region").and_then(Value::as_str) == Some(region)
        };
        eps.iter()
            .filter(public)
            .find(in_region)
            .or_else(|| eps.iter().find(public))
            .and_then(|e| e.get("url"))
            .and_then(Value::as_str)
            .map(|u| u.trim_end_matches('/').to_string())
    };
    Endpoints {
        identity: find("identity").unwrap_or_default(),
        compute: find("compute").unwrap_or_default(),
        image: find("image").unwrap_or_default(),
        network: find("network").unwrap_or_default(),
        placement: find("placement"),
    }
}

fn parse_expiry(token_body: &Value) -> i64 {
    token_body
        .pointer("/token/expires_at")
        .and_then(Value::as_str)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp())
        .unwrap_or_else(|| cp_model::clock::unix_secs() + 300)
}

impl CloudletClient {
    pub fn new(cfg: &AgentConfig, transport: SharedTransport) -> Self {
        Self {
            transport,
            auth_url: cfg.cloudlet_auth_url.trim_end_matches('/').to_string(),
            region: cfg.region.clone(),
            username: cfg.service_username.clone(),
            password: cfg.service_password.clone(),
            domain: cfg.service_domain.clone(),
            service_project: ProjectRef {
                name: cfg.service_project.clone(),
                domain: cfg.service_domain.clone(),
            },
            timeout: Duration::from_millis(cfg.request_timeout_ms.max(1)),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The transport this client sends through.
    pub fn transport(&self) -> SharedTransport {
        self.transport.clone()
    }

    pub fn service_project(&self) -> &ProjectRef {
        &self.service_project
    }

    /// One bounded call through the transport.
    pub async fn send(&self, req: HttpRequest) -> Result<HttpResponse, CallError> {
        match tokio::time::timeout(self.timeout, self.transport.call(req)).await {
            Ok(r) => r.map_err(CallError::from),
            Err(_) => Err(CallError::Transport(TransportError::Timeout(self.timeout))),
        }
    }

    /// Forwards a user's `POST /v3/auth/tokens` body to the cloudlet.
    /// Returns the raw response (the caller turns a 201 into a federation
    /// token; errors pass through to the user).
    pub async fn user_auth(
        &self,
        body: Bytes,
        request_id: &str,
    ) -> Result<HttpResponse, CallError> {
        let url = format!("{}/v3/auth/tokens", self.auth_url);
        self.send(build_request(
            Method::POST,
            &url,
            None,
            Some(body),
            request_id,
        )?)
        .await
    }

    /// The service account's token for `project`, cached.
    pub async fn token_for(&self, project: &ProjectRef) -> Result<Arc<ScopedToken>, CallError> {
        let now = cp_model::clock::unix_secs();
        if let Ok(cache) = self.cache.lock() {
            if let Some(t) = cache.get(project) {
                if t.expires_at - 60 > now {
                    return Ok(t.clone());
                }
            }
        }
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": self.username, "domain": {"name": self.domain}, "password": self.password}}},
            "scope": {"project": {"name": project.name, "domain": {"name": project.domain}}}
        }});
        let url = format!("{}/v3/auth/tokens", self.auth_url);
        let resp = self
            .send(build_request(
                Method::POST,
                &url,
                None,
                Some(Bytes::from(body.to_string())),
                "",
            )?)
            .await?;
        if resp.status() != StatusCode::CREATED && resp.status() != StatusCode::OK {
            return Err(status_error(&resp));
        }
        let token = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| CallError::BadResponse("no X-Subject-Token".into()))?
            .to_string();
        let v: Value = serde_json::from_slice(resp.body())
            .map_err(|e| CallError::BadResponse(e.to_string()))?;
        let endpoints = parse_catalog(
            v.pointer("/token/catalog").unwrap_or(&Value::Null),
            &self.region,
        );
        if endpoints.compute.is_empty() {
            return Err(CallError::BadResponse(
                "catalog has no compute endpoint".into(),
            ));
        }
        let scoped = Arc::new(ScopedToken {
            token,
            expires_at: parse_expiry(&v),
            project_id: v
                .pointer("/token/project/id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            endpoints,
        });
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(project.clone(), scoped.clone());
        }
        Ok(scoped)
    }

    pub fn invalidate(&self, project: &ProjectRef) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(project);
        }
    }

    /// Calls `path` (with query) on `svc` for `project`; any HTTP status is
    /// returned as a response. Re-authenticates once after a 401.
    pub async fn call(
        &self,
        project: &ProjectRef,
        svc: Svc,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        request_id: &str,
    ) -> Result<HttpResponse, CallError> {
        for attempt in 0..2 {
            let tok = self.token_for(project).await?;
            let base = match svc {
                Svc::Identity => &tok.endpoints.identity,
                Svc::Compute => &tok.endpoints.compute,
                Svc::Image => &tok.endpoints.image,
                Svc::Network => &tok.endpoints.network,
                Svc::Placement => tok.endpoints.placement.as_ref().ok_or_else(|| {
                    CallError::BadResponse("catalog has no placement endpoint".into())
                })?,
            };
            let url = format!("{base}{path}");
            let resp = self
                .send(build_request(
                    method.clone(),
                    &url,
                    Some(&tok.token),
                    body.clone(),
                    request_id,
                )?)
                .await?;
            if resp.status() == StatusCode::UNAUTHORIZED && attempt == 0 {
                self.invalidate(project);
                continue;
            }
            return Ok(resp);
        }
        Err(CallError::Status {
            status: 401,
            message: "cloudlet rejected the service account".into(),
        })
    }

    /// `call` + 2xx check + JSON.
    pub async fn get_json(
        &self,
        project: &ProjectRef,
        svc: Svc,
        path: &str,
        request_id: &str,
    ) -> Result<Value, CallError> {
        json_of(
            &self
                .call(project, svc, Method::GET, path, None, request_id)
                .await?,
        )
    }

    /// The cloudlet's own endpoints (as seen by the service account).
    pub async fn endpoints(&self) -> Result<Endpoints, CallError> {
        Ok(self
            .token_for(&self.service_project.clone())
            .await?
            .endpoints
            .clone())
    }

    /// Free capacity from Placement (inventories × allocation ratio −
    /// reserved − usage), falling back to Nova's hypervisor statistics;
    /// builds in flight from `servers/detail?status=BUILD&all_tenants=1`.
    pub async fn capacity(&self) -> Result<Capacity, CallError> {
        let p = self.service_project.clone();
        let mut cap = match self.placement_capacity(&p).await {
            Ok(c) => c,
            Err(_) => {
                let v = self
                    .get_json(&p, Svc::Compute, "/os-hypervisors/statistics", "")
                    .await?;
                let s = v.get("hypervisor_statistics").unwrap_or(&Value::Null);
                let n = |k: &str| s.get(k).and_then(Value::as_i64).unwrap_or(0);
                Capacity {
                    free_vcpus: n("vcpus") - n("vcpus_used"),
                    free_ram_mb: n("free_ram_mb"),
                    free_disk_gb: n("free_disk_gb"),
                    total_vcpus: n("vcpus"),
                    builds_in_flight: 0,
                }
            }
        };
        let builds = self
            .get_json(
                &p,
                Svc::Compute,
                "/servers/detail?all_tenants=1&status=BUILD",
                "",
            )
            .await?;
        cap.builds_in_flight = builds
            .get("servers")
            .and_then(Value::as_array)
            .map(|a| u32::try_from(a.len()).unwrap_or(u32::MAX))
            .unwrap_or(0);
        Ok(cap)
    }

    async fn placement_capacity(&self, p: &ProjectRef) -> Result<Capacity, CallError> {
        let rps = self
            .get_json(p, Svc::Placement, "/resource_providers", "")
            .await?;
        let rps = rps
            .get("resource_providers")
            .and_then(Value::as_array)
            .ok_or_else(|| CallError::BadResponse("no resource_providers".into()))?;
        let mut cap = Capacity::default();
        for rp in rps {
            let Some(u) = rp.get("uuid").and_then(Value::as_str) else {
                continue;
            };
            let inv = self
                .get_json(
                    p,
                    Svc::Placement,
                    &format!("/resource_providers/{u}/inventories"),
                    "",
                )
                .await?;
            let usage = self
                .get_json(
                    p,
                    Svc::Placement,
                    &format!("/resource_providers/{u}/usages"),
                    "",
                )
                .await?;
            let free = |class: &str| -> (i64, i64) {
                let Some(i) = inv.pointer(&format!("/inventories/{class}")) else {
                    return (0, 0);
                };
                let total = i.get("total").and_then(Value::as_i64).unwrap_or(0);
                let reserved = i.get("reserved").and_then(Value::as_i64).unwrap_or(0);
                let ratio = i
                    .get("allocation_ratio")
                    .and_then(Value::as_f64)
                    .unwrap_or(1.0);
                let cap = ((total - reserved) as f64 * ratio).floor() as i64;
                let used = usage
                    .pointer(&format!("/usages/{class}"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                ((cap - used).max(0), cap)
            };
            let (v, vt) = free("VCPU");
            cap.free_vcpus += v;
            cap.total_vcpus += vt;
            cap.free_ram_mb += free("MEMORY_MB").0;
            cap.free_disk_gb += free("DISK_GB").0;
        }
        Ok(cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_prefers_public_in_region() {
        let cat = json!([
            {"type": "compute", "endpoints": [
                {"interface": "internal", "region_id": "RegionOne", "url": "http://int/compute/v2.1"},
                {"interface": "public", "region_id": "Other", "url": "http://other/compute/v2.1"},
                {"interface": "public", "region_id": "RegionOne", "url": "http://pub/compute/v2.1/"}]},
            {"type": "image", "endpoints": [{"interface": "public", "region": "RegionOne", "url": "http://pub/image"}]}
        ]);
        let e = parse_catalog(&cat, "RegionOne");
        assert_eq!(e.compute, "http://pub/compute/v2.1");
        assert_eq!(e.image, "http://pub/image");
        assert_eq!(e.placement, None);
        assert_eq!(parse_catalog(&json!("junk"), "R"), Endpoints::default());
    }
}
