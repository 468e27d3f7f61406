//! The agent's HTTP face: the OpenStack subset (same path layout as the
//! mock) and the agent-to-agent API under `/p2p/v1`.
//!
//! This module holds the router, the request context (who is calling) and
//! the error helpers; the handlers live in one module per job. Every
//! handler that can fail returns `Result<Response, ApiError>`, so an error
//! always leaves in the service's OpenStack envelope.

mod discovery;
mod hosts;
mod identity;
mod keypairs;
mod peer;
mod proxy;
mod servers;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use os_wire::{ApiError, Service};
use serde_json::{json, Value};
use tracing::Instrument;

use crate::cloudlet::{ProjectRef, Svc, REQUEST_ID};
use crate::core::{
    now, project_of, BootPlan, Core, NotPlaced, Outcome, P2P_AUTH, PROJECT_PLACEHOLDER,
};
use crate::error::CallError;
use crate::listing::{self, ListQuery};
use crate::metrics::Metrics;
use crate::peer_sig;
use crate::protocol::{
    self, routes, BootAccepted, BootReplica, Gone, KeypairCopy, Lost, PeerRequest, ReadKind,
    StatusQuery, StatusReport, Superseded,
};
use crate::token::{self, Claims};
use crate::{idroute, view};
use crate::{input, policy};

type S = State<Arc<Core>>;

fn fault(service: Service, status: u16, msg: impl Into<String>) -> ApiError {
    ApiError::new(
        service,
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        msg,
    )
}

fn call_fault(service: Service, e: CallError) -> ApiError {
    match e {
        CallError::Status { status, message } => fault(service, status, message),
        other if other.is_unreachable() => {
            fault(service, 503, format!("cloudlet unreachable: {other}"))
        }
        other => fault(service, 502, other.to_string()),
    }
}

fn json_resp(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

/// The base URL users reach this agent at: the configured public URL, else
/// the request's Host.
fn base_of(core: &Core, headers: &HeaderMap) -> String {
    if let Some(u) = &core.cfg.public_url {
        return u.trim_end_matches('/').to_string();
    }
    headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("http://{h}"))
        .unwrap_or_else(|| core.self_url.clone())
}

fn rid(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Who is calling, from `X-Auth-Token`.
struct Ctx {
    /// Shared with the token cache (not copied per request).
    claims: Arc<Claims>,
    project: ProjectRef,
    token: String,
    base: String,
    rid: String,
}

fn ctx(core: &Core, headers: &HeaderMap, service: Service) -> Result<Ctx, ApiError> {
    let tok = headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::unauthorized(service))?;
    let claims = core
        .tokens
        .verify(tok, &core.secret, now())
        .map_err(|_| ApiError::unauthorized(service))?;
    let project = project_of(&claims)
        .ok_or_else(|| fault(service, 403, "A project-scoped token is required."))?;
    Ok(Ctx {
        claims,
        project,
        token: tok.to_string(),
        base: base_of(core, headers),
        rid: rid(headers),
    })
}

/// Checks the agent-to-agent signature over method, path, query, body
/// and user token, its time window and its nonce ([`peer_sig`]).
pub(crate) fn check_peer(
    core: &Core,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), ApiError> {
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    let parts = peer_sig::Parts {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query(),
        body,
        user_token: header("x-auth-token"),
    };
    let verdict = match core.peer_verifier.lock() {
        Ok(mut v) => v.verify(now(), header(P2P_AUTH), &parts),
        Err(_) => Err(peer_sig::Refusal::Saturated),
    };
    verdict.map_err(|r| {
        Metrics::inc(&core.metrics.peer_refused);
        tracing::warn!(path = %uri.path(), refusal = %r, "peer request refused");
        fault(Service::Control, 401, format!("Refused X-P2P-Auth: {r}."))
    })
}

/// Checks the agent-to-agent signature, then the forwarded user token.
fn peer_ctx(
    core: &Core,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Ctx, ApiError> {
    check_peer(core, method, uri, headers, body)?;
    ctx(core, headers, Service::Control)
}

/// A peer's JSON body as `T`; 400 naming `what` when it does not parse.
fn peer_body<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|_| fault(Service::Control, 400, format!("Malformed {what}")))
}

