//! `POST /identity/v3/auth/tokens`: the user authenticates at the own
//! cloudlet and gets a federation token valid at every agent.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use bytes::Bytes;
use os_wire::{ApiError, Service};
use serde_json::{json, Value};

use super::*;

fn catalog(base: &str, region: &str) -> Value {
    let entry = |kind: &str, name: &str, url: String| {
        json!({"type": kind, "name": name, "id": format!("{kind}-p2p"),
            "endpoints": [{"id": format!("{kind}-public"), "interface": "public", "region": region, "region_id": region, "url": url}]})
    };
    json!([
        entry("identity", "keystone", format!("{base}/identity")),
        entry("compute", "nova", format!("{base}/compute/v2.1")),
        entry("image", "glance", format!("{base}/image")),
        entry("network", "neutron", format!("{base}/network")),
    ])
}

/// Authenticates the user against the own cloudlet and answers with a
/// federation token (valid at every agent) and a catalog of this agent.
pub(super) async fn auth_tokens(
    State(core): S,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    let resp = core
        .user_auth(body, &rid(&headers))
        .await
        .map_err(|e| call_fault(Service::Identity, e))?;
    if !resp.status().is_success() {
        // Keystone's own refusal (401 and its envelope) passed on.
        let status = resp.status();
        let body = serde_json::from_slice::<Value>(resp.body())
            .unwrap_or_else(|_| ApiError::unauthorized(Service::Identity).body());
        return Ok(json_resp(status, &body));
    }
    let mut v = serde_json::from_slice::<Value>(resp.body()).map_err(|_| {
        fault(
            Service::Identity,
            502,
            "cloudlet returned an unreadable token",
        )
    })?;
    let t = v.get("token").cloned().unwrap_or(Value::Null);
    let s = |p: &str| t.pointer(p).and_then(Value::as_str).map(str::to_string);
    let cloudlet_exp = s("/expires_at")
        .and_then(|e| chrono::DateTime::parse_from_rfc3339(&e).ok())
        .map(|d| d.timestamp())
        .unwrap_or(now() + core.cfg.token_ttl_secs);
    let claims = Claims {
        user_id: s("/user/id").unwrap_or_default(),
        user_name: s("/user/name").unwrap_or_default(),
        user_domain: s("/user/domain/name").unwrap_or_else(|| "Default".into()),
        project_id: s("/project/id"),
        project_name: s("/project/name"),
        project_domain: s("/project/domain/name")
            .or_else(|| s("/project/domain/id").map(|_| "Default".into())),
        roles: t
            .get("roles")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.get("name").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        issued_at: now(),
        expires_at: cloudlet_exp.min(now() + core.cfg.token_ttl_secs),
        issuer: core.name.clone(),
        audit_id: t
            .pointer("/audit_ids/0")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    };
    let fed = token::sign(&claims, &core.secret);
    let base = base_of(&core, &headers);
    if let Some(tok) = v.get_mut("token").and_then(Value::as_object_mut) {
        let exp = chrono::DateTime::from_timestamp(claims.expires_at, 0)
            .unwrap_or_else(cp_model::clock::utc_now);
        tok.insert(
            "expires_at".into(),
            json!(os_wire::time::rfc3339_micros(exp)),
        );
        let nocatalog = uri.query().is_some_and(|q| q.contains("nocatalog"));
        if tok.contains_key("catalog") || (!nocatalog && claims.project_name.is_some()) {
            tok.insert("catalog".into(), catalog(&base, &core.cfg.region));
        }
    }
    let mut r = json_resp(StatusCode::CREATED, &v);
    if let Ok(h) = HeaderValue::from_str(&fed) {
        r.headers_mut().insert("x-subject-token", h);
    }
    Ok(r)
}
