//! The agent's HTTP face: the OpenStack subset (same path layout as the
//! mock) and the agent-to-agent API under `/p2p/v1`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use bytes::Bytes;
use os_wire::{ApiError, Service};
use serde_json::{json, Value};
use tracing::Instrument;

use crate::cloudlet::{ProjectRef, Svc, REQUEST_ID};
use crate::core::{
    keypairs, now, project_of, BootPlan, Core, NotPlaced, Outcome, P2P_AUTH, PROJECT_PLACEHOLDER,
};
use crate::error::CallError;
use crate::listing::{self, ListQuery};
use crate::metrics::Metrics;
use crate::peer_sig;
use crate::protocol::{
    self, routes, BootAccepted, BootReplica, Gone, KeypairCopy, KnownServers, PeerRequest,
    ReadKind, Superseded,
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
    claims: Claims,
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
fn check_peer(
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
fn forbidden(service: Service, rule: &str) -> Response {
    fault(service, 403, policy::policy_message(rule)).into_response()
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
            .and_then(keypairs::user_name_of)
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

// ---------------------------------------------------------------- router

pub fn router(core: Arc<Core>) -> Router {
    Router::new()
        .route("/identity", get(identity_versions))
        .route("/identity/", get(identity_versions))
        .route("/identity/v3", get(identity_v3))
        .route("/identity/v3/", get(identity_v3))
        .route("/identity/v3/auth/tokens", post(auth_tokens))
        .route("/compute", get(compute_versions))
        .route("/compute/", get(compute_versions))
        .route("/compute/v2.1", get(compute_v21))
        .route("/compute/v2.1/", get(compute_v21))
        .route("/compute/v2.1/servers", get(list_brief).post(create_server))
        .route("/compute/v2.1/servers/detail", get(list_detail))
        .route(
            "/compute/v2.1/servers/{id}",
            get(show_server).delete(delete_server),
        )
        .route("/compute/v2.1/servers/{id}/action", post(server_action))
        .route(
            "/compute/v2.1/os-keypairs",
            get(keypairs_list).post(keypair_create),
        )
        .route(
            "/compute/v2.1/os-keypairs/{name}",
            get(keypair_show).delete(keypair_delete),
        )
        .route("/compute/v2.1/os-hypervisors/{id}", get(hypervisor_show))
        .route(
            "/compute/v2.1/os-hypervisors/{id}/uptime",
            get(hypervisor_uptime),
        )
        .route("/compute/v2.1/os-aggregates", get(aggregates_list))
        .route("/compute/v2.1/os-aggregates/{id}", get(aggregate_show))
        .route(
            "/compute/v2.1/os-hypervisors/statistics",
            get(hypervisor_stats),
        )
        .route("/compute/v2.1/os-hypervisors", get(hypervisors_brief))
        .route(
            "/compute/v2.1/os-hypervisors/detail",
            get(hypervisors_detail),
        )
        .route("/compute/v2.1/limits", get(limits))
        .route("/compute/v2.1/os-quota-sets/{project}", get(quotas))
        .route("/compute/v2.1/{*rest}", any(proxy_compute))
        .route("/image", get(image_versions))
        .route("/image/", get(image_versions))
        .route("/image/{*rest}", any(proxy_image))
        .route("/network", get(network_versions))
        .route("/network/", get(network_versions))
        .route("/network/{*rest}", any(proxy_network))
        .route("/metrics", get(metrics))
        .route(routes::BOOT, post(p2p_boot))
        .route(routes::SERVER, get(p2p_server).delete(p2p_server))
        .route(routes::LOCAL, any(p2p_local))
        .route(routes::READ, get(p2p_read))
        .route(routes::AUTH, post(p2p_auth))
        .route(routes::KNOWN, get(p2p_known))
        .route(routes::VIEW, get(p2p_view))
        .route(routes::SUPERSEDED, post(p2p_superseded))
        .route(routes::REPLICA, post(p2p_replica))
        .route(routes::GONE, post(p2p_gone))
        .route(routes::SERVER_ACTION, post(p2p_server_action))
        .route(routes::KEYPAIR, post(p2p_keypair))
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
/// span, and echoes the id.
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
    let span = tracing::info_span!("request", agent = %core.name, request_id = %id, method = %req.method(), path = %req.uri().path());
    let mut resp = next.run(req).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

async fn not_found() -> ApiError {
    fault(Service::Compute, 404, "The resource could not be found.")
}

// ---------------------------------------------------------------- discovery

const UPDATED: &str = "2026-01-01T00:00:00Z";

fn keystone_v3(base: &str) -> Value {
    json!({"id": "v3.14", "status": "stable", "updated": UPDATED,
        "links": [{"rel": "self", "href": format!("{base}/identity/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]})
}

async fn identity_versions(State(core): S, headers: HeaderMap) -> Response {
    let base = base_of(&core, &headers);
    json_resp(
        StatusCode::MULTIPLE_CHOICES,
        &json!({"versions": {"values": [keystone_v3(&base)]}}),
    )
}

async fn identity_v3(State(core): S, headers: HeaderMap) -> Response {
    json_resp(
        StatusCode::OK,
        &json!({"version": keystone_v3(&base_of(&core, &headers))}),
    )
}

fn nova_v21(base: &str) -> Value {
    json!({"id": "v2.1", "status": "CURRENT", "version": "2.1", "min_version": "2.1", "updated": UPDATED,
        "links": [{"rel": "self", "href": format!("{base}/compute/v2.1/")}]})
}

async fn compute_versions(State(core): S, headers: HeaderMap) -> Response {
    json_resp(
        StatusCode::OK,
        &json!({"versions": [nova_v21(&base_of(&core, &headers))]}),
    )
}

async fn compute_v21(State(core): S, headers: HeaderMap) -> Response {
    json_resp(
        StatusCode::OK,
        &json!({"version": nova_v21(&base_of(&core, &headers))}),
    )
}

async fn image_versions(State(core): S, headers: HeaderMap) -> Response {
    let base = base_of(&core, &headers);
    json_resp(
        StatusCode::MULTIPLE_CHOICES,
        &json!({"versions": [{"id": "v2.15", "status": "CURRENT", "links": [{"rel": "self", "href": format!("{base}/image/v2/")}]}]}),
    )
}

async fn network_versions(State(core): S, headers: HeaderMap) -> Response {
    let base = base_of(&core, &headers);
    json_resp(
        StatusCode::OK,
        &json!({"versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": format!("{base}/network/v2.0/")}]}]}),
    )
}

// ---------------------------------------------------------------- identity

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
async fn auth_tokens(State(core): S, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    let r = rid(&headers);
    let resp = match core.user_auth(body, &r).await {
        Ok(resp) => resp,
        Err(e) => return call_fault(Service::Identity, e).into_response(),
    };
    if !resp.status().is_success() {
        let status = resp.status();
        let body = serde_json::from_slice::<Value>(resp.body())
            .unwrap_or_else(|_| ApiError::unauthorized(Service::Identity).body());
        return json_resp(status, &body);
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(resp.body()) else {
        return fault(
            Service::Identity,
            502,
            "cloudlet returned an unreadable token",
        )
        .into_response();
    };
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
    r
}

// ---------------------------------------------------------------- servers

/// Nova's reading of a boolean body parameter (`parameter_types.boolean`).
fn bool_param(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => {
            matches!(
                s.to_ascii_lowercase().as_str(),
                "true" | "1" | "yes" | "on" | "y" | "t"
            )
        }
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        _ => false,
    }
}

/// A create request that could not be placed, as Nova answers it.
fn create_fault(n: NotPlaced) -> ApiError {
    match n.error {
        CallError::Status {
            status: status @ (400 | 403),
            message,
        } => fault(Service::Compute, status, message),
        other => fault(
            Service::Compute,
            500,
            format!(
                "No valid host was found. Tried {}: {other}",
                n.tried.join(", ")
            ),
        ),
    }
}

async fn create_server(
    State(core): S,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let c = ctx(&core, &headers, Service::Compute)?;
    let v = serde_json::from_slice::<Value>(&body)
        .map_err(|_| fault(Service::Compute, 400, "Malformed request body"))?;
    let counts = match v
        .get("server")
        .and_then(Value::as_object)
        .map(input::counts)
    {
        Some(r) => r.map_err(|msg| fault(Service::Compute, 400, msg))?,
        None => (1, 1),
    };
    let reservation = bool_param(v.pointer("/server/return_reservation_id"));
    let (plan, demand) = core
        .plan_boot(&c.claims, &c.project, &v, &c.rid)
        .await
        .map_err(|(status, msg)| fault(Service::Compute, status, msg))?;
    let placed = core
        .create_servers(&c.claims, &c.project, plan, demand, counts, &c.rid)
        .await
        .map_err(create_fault)?;
    let first = placed
        .first()
        .ok_or_else(|| fault(Service::Compute, 500, "No valid host was found."))?;
    if reservation {
        // Nova's `r-` and 8 characters; the servers are not looked up by it.
        let tag: String = first.gid.simple().to_string().chars().skip(24).collect();
        let r = json_resp(
            StatusCode::ACCEPTED,
            &json!({"reservation_id": format!("r-{tag}")}),
        );
        return Ok(with_owner(r, &core, Some(&first.owner)));
    }
    let gid = first.gid;
    let self_href = format!("{}/compute/v2.1/servers/{gid}", c.base);
    let mut server = json!({
        "id": gid.to_string(),
        "links": [{"rel": "self", "href": self_href},
                  {"rel": "bookmark", "href": format!("{}/compute/servers/{gid}", c.base)}],
        "OS-DCF:diskConfig": "MANUAL",
        "security_groups": [{"name": "default"}],
    });
    if let Some(p) = first.created.pointer("/server/adminPass") {
        server["adminPass"] = p.clone();
    }
    let mut r = json_resp(StatusCode::ACCEPTED, &json!({"server": server}));
    if let Ok(h) = HeaderValue::from_str(&self_href) {
        r.headers_mut().insert("location", h);
    }
    Ok(with_owner(r, &core, Some(&first.owner)))
}

async fn list(core: Arc<Core>, headers: HeaderMap, uri: Uri, detail: bool) -> Response {
    let c = match ctx(&core, &headers, Service::Compute) {
        Ok(c) => c,
        Err(f) => return f.into_response(),
    };
    let pairs = query_pairs(&uri);
    if !c.claims.is_admin() && pairs.iter().any(|(k, v)| k == "all_tenants" && truthy(v)) {
        let rule = if detail {
            "os_compute_api:servers:detail:get_all_tenants"
        } else {
            "os_compute_api:servers:index:get_all_tenants"
        };
        return forbidden(Service::Compute, rule);
    }
    let all_tenants = pairs
        .iter()
        .any(|(k, v)| k == "all_tenants" && (v.is_empty() || truthy(v)));
    if all_tenants
        && pairs
            .iter()
            .any(|(k, _)| matches!(k.as_str(), "project_id" | "tenant_id"))
    {
        // Project IDs differ between cloudlets: refused, not guessed.
        return fault(
            Service::Compute,
            400,
            "The project_id/tenant_id filter is not federated (project IDs differ between cloudlets); list with all_tenants alone.",
        )
        .into_response();
    }
    let q = match ListQuery::parse(&pairs) {
        Ok(q) => q,
        Err(e) => return fault(Service::Compute, 400, e.to_string()).into_response(),
    };
    let all = core
        .all_servers(&c.claims, &c.project, all_tenants, &c.base, &c.rid)
        .await;
    let page = match listing::paginate(all, &q) {
        Ok(p) => p,
        Err(e) => return fault(Service::Compute, 400, e.to_string()).into_response(),
    };
    let servers: Vec<Value> = if detail {
        page.servers
    } else {
        page.servers.iter().map(view::brief).collect()
    };
    let mut body = json!({"servers": servers});
    scrub_for(&c.claims, &mut body);
    if let Some(m) = page.next_marker {
        let mut qs: Vec<(String, String)> =
            pairs.into_iter().filter(|(k, _)| k != "marker").collect();
        qs.push(("marker".into(), m));
        let enc = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(qs)
            .finish();
        let path = if detail { "servers/detail" } else { "servers" };
        body["servers_links"] =
            json!([{"rel": "next", "href": format!("{}/compute/v2.1/{path}?{enc}", c.base)}]);
    }
    json_resp(StatusCode::OK, &body)
}

async fn list_brief(State(core): S, headers: HeaderMap, uri: Uri) -> Response {
    list(core, headers, uri, false).await
}

async fn list_detail(State(core): S, headers: HeaderMap, uri: Uri) -> Response {
    list(core, headers, uri, true).await
}

/// `GET`/`DELETE /servers/{id}` (or, with `action`, `POST
/// /servers/{id}/action`): served here if this agent coordinates the ID,
/// else forwarded to its coordinator in one hop.
async fn route_server(
    core: Arc<Core>,
    method: Method,
    headers: HeaderMap,
    id: String,
    action: Option<Bytes>,
) -> Response {
    let c = match ctx(&core, &headers, Service::Compute) {
        Ok(c) => c,
        Err(f) => return f.into_response(),
    };
    let nf = || instance_not_found(&id).into_response();
    let Some(gid) = idroute::parse(&id) else {
        return nf();
    };
    let in_directory = core
        .directory
        .lock()
        .map(|d| d.contains_key(&gid))
        .unwrap_or(false);
    if !in_directory {
        let known = core.gossip.known().await;
        let mut coord = idroute::coordinator_of(&gid, known.iter().map(|(s, _)| s.name.as_str()))
            .map(str::to_string);
        // With a partial view (CYCLON) the coordinator may be unknown here:
        // looked up over the overlay by the ID's tag (docs/agent.md).
        let mut looked_up = None;
        if coord.is_none() {
            if let Some(tag) = idroute::coordinator_tag(&gid) {
                if let Some(st) = core.gossip.member_with_tag(tag).await {
                    coord = Some(st.name.clone());
                    looked_up = Some(st.url);
                }
            }
        }
        if let Some(coord) = coord.clone().filter(|c| *c != core.name) {
            let alive = looked_up.is_some() || known.iter().any(|(s, a)| s.name == coord && *a);
            let url = match looked_up {
                Some(u) => Some(u),
                None => core.url_of(&coord).await,
            };
            if let (true, Some(url)) = (alive, url) {
                match forward_server_op(&core, &c, &url, &method, gid, action.as_ref()).await {
                    Ok(r) => return relay(&core, &c, &id, &r),
                    Err(e) => {
                        tracing::warn!(coordinator = %coord, error = %e, "coordinator unreachable; searching");
                        core.suspect(&coord);
                    }
                }
            }
        }
        // The coordinator is gone: the agent that adopted its boots
        // answers, so that a delete cannot cross its re-placement.
        if coord.as_deref() != Some(core.name.as_str()) {
            if let Some((adopter, url)) = core.adopter_url(gid, &c.claims, &c.project, &c.rid).await
            {
                match forward_server_op(&core, &c, &url, &method, gid, action.as_ref()).await {
                    Ok(r) => return relay(&core, &c, &id, &r),
                    Err(e) => {
                        tracing::warn!(adopter = %adopter, error = %e, "adopter unreachable; serving here");
                    }
                }
            } else if let Some(dead) =
                coord.filter(|c| !known.iter().any(|(s, a)| s.name == *c && *a))
            {
                // No instance on a live cloudlet: a boot the dead coordinator
                // kept on its own (lost) cloudlet. Its backup, the adopter of
                // its name, holds the record and answers for it; its 404 is
                // final (it searched the live cloudlets too).
                if let Some(backup) = core.adopter_of(&dead).await.filter(|b| *b != core.name) {
                    if let Some(url) = core.url_of(&backup).await {
                        match forward_server_op(&core, &c, &url, &method, gid, action.as_ref())
                            .await
                        {
                            Ok(r) => return relay(&core, &c, &id, &r),
                            Err(e) => {
                                tracing::warn!(backup = %backup, error = %e, "backup unreachable; serving here");
                            }
                        }
                    }
                }
            }
        }
    }
    let mut o = match action {
        Some(body) => {
            core.server_action(gid, &c.claims, &c.project, body, &c.rid)
                .await
        }
        None => {
            core.server_op(&method, gid, &c.claims, &c.project, &c.base, &c.rid)
                .await
        }
    };
    if let Some(b) = o.body.as_mut() {
        scrub_for(&c.claims, b);
    }
    if matches!(
        o.status,
        StatusCode::NOT_FOUND | StatusCode::SERVICE_UNAVAILABLE
    ) && o.owner.is_none()
    {
        // Not on any live cloudlet: is it last known on a dead one?
        // (Unless deleted meanwhile: by this agent or, for a lost
        // cloudlet's server, by the peer that took it over.)
        if let Some((member, mut server)) = core
            .last_known_on_dead(gid, &c.claims, &c.project, &c.rid)
            .await
            .filter(|(member, server)| !core.hidden(member, server, &id))
        {
            if method != Method::GET {
                return with_owner(
                    fault(
                        Service::Compute,
                        503,
                        format!("Cloudlet {member} holding instance {id} cannot be reached."),
                    )
                    .into_response(),
                    &core,
                    Some(&member),
                );
            }
            view::globalize(&mut server, &id, &c.base);
            view::mark_unknown(&mut server);
            if !c.claims.is_admin() {
                policy::strip_admin_server_fields(&mut server);
            }
            return with_owner(
                json_resp(StatusCode::OK, &json!({"server": server})),
                &core,
                Some(&member),
            );
        }
    }
    outcome(&core, o)
}

/// A peer agent's answer about a server, passed on to the user.
/// Sends a server GET/DELETE (or action) to the peer at `url`
/// (coordinator, adopter or backup).
async fn forward_server_op(
    core: &Core,
    c: &Ctx,
    url: &str,
    method: &Method,
    gid: uuid::Uuid,
    action: Option<&Bytes>,
) -> Result<os_client::HttpResponse, crate::error::CallError> {
    let req = match action {
        Some(body) => PeerRequest::ServerAction {
            gid,
            body: body.clone(),
        },
        None => PeerRequest::Server {
            method: method.clone(),
            gid,
        },
    };
    core.peer(url, &req, &c.token, &c.rid).await
}

fn relay(core: &Core, c: &Ctx, id: &str, r: &os_client::HttpResponse) -> Response {
    let owner = r
        .headers()
        .get("x-p2p-cloudlet")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let status = r.status();
    let resp = if r.body().is_empty() {
        status.into_response()
    } else {
        match serde_json::from_slice::<Value>(r.body()) {
            Ok(mut v) => {
                if let Some(s) = v.get_mut("server") {
                    view::globalize(s, id, &c.base);
                }
                scrub_for(&c.claims, &mut v);
                json_resp(status, &v)
            }
            Err(_) => status.into_response(),
        }
    };
    with_owner(resp, core, owner.as_deref())
}

async fn show_server(State(core): S, headers: HeaderMap, Path(id): Path<String>) -> Response {
    route_server(core, Method::GET, headers, id, None).await
}

async fn delete_server(State(core): S, headers: HeaderMap, Path(id): Path<String>) -> Response {
    route_server(core, Method::DELETE, headers, id, None).await
}

/// `POST /servers/{id}/action`: carried out by the instance's cloudlet,
/// routed as `GET` is (Nova's answer passed on: 202, or 409 for an action
/// in the wrong state).
async fn server_action(
    State(core): S,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let v = serde_json::from_slice::<Value>(&body)
        .map_err(|_| fault(Service::Compute, 400, "Malformed request body"))?;
    if v.as_object().is_none_or(|o| o.len() != 1) {
        return Err(fault(
            Service::Compute,
            400,
            "Invalid input for field/attribute action: exactly one action is required.",
        ));
    }
    Ok(route_server(core, Method::POST, headers, id, Some(body)).await)
}

// ---------------------------------------------------------------- keypairs

fn keypair_not_found(name: &str, c: &Ctx) -> ApiError {
    fault(
        Service::Compute,
        404,
        format!("Keypair {name} not found for user {}", c.claims.user_id),
    )
}

async fn keypairs_list(State(core): S, headers: HeaderMap) -> Result<Response, ApiError> {
    let c = ctx(&core, &headers, Service::Compute)?;
    let list = core
        .keypairs_of(&c.claims, &c.project, &c.rid)
        .await
        .map_err(|e| call_fault(Service::Compute, e))?;
    Ok(json_resp(StatusCode::OK, &json!({ "keypairs": list })))
}

/// Creates the keypair on the own cloudlet (generated there when no public
/// key is given), then copies it to every live peer's cloudlet before
/// answering: a keypair made through one agent is seen through any.
async fn keypair_create(
    State(core): S,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let c = ctx(&core, &headers, Service::Compute)?;
    let v = serde_json::from_slice::<Value>(&body)
        .map_err(|_| fault(Service::Compute, 400, "Malformed request body"))?;
    let bad = |m: &str| fault(Service::Compute, 400, m.to_string());
    let kp = v
        .get("keypair")
        .filter(|k| k.is_object())
        .ok_or_else(|| bad("'keypair' is a required property"))?;
    let name = kp
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("'name' is a required property"))?;
    if !keypairs::valid_name(name) {
        return Err(bad(
            "Keypair data is invalid: Keypair name contains unsafe characters",
        ));
    }
    let public_key = match kp.get("public_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err(bad("Invalid input for field/attribute public_key.")),
    };
    let stored = keypairs::stored_name(&c.claims, name);
    let cf = |e| call_fault(Service::Compute, e);
    if core
        .keypair_here(&c.project, &stored, &c.rid)
        .await
        .map_err(cf)?
        .is_some()
    {
        return Err(fault(
            Service::Compute,
            409,
            format!("Key pair '{name}' already exists."),
        ));
    }
    let created = core
        .create_keypair_here(&c.project, &stored, public_key, &c.rid)
        .await
        .map_err(cf)?;
    let copy = KeypairCopy {
        name: stored,
        public_key: created
            .get("public_key")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    core.broadcast_keypair(&c.claims, &copy, &c.rid).await;
    let view = keypairs::user_view(created, &c.claims);
    Ok(json_resp(StatusCode::OK, &json!({ "keypair": view })))
}

async fn keypair_show(
    State(core): S,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let c = ctx(&core, &headers, Service::Compute)?;
    let stored = keypairs::stored_name(&c.claims, &name);
    let kp = core
        .keypair_here(&c.project, &stored, &c.rid)
        .await
        .map_err(|e| call_fault(Service::Compute, e))?
        .ok_or_else(|| keypair_not_found(&name, &c))?;
    let view = keypairs::user_view(kp, &c.claims);
    Ok(json_resp(StatusCode::OK, &json!({ "keypair": view })))
}

/// Deletes the keypair on the own cloudlet and every live peer's.
async fn keypair_delete(
    State(core): S,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let c = ctx(&core, &headers, Service::Compute)?;
    let stored = keypairs::stored_name(&c.claims, &name);
    let here = core
        .delete_keypair_here(&c.project, &stored, &c.rid)
        .await
        .map_err(|e| call_fault(Service::Compute, e))?;
    let copy = KeypairCopy {
        name: stored,
        public_key: None,
    };
    let elsewhere = core.broadcast_keypair(&c.claims, &copy, &c.rid).await;
    if !here && elsewhere.is_empty() {
        return Err(keypair_not_found(&name, &c));
    }
    // Nova answers 202 up to microversion 2.1.
    Ok(StatusCode::ACCEPTED.into_response())
}

// ---------------------------------------------------------------- hosts (admin)

/// A federated hypervisor ID (its number in the federated list) from an
/// ID or a host name.
async fn hypervisor_number(core: &Core, c: &Ctx, id: &str) -> Result<u64, ApiError> {
    let nf = || {
        fault(
            Service::Compute,
            404,
            format!("Hypervisor with ID {id} could not be found."),
        )
    };
    if let Ok(n) = id.parse::<u64>() {
        return Ok(n);
    }
    let list = core
        .federated_numbered(
            &c.claims,
            &c.project,
            "/os-hypervisors",
            "hypervisors",
            &c.rid,
        )
        .await
        .map_err(|e| call_fault(Service::Compute, e))?;
    list.iter()
        .find(|h| h["hypervisor_hostname"] == id)
        .and_then(|h| h["id"].as_u64())
        .ok_or_else(nf)
}

/// `GET /os-hypervisors/{id}` and `…/uptime` through the federation.
async fn hypervisor_part(
    core: Arc<Core>,
    headers: HeaderMap,
    id: String,
    suffix: &str,
) -> Result<Response, ApiError> {
    let c = ctx(&core, &headers, Service::Compute)?;
    if !c.claims.is_admin() {
        return Ok(forbidden(
            Service::Compute,
            "os_compute_api:os-hypervisors:show",
        ));
    }
    let n = hypervisor_number(&core, &c, &id).await?;
    let cf = |e| call_fault(Service::Compute, e);
    let at = core
        .federated_find(
            &c.claims,
            &c.project,
            "/os-hypervisors",
            "hypervisors",
            n,
            &c.rid,
        )
        .await
        .map_err(cf)?
        .ok_or_else(|| {
            fault(
                Service::Compute,
                404,
                format!("Hypervisor with ID {id} could not be found."),
            )
        })?;
    let v = core
        .show_located(
            &c.claims,
            &c.project,
            &at,
            "/os-hypervisors",
            suffix,
            "hypervisor",
            n,
            &c.rid,
        )
        .await
        .map_err(cf)?;
    Ok(json_resp(StatusCode::OK, &v))
}

async fn hypervisor_show(
    State(core): S,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    hypervisor_part(core, headers, id, "").await
}

async fn hypervisor_uptime(
    State(core): S,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    hypervisor_part(core, headers, id, "/uptime").await
}

/// Every cloudlet's host aggregates, numbered 1..N.
async fn aggregates_list(State(core): S, headers: HeaderMap) -> Result<Response, ApiError> {
    let c = ctx(&core, &headers, Service::Compute)?;
    if !c.claims.is_admin() {
        return Ok(forbidden(
            Service::Compute,
            "os_compute_api:os-aggregates:index",
        ));
    }
    let list = core
        .federated_numbered(
            &c.claims,
            &c.project,
            "/os-aggregates",
            "aggregates",
            &c.rid,
        )
        .await
        .map_err(|e| call_fault(Service::Compute, e))?;
    Ok(json_resp(StatusCode::OK, &json!({ "aggregates": list })))
}

async fn aggregate_show(
    State(core): S,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let c = ctx(&core, &headers, Service::Compute)?;
    if !c.claims.is_admin() {
        return Ok(forbidden(
            Service::Compute,
            "os_compute_api:os-aggregates:show",
        ));
    }
    let nf = || {
        fault(
            Service::Compute,
            404,
            format!("Aggregate {id} could not be found."),
        )
    };
    let n = id.parse::<u64>().map_err(|_| nf())?;
    let cf = |e| call_fault(Service::Compute, e);
    let at = core
        .federated_find(
            &c.claims,
            &c.project,
            "/os-aggregates",
            "aggregates",
            n,
            &c.rid,
        )
        .await
        .map_err(cf)?
        .ok_or_else(nf)?;
    let v = core
        .show_located(
            &c.claims,
            &c.project,
            &at,
            "/os-aggregates",
            "",
            "aggregate",
            n,
            &c.rid,
        )
        .await
        .map_err(cf)?;
    Ok(json_resp(StatusCode::OK, &v))
}

// ---------------------------------------------------------------- federation-wide figures

async fn hypervisor_stats(State(core): S, headers: HeaderMap) -> Response {
    let c = match ctx(&core, &headers, Service::Compute) {
        Ok(c) => c,
        Err(f) => return f.into_response(),
    };
    if !c.claims.is_admin() {
        return forbidden(Service::Compute, "os_compute_api:os-hypervisors:statistics");
    }
    match core
        .federated_sum(
            &c.claims,
            &c.project,
            "/os-hypervisors/statistics",
            "/hypervisor_statistics",
            view::SumKind::All,
            &c.rid,
        )
        .await
    {
        Ok(v) => json_resp(StatusCode::OK, &json!({"hypervisor_statistics": v})),
        Err(e) => call_fault(Service::Compute, e).into_response(),
    }
}

/// Every cloudlet's compute nodes, renumbered 1..N (IDs are per cloudlet;
/// `hypervisor show <id>` is not federated).
async fn hypervisors(core: Arc<Core>, headers: HeaderMap, detail: bool) -> Response {
    let c = match ctx(&core, &headers, Service::Compute) {
        Ok(c) => c,
        Err(f) => return f.into_response(),
    };
    if !c.claims.is_admin() {
        return forbidden(Service::Compute, "os_compute_api:os-hypervisors:list");
    }
    let path = if detail {
        "/os-hypervisors/detail"
    } else {
        "/os-hypervisors"
    };
    match core
        .federated_numbered(&c.claims, &c.project, path, "hypervisors", &c.rid)
        .await
    {
        Ok(list) => json_resp(StatusCode::OK, &json!({"hypervisors": list})),
        Err(e) => call_fault(Service::Compute, e).into_response(),
    }
}

async fn hypervisors_brief(State(core): S, headers: HeaderMap) -> Response {
    hypervisors(core, headers, false).await
}

async fn hypervisors_detail(State(core): S, headers: HeaderMap) -> Response {
    hypervisors(core, headers, true).await
}

async fn limits(State(core): S, headers: HeaderMap, uri: Uri) -> Response {
    let c = match ctx(&core, &headers, Service::Compute) {
        Ok(c) => c,
        Err(f) => return f.into_response(),
    };
    // Another project's limits are admin-only (`limits:other_project`);
    // the figures below are always the caller's own project.
    if let Some((_, t)) = query_pairs(&uri)
        .into_iter()
        .find(|(k, _)| k == "tenant_id")
    {
        if !is_own_project(&core, &c, &t).await {
            if !c.claims.is_admin() {
                return forbidden(Service::Compute, "os_compute_api:limits:other_project");
            }
            return fault(
                Service::Compute,
                400,
                "Another project's limits are not federated; ask its cloudlet.",
            )
            .into_response();
        }
    }
    match core
        .federated_sum(
            &c.claims,
            &c.project,
            "/limits",
            "/limits/absolute",
            view::SumKind::Limits,
            &c.rid,
        )
        .await
    {
        Ok(v) => json_resp(
            StatusCode::OK,
            &json!({"limits": {"rate": [], "absolute": v}}),
        ),
        Err(e) => call_fault(Service::Compute, e).into_response(),
    }
}

async fn quotas(State(core): S, headers: HeaderMap, Path(project): Path<String>) -> Response {
    let c = match ctx(&core, &headers, Service::Compute) {
        Ok(c) => c,
        Err(f) => return f.into_response(),
    };
    // Nova: a project reader sees its own quota only (target project_id =
    // the path's); the admin sees any project's, here on this cloudlet
    // (project IDs are per cloudlet).
    if !is_own_project(&core, &c, &project).await {
        if !c.claims.is_admin() {
            return forbidden(Service::Compute, "os_compute_api:os-quota-sets:show");
        }
        return match core
            .cloudlet
            .get_json(
                &c.project,
                Svc::Compute,
                &format!("/os-quota-sets/{project}"),
                &c.rid,
            )
            .await
        {
            Ok(v) => json_resp(StatusCode::OK, &v),
            Err(e) => call_fault(Service::Compute, e).into_response(),
        };
    }
    // Project IDs are per cloudlet: each cloudlet answers for its own ID of
    // the caller's project (`@project` is substituted where the call lands).
    let path = format!("/os-quota-sets/{PROJECT_PLACEHOLDER}");
    match core
        .federated_sum(
            &c.claims,
            &c.project,
            &path,
            "/quota_set",
            view::SumKind::Quota,
            &c.rid,
        )
        .await
    {
        Ok(v) => json_resp(StatusCode::OK, &json!({"quota_set": v})),
        Err(e) => call_fault(Service::Compute, e).into_response(),
    }
}

// ---------------------------------------------------------------- proxies to the own cloudlet

/// Forwards a request to the own cloudlet's `svc`, rewriting the
/// cloudlet's endpoint URLs in the answer to this agent's.
#[allow(clippy::too_many_arguments)]
async fn proxy(
    core: Arc<Core>,
    svc: Svc,
    service: Service,
    prefix: &str,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let c = match ctx(&core, &headers, service) {
        Ok(c) => c,
        Err(f) => return f.into_response(),
    };
    if !matches!(method, Method::GET | Method::HEAD) {
        return fault(service, 405, "Only reads are federated for this resource.").into_response();
    }
    let rest = uri.path().strip_prefix(prefix).unwrap_or("");
    // The service account is admin: the caller's own rights decide.
    let admin = c.claims.is_admin();
    let access = match svc {
        Svc::Compute => policy::compute_access(rest),
        Svc::Image => policy::image_access(rest),
        Svc::Network => policy::network_access(rest),
        _ => policy::Access::Unknown,
    };
    match access {
        policy::Access::Admin(rule) if !admin => return forbidden(service, rule),
        policy::Access::OwnProject { rule, segment } if !admin => {
            let id = rest.split('/').filter(|s| !s.is_empty()).nth(segment);
            if !is_own_project(&core, &c, id.unwrap_or("")).await {
                return forbidden(service, rule);
            }
        }
        policy::Access::Unknown if !admin => {
            return fault(service, 404, "The resource could not be found.").into_response()
        }
        _ => {}
    }
    // Glance and Neutron answers are trimmed to what the caller's project
    // may see (the service account would see every project's).
    let own_pid = if !admin && matches!(svc, Svc::Image | Svc::Network) {
        match core.cloudlet.token_for(&c.project).await {
            Ok(t) => Some(t.project_id.clone()),
            Err(e) => return call_fault(service, e).into_response(),
        }
    } else {
        None
    };
    let path = match uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    let body = if body.is_empty() { None } else { Some(body) };
    let resp = match core
        .cloudlet
        .call(&c.project, svc, method, &path, body, &c.rid)
        .await
    {
        Ok(r) => r,
        Err(e) => return call_fault(service, e).into_response(),
    };
    let mut text = String::from_utf8_lossy(resp.body()).into_owned();
    if let (Some(own), true) = (&own_pid, resp.status().is_success()) {
        match serde_json::from_str::<Value>(&text) {
            Ok(mut v) => {
                if !policy::filter_owned(&mut v, own) {
                    return fault(service, 404, "The resource could not be found.").into_response();
                }
                text = v.to_string();
            }
            Err(_) => {
                return fault(service, 404, "The resource could not be found.").into_response()
            }
        }
    }
    if let Ok(eps) = core.cloudlet.endpoints().await {
        let mut pairs = vec![
            (eps.compute.clone(), format!("{}/compute/v2.1", c.base)),
            (eps.image.clone(), format!("{}/image", c.base)),
            (eps.network.clone(), format!("{}/network", c.base)),
            (eps.identity.clone(), format!("{}/identity", c.base)),
        ];
        // Nova bookmark links (`.../compute/flavors/1`) use the unversioned root.
        if let Some(root) = eps.compute.strip_suffix("/v2.1") {
            pairs.push((format!("{root}/"), format!("{}/compute/", c.base)));
        }
        for (from, to) in pairs {
            if !from.is_empty() {
                text = text.replace(&from, &to);
            }
        }
    }
    let mut r = (resp.status(), text).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    for h in ["openstack-api-version", "x-openstack-nova-api-version"] {
        if let Some(v) = resp.headers().get(h) {
            r.headers_mut().insert(h, v.clone());
        }
    }
    r
}

async fn proxy_compute(
    State(core): S,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    proxy(
        core,
        Svc::Compute,
        Service::Compute,
        "/compute/v2.1",
        method,
        headers,
        uri,
        body,
    )
    .await
}

async fn proxy_image(
    State(core): S,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    proxy(
        core,
        Svc::Image,
        Service::Image,
        "/image",
        method,
        headers,
        uri,
        body,
    )
    .await
}

async fn proxy_network(
    State(core): S,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    proxy(
        core,
        Svc::Network,
        Service::Network,
        "/network",
        method,
        headers,
        uri,
        body,
    )
    .await
}

// ---------------------------------------------------------------- metrics

async fn metrics(State(core): S) -> Response {
    let hb = core.gossip.heartbeat().await;
    let text = core
        .metrics
        .render(&core.name, core.gossip.members_alive(), hb);
    let mut r = text.into_response();
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

// ---------------------------------------------------------------- agent-to-agent

/// A peer asks this agent to create a planned server on its cloudlet.
async fn p2p_boot(
    State(core): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let c = peer_ctx(&core, &method, &uri, &headers, &body)?;
    let plan: BootPlan = peer_body(&body, "boot plan")?;
    let (local_id, created) = core
        .boot_local(&c.project, &plan, &c.rid)
        .await
        .map_err(|e| call_fault(Service::Control, e))?;
    Metrics::inc(&core.metrics.boots_accepted_for_peers);
    let accepted = BootAccepted {
        local_id,
        create: created,
    };
    Ok(json_resp(StatusCode::ACCEPTED, &json!(accepted)))
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

/// `GET`/`DELETE` of a global ID this agent coordinates.
async fn p2p_server(
    State(core): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let c = peer_ctx(&core, &method, &uri, &headers, &body)?;
    let gid = global_id(&id)?;
    let o = core
        .server_op(&method, gid, &c.claims, &c.project, &c.base, &c.rid)
        .await;
    Ok(outcome(&core, o))
}

/// Raw access to the own cloudlet's Nova for a peer (reads and deletes).
async fn p2p_local(
    State(core): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let c = match peer_ctx(&core, &method, &uri, &headers, &body) {
        Ok(c) => c,
        Err(f) => return f.into_response(),
    };
    if method == Method::POST {
        let rest = protocol::local_nova_path(uri.path());
        return local_action(&core, &c, rest, body)
            .await
            .unwrap_or_else(IntoResponse::into_response);
    }
    if !matches!(method, Method::GET | Method::DELETE) {
        return fault(Service::Control, 405, "Only GET, DELETE and server actions").into_response();
    }
    let rest = protocol::local_nova_path(uri.path());
    // A member acts for a user: the user's rights decide, not the
    // service account's (which is admin).
    let own_pid = match local_access(&core, &c, &method, rest, &uri).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let path = match uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    let path = match core.with_local_project(&c.project, &path).await {
        Ok(p) => p,
        Err(e) => return call_fault(Service::Control, e).into_response(),
    };
    match core
        .cloudlet
        .call(&c.project, Svc::Compute, method, &path, None, &c.rid)
        .await
    {
        Ok(r) => {
            let status = r.status();
            if let (Some(own), true) = (&own_pid, status.is_success()) {
                // Only the owner is read (no tree of the whole server).
                #[derive(serde::Deserialize)]
                struct Owner {
                    tenant_id: Option<String>,
                }
                #[derive(serde::Deserialize)]
                struct Wrapped {
                    server: Owner,
                }
                let owner = serde_json::from_slice::<Wrapped>(r.body())
                    .ok()
                    .and_then(|w| w.server.tenant_id);
                if owner.as_deref() != Some(own.as_str()) {
                    return fault(Service::Compute, 404, "Instance could not be found.")
                        .into_response();
                }
            }
            let is_list = matches!(rest.trim_end_matches('/'), "/servers" | "/servers/detail");
            if is_list && status.is_success() && core.has_doomed_here() {
                // Superseded instances awaiting deletion are never listed.
                if let Ok(mut v) = serde_json::from_slice::<Value>(r.body()) {
                    core.drop_doomed_here(&mut v);
                    return json_resp(status, &v);
                }
            }
            let mut resp = (status, Body::from(r.into_body())).into_response();
            resp.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            resp
        }
        Err(e) => call_fault(Service::Control, e).into_response(),
    }
}

/// A server action on this cloudlet for a peer (`/servers/{id}/action`
/// only), for the caller's own project's server.
async fn local_action(core: &Core, c: &Ctx, rest: &str, body: Bytes) -> Result<Response, ApiError> {
    let id = rest
        .strip_prefix("/servers/")
        .and_then(|r| r.strip_suffix("/action"))
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| fault(Service::Control, 405, "Only server actions are POSTed"))?;
    let cf = |e| call_fault(Service::Compute, e);
    let nf = || fault(Service::Compute, 404, "Instance could not be found.");
    let shown = core
        .cloudlet
        .call(
            &c.project,
            Svc::Compute,
            Method::GET,
            &format!("/servers/{id}"),
            None,
            &c.rid,
        )
        .await
        .map_err(cf)?;
    if !shown.status().is_success() {
        return Err(nf());
    }
    if !c.claims.is_admin() {
        let own = core.cloudlet.token_for(&c.project).await.map_err(cf)?;
        let tenant = serde_json::from_slice::<Value>(shown.body())
            .ok()
            .and_then(|v| {
                v.pointer("/server/tenant_id")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
        if tenant.as_deref() != Some(own.project_id.as_str()) {
            return Err(nf());
        }
    }
    let r = core
        .cloudlet
        .call(
            &c.project,
            Svc::Compute,
            Method::POST,
            &format!("/servers/{id}/action"),
            Some(body),
            &c.rid,
        )
        .await
        .map_err(cf)?;
    let mut resp = (r.status(), Body::from(r.into_body())).into_response();
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    Ok(resp)
}

/// A coordinator tells this agent that instances on its cloudlet were
/// superseded (their boot re-placed, or their server deleted) while the
/// cloudlet did not answer: they are hidden from every list this agent
/// serves from now on, and deleted for certain from here too.
async fn p2p_superseded(
    State(core): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let c = peer_ctx(&core, &method, &uri, &headers, &body)?;
    let s: Superseded = peer_body(&body, "superseded list")?;
    for id in &s.local_ids {
        core.delete_for_certain(&core.name, id, &c.claims, &c.project, &c.rid);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A coordinator gives (or takes back) the record of a boot on its own
/// cloudlet: this agent is its backup ([`Core::hold_replica`]).
async fn p2p_replica(
    State(core): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let c = peer_ctx(&core, &method, &uri, &headers, &body)?;
    let rec: BootReplica = peer_body(&body, "boot record")?;
    if idroute::parse(&rec.gid).is_none() {
        return Err(fault(
            Service::Control,
            400,
            "Invalid global id in boot record",
        ));
    }
    core.hold_replica(rec, c.claims, c.project);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A server action at the global ID's coordinator (or adopter, backup).
async fn p2p_server_action(
    State(core): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let c = peer_ctx(&core, &method, &uri, &headers, &body)?;
    let gid = global_id(&id)?;
    let o = core
        .server_action(gid, &c.claims, &c.project, body, &c.rid)
        .await;
    Ok(outcome(&core, o))
}

/// A peer copies (or removes) a user's keypair onto this agent's cloudlet.
async fn p2p_keypair(
    State(core): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let c = peer_ctx(&core, &method, &uri, &headers, &body)?;
    let k: KeypairCopy = peer_body(&body, "keypair copy")?;
    // Only the caller's own stored keypairs.
    if keypairs::user_name_of(&k.name).is_none_or(|n| keypairs::stored_name(&c.claims, n) != k.name)
    {
        return Err(fault(Service::Control, 403, "Not the caller's keypair"));
    }
    let cf = |e| call_fault(Service::Control, e);
    match &k.public_key {
        Some(pk) => core
            .ensure_keypair_here(&c.project, &k.name, pk, &c.rid)
            .await
            .map_err(cf)?,
        None => {
            if !core
                .delete_keypair_here(&c.project, &k.name, &c.rid)
                .await
                .map_err(cf)?
            {
                return Err(fault(Service::Control, 404, "No such keypair here"));
            }
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A peer deleted servers of a lost cloudlet: this agent never shows them
/// again from what it remembers of that cloudlet.
async fn p2p_gone(
    State(core): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    peer_ctx(&core, &method, &uri, &headers, &body)?;
    let g: Gone = peer_body(&body, "gone list")?;
    core.forget_gone(&g);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// What a peer may do on this cloudlet for the user of its token: the
/// project's servers (list without other tenants, show and delete of its
/// own), and the compute reads [`policy::compute_access`] allows. For a
/// server GET, returns the project ID the answer must belong to.
async fn local_access(
    core: &Core,
    c: &Ctx,
    method: &Method,
    rest: &str,
    uri: &Uri,
) -> Result<Option<String>, Response> {
    let admin = c.claims.is_admin();
    let pairs = query_pairs(uri);
    let widening = |k: &str| matches!(k, "all_tenants" | "project_id" | "tenant_id" | "host");
    if !admin && pairs.iter().any(|(k, _)| widening(k)) {
        return Err(forbidden(
            Service::Compute,
            "os_compute_api:servers:detail:get_all_tenants",
        ));
    }
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["servers"] | ["servers", "detail"] if *method == Method::GET => Ok(None),
        ["servers", id] if *id != "detail" => {
            // The service account sees every project's servers: check the
            // owner of the answer (GET) or before deleting.
            let own = core
                .cloudlet
                .token_for(&c.project)
                .await
                .map_err(|e| call_fault(Service::Compute, e).into_response())?;
            if *method == Method::GET {
                return Ok(Some(own.project_id.clone()));
            }
            let v = core
                .cloudlet
                .get_json(&c.project, Svc::Compute, &format!("/servers/{id}"), &c.rid)
                .await;
            match v {
                Ok(v)
                    if v.pointer("/server/tenant_id").and_then(Value::as_str)
                        == Some(own.project_id.as_str()) =>
                {
                    Ok(None)
                }
                Ok(_) | Err(CallError::Status { status: 404, .. }) => {
                    Err(instance_not_found(id).into_response())
                }
                Err(e) => Err(call_fault(Service::Compute, e).into_response()),
            }
        }
        _ if *method != Method::GET => {
            Err(fault(Service::Control, 405, "Only GET and DELETE of servers").into_response())
        }
        _ => match policy::compute_access(rest) {
            policy::Access::Member => Ok(None),
            policy::Access::Admin(rule) if !admin => Err(forbidden(Service::Compute, rule)),
            policy::Access::OwnProject { .. } if rest.contains(PROJECT_PLACEHOLDER) => Ok(None),
            policy::Access::OwnProject { rule, .. } if !admin => {
                Err(forbidden(Service::Compute, rule))
            }
            policy::Access::Unknown if !admin => {
                Err(
                    fault(Service::Compute, 404, "The resource could not be found.")
                        .into_response(),
                )
            }
            _ => Ok(None),
        },
    }
}

/// This agent's view of the federation (for operators and tests).
async fn p2p_view(
    State(core): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(f) = check_peer(&core, &method, &uri, &headers, &body) {
        return f.into_response();
    }
    let known = core.gossip.known().await;
    let members: Vec<Value> = known
        .into_iter()
        .map(|(s, alive)| json!({"state": s, "alive": alive}))
        .collect();
    json_resp(
        StatusCode::OK,
        &json!({"agent": core.name, "members": members}),
    )
}

/// A peer whose own cloudlet is down resolves flavors/images/networks here.
async fn p2p_read(
    State(core): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let c = match peer_ctx(&core, &method, &uri, &headers, &body) {
        Ok(c) => c,
        Err(f) => return f.into_response(),
    };
    let (svc, rest) = match protocol::read_target(uri.path()) {
        Some((ReadKind::Compute, r)) => (Svc::Compute, r),
        Some((ReadKind::Image, r)) => (Svc::Image, r),
        Some((ReadKind::Network, r)) => (Svc::Network, r),
        None => return fault(Service::Control, 404, "Unknown service").into_response(),
    };
    let path = match uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    match core
        .cloudlet
        .call(&c.project, svc, Method::GET, &path, None, &c.rid)
        .await
    {
        Ok(r) if !c.claims.is_admin() && r.status().is_success() && svc != Svc::Compute => {
            // Trimmed to what the user's project may see, as the proxy does.
            let own = match core.cloudlet.token_for(&c.project).await {
                Ok(t) => t.project_id.clone(),
                Err(e) => return call_fault(Service::Control, e).into_response(),
            };
            let mut v: Value = serde_json::from_slice(r.body()).unwrap_or(Value::Null);
            if !policy::filter_owned(&mut v, &own) {
                return fault(Service::Control, 404, "The resource could not be found.")
                    .into_response();
            }
            json_resp(r.status(), &v)
        }
        Ok(r) => {
            let mut resp = (r.status(), Body::from(r.into_body())).into_response();
            resp.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            resp
        }
        Err(e) => call_fault(Service::Control, e).into_response(),
    }
}

/// A peer whose own cloudlet is down authenticates a user here (the
/// answer is the cloudlet's Keystone answer; the peer mints its own
/// federation token from it).
async fn p2p_auth(
    State(core): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(f) = check_peer(&core, &method, &uri, &headers, &body) {
        return f.into_response();
    }
    match core.cloudlet.user_auth(body, &rid(&headers)).await {
        Ok(r) => {
            let mut resp = (r.status(), Body::from(r.into_body())).into_response();
            resp.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            resp
        }
        Err(e) => call_fault(Service::Identity, e).into_response(),
    }
}

/// What this agent knows of another member's servers (for a peer that
/// cannot reach that member and never listed it).
async fn p2p_known(
    State(core): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(member): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let c = peer_ctx(&core, &method, &uri, &headers, &body)?;
    let servers = core.known_servers_of(&member, &c.project);
    Ok(json_resp(StatusCode::OK, &json!(KnownServers { servers })))
}