/// Nova's 403 for a failed policy check.
fn forbidden(service: Service, rule: &str) -> ApiError {
    fault(service, 403, policy::policy_message(rule))
}

/// Nova's reading of a boolean query parameter (`strutils.bool_from_string`
/// with default true: an empty value counts as true).
fn truthy(v: &str) -> bool {
    !matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "0" | "false" | "f" | "no" | "n" | "off"
    )
}

/// Whether `id` names the caller's project: its ID at the issuing
/// cloudlet, its name, or its ID on this agent's cloudlet.
async fn is_own_project(core: &Core, c: &Ctx, id: &str) -> bool {
    if c.claims.project_id.as_deref() == Some(id) || c.project.name == id {
        return true;
    }
    matches!(core.cloudlet.token_for(&c.project).await, Ok(t) if t.project_id == id)
}

/// Server objects as the caller sees them: keypair names as the user gave
/// them, and admin-only attributes removed for non-admin callers.
fn scrub_for(claims: &Claims, v: &mut Value) {
    let admin = claims.is_admin();
    let scrub = |s: &mut Value| {
        let user_key = s
            .get("key_name")
            .and_then(Value::as_str)
            .and_then(crate::core::keypairs::user_name_of)
            .map(str::to_string);
        if let Some(k) = user_key {
            s["key_name"] = json!(k);
        }
        if !admin {
            policy::strip_admin_server_fields(s);
        }
    };
    if let Some(s) = v.get_mut("server") {
        scrub(s);
    }
    if let Some(list) = v.get_mut("servers").and_then(Value::as_array_mut) {
        list.iter_mut().for_each(scrub);
    }
}

fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn with_owner(mut r: Response, core: &Core, owner: Option<&str>) -> Response {
    if let Some(o) = owner.and_then(|o| HeaderValue::from_str(o).ok()) {
        r.headers_mut().insert("x-p2p-cloudlet", o);
    }
    if let Ok(a) = HeaderValue::from_str(&core.name) {
        r.headers_mut().insert("x-p2p-agent", a);
    }
    r
}

fn outcome(core: &Core, o: Outcome) -> Response {
    let r = match o.body {
        Some(b) => json_resp(o.status, &b),
        None => o.status.into_response(),
    };
    with_owner(r, core, o.owner.as_deref())
}

pub fn router(core: Arc<Core>) -> Router {
    Router::new()
        .route("/identity", get(discovery::identity_versions))
        .route("/identity/", get(discovery::identity_versions))
        .route("/identity/v3", get(discovery::identity_v3))
        .route("/identity/v3/", get(discovery::identity_v3))
        .route("/identity/v3/auth/tokens", post(identity::auth_tokens))
        .route("/compute", get(discovery::compute_versions))
        .route("/compute/", get(discovery::compute_versions))
        .route("/compute/v2.1", get(discovery::compute_v21))
        .route("/compute/v2.1/", get(discovery::compute_v21))
        .route(
            "/compute/v2.1/servers",
            get(servers::list_brief).post(servers::create_server),
        )
        .route("/compute/v2.1/servers/detail", get(servers::list_detail))
        .route(
            "/compute/v2.1/servers/{id}",
            get(servers::show_server).delete(servers::delete_server),
        )
        .route(
            "/compute/v2.1/servers/{id}/action",
            post(servers::server_action),
        )
        .route(
            "/compute/v2.1/os-keypairs",
            get(keypairs::keypairs_list).post(keypairs::keypair_create),
        )
        .route(
            "/compute/v2.1/os-keypairs/{name}",
            get(keypairs::keypair_show).delete(keypairs::keypair_delete),
        )
        .route(
            "/compute/v2.1/os-hypervisors/{id}",
            get(hosts::hypervisor_show),
        )
        .route(
            "/compute/v2.1/os-hypervisors/{id}/uptime",
            get(hosts::hypervisor_uptime),
        )
        .route("/compute/v2.1/os-aggregates", get(hosts::aggregates_list))
        .route(
            "/compute/v2.1/os-aggregates/{id}",
            get(hosts::aggregate_show),
        )
        .route(
            "/compute/v2.1/os-hypervisors/statistics",
            get(hosts::hypervisor_stats),
        )
        .route(
            "/compute/v2.1/os-hypervisors",
            get(hosts::hypervisors_brief),
        )
        .route(
            "/compute/v2.1/os-hypervisors/detail",
            get(hosts::hypervisors_detail),
        )
        .route("/compute/v2.1/limits", get(hosts::limits))
        .route("/compute/v2.1/os-quota-sets/{project}", get(hosts::quotas))
        .route("/compute/v2.1/{*rest}", any(proxy::proxy_compute))
        .route("/image", get(discovery::image_versions))
        .route("/image/", get(discovery::image_versions))
        .route("/image/{*rest}", any(proxy::proxy_image))
        .route("/network", get(discovery::network_versions))
        .route("/network/", get(discovery::network_versions))
        .route("/network/{*rest}", any(proxy::proxy_network))
        .route("/metrics", get(discovery::metrics))
        .route(routes::BOOT, post(peer::p2p_boot))
        .route(
            routes::SERVER,
            get(peer::p2p_server).delete(peer::p2p_server),
        )
        .route(routes::LOCAL, any(peer::p2p_local))
        .route(routes::READ, get(peer::p2p_read))
        .route(routes::AUTH, post(peer::p2p_auth))
        .route(routes::KNOWN, get(peer::p2p_known))
        .route(routes::VIEW, get(peer::p2p_view))
        .route(routes::SUPERSEDED, post(peer::p2p_superseded))
        .route(routes::REPLICA, post(peer::p2p_replica))
        .route(routes::GONE, post(peer::p2p_gone))
        .route(routes::LOST, post(peer::p2p_lost))
        .route(routes::SERVER_ACTION, post(peer::p2p_server_action))
        .route(routes::KEYPAIR, post(peer::p2p_keypair))
        .route(routes::STATUSES, post(peer::p2p_statuses))
        .fallback(not_found)
        .layer(middleware::from_fn(crate::guard::literal_requests))
        .layer(middleware::from_fn_with_state(core.clone(), request_id))
        .with_state(core)
}

/// `req-<uuid>` drawn from the agent's seeded generator (no OS randomness,
/// so a seeded run repeats exactly).
fn new_request_id(core: &Core) -> String {
    let mut bytes = [0u8; 16];
    if let Ok(mut rng) = core.request_ids.lock() {
        rand::RngCore::fill_bytes(&mut *rng, &mut bytes);
    }
    format!(
        "req-{}",
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    )
}

/// Gives every request an `x-openstack-request-id` (kept when a peer or a
/// client sent one, so one id follows a request across agents), a tracing
/// span (debug level), and echoes the id.
async fn request_id(State(core): S, mut req: Request, next: Next) -> Response {
    Metrics::inc(&core.metrics.requests);
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(|| new_request_id(&core));
    if let Ok(v) = HeaderValue::from_str(&id) {
        req.headers_mut().insert(REQUEST_ID, v);
    }
    // At debug level: building a span with four formatted fields was ~3 %
    // of the agent's CPU per proxied GET at the default `info` level
    // (`perf`, issue 17); a disabled span costs nothing.
    let span = tracing::debug_span!("request", agent = %core.name, request_id = %id, method = %req.method(), path = %req.uri().path());
    let mut resp = next.run(req).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

async fn not_found() -> ApiError {
    fault(Service::Compute, 404, "The resource could not be found.")
}

/// Nova's 404 for a server ID nobody holds.
fn instance_not_found(id: &str) -> ApiError {
    fault(
        Service::Compute,
        404,
        format!("Instance {id} could not be found."),
    )
}

/// The global ID in a peer's path, or Nova's 404.
fn global_id(id: &str) -> Result<uuid::Uuid, ApiError> {
    idroute::parse(id).ok_or_else(|| instance_not_found(id))
}
