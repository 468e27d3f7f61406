//! The agent-to-agent API under `/p2p/v1` ([`protocol`](crate::protocol)):
//! every request is signed ([`peer_sig`](crate::peer_sig)) and acts for the
//! user whose token it carries.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use os_wire::{ApiError, Service};
use serde_json::{json, Value};

use super::*;
use crate::core::keypairs as names;
use crate::server_json::Shown;

/// A signed `/p2p/v1` request as a handler received it: method, URI,
/// headers and body.
type SignedParts<'a> = (&'a Method, &'a Uri, &'a HeaderMap, &'a [u8]);

/// A peer's notice: signature and user token checked, the body read as
/// `T` (400 naming `what`), `act` applied with the caller's context; 204.
fn peer_notice<T: serde::de::DeserializeOwned>(
    core: &Core,
    (method, uri, headers, body): SignedParts<'_>,
    what: &str,
    act: impl FnOnce(Ctx, T) -> Result<(), ApiError>,
) -> Result<Response, ApiError> {
    let c = peer_ctx(core, method, uri, headers, body)?;
    act(c, peer_body(body, what)?)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Whether `id` can be a cloudlet-local server ID: it goes into a Nova
/// path, so nothing but letters, digits and dashes.
fn plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `POST /p2p/v1/statuses`: a coordinator asks about its boots on this
/// cloudlet ([`StatusQuery`] → [`StatusReport`]), answered for the
/// project its signed token is scoped to ([`Core::statuses_here`]).
pub(super) async fn p2p_statuses(
    State(core): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let c = peer_ctx(&core, &method, &uri, &headers, &body)?;
    let q: StatusQuery = peer_body(&body, "status query")?;
    if q.local_ids.len() > StatusQuery::MAX_IDS {
        let msg = format!("At most {} IDs per status query", StatusQuery::MAX_IDS);
        return Err(fault(Service::Control, 400, msg));
    }
    if !q.local_ids.iter().all(|id| plausible_id(id)) {
        return Err(fault(
            Service::Control,
            400,
            "Malformed server ID in status query",
        ));
    }
    let servers = core
        .statuses_here(&c.claims, &c.project, &q.local_ids, &c.rid)
        .await
        .map_err(|e| call_fault(Service::Control, e))?;
    Ok(json_resp(StatusCode::OK, &json!(StatusReport { servers })))
}

/// A peer asks this agent to create a planned server on its cloudlet.
pub(super) async fn p2p_boot(
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

/// `GET`/`DELETE` of a global ID this agent coordinates.
pub(super) async fn p2p_server(
    State(core): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let c = peer_ctx(&core, &method, &uri, &headers, &body)?;
    let gid = global_id(&id)?;
    // A GET is shaped for the caller by the entry agent that relays it.
    Ok(
        match core
            .server_op(&method, gid, &c.claims, &c.project, &c.base, &c.rid, None)
            .await
        {
            Shown::Server { body, owner } => {
                with_owner(raw_json(StatusCode::OK, body), &core, Some(&owner))
            }
            Shown::Other(o) => outcome(&core, o),
        },
    )
}

/// Raw access to the own cloudlet's Nova for a peer (reads and deletes).
pub(super) async fn p2p_local(
    State(core): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let c = peer_ctx(&core, &method, &uri, &headers, &body)?;
    let rest = protocol::local_nova_path(uri.path());
    if method == Method::POST {
        return local_action(&core, &c, rest, body).await;
    }
    if !matches!(method, Method::GET | Method::DELETE) {
        return Err(fault(
            Service::Control,
            405,
            "Only GET, DELETE and server actions",
        ));
    }
    // A member acts for a user: the user's rights decide, not the
    // service account's (which is admin).
    let own_pid = local_access(&core, &c, &method, rest, &uri).await?;
    let path = match uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    let cf = |e| call_fault(Service::Control, e);
    let path = core
        .with_local_project(&c.project, &path)
        .await
        .map_err(cf)?;
    let r = core
        .cloudlet
        .call(&c.project, Svc::Compute, method, &path, None, &c.rid)
        .await
        .map_err(cf)?;
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
            return Err(fault(Service::Compute, 404, "Instance could not be found."));
        }
    }
    let is_list = matches!(rest.trim_end_matches('/'), "/servers" | "/servers/detail");
    if is_list && status.is_success() && core.has_doomed_here() {
        // Superseded instances awaiting deletion are never listed.
        if let Ok(mut v) = serde_json::from_slice::<Value>(r.body()) {
            core.drop_doomed_here(&mut v);
            return Ok(json_resp(status, &v));
        }
    }
    Ok(raw_json(status, r.into_body()))
}

/// A cloudlet's JSON answer passed on as it came.
pub(super) fn raw_json(status: StatusCode, body: Bytes) -> Response {
    let mut resp = (status, Body::from(body)).into_response();
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp
}

/// A server action on this cloudlet for a peer (`/servers/{id}/action`
/// only), for the caller's own project's server.
pub(super) async fn local_action(
    core: &Core,
    c: &Ctx,
    rest: &str,
    body: Bytes,
) -> Result<Response, ApiError> {
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
    Ok(raw_json(r.status(), r.into_body()))
}

/// A coordinator tells this agent that instances on its cloudlet were
/// superseded (their boot re-placed, or their server deleted) while the
/// cloudlet did not answer: they are hidden from every list this agent
/// serves from now on, and deleted for certain from here too.
pub(super) async fn p2p_superseded(
    State(core): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = (&method, &uri, &headers, &body[..]);
    peer_notice(&core, req, "superseded list", |c, s: Superseded| {
        for id in &s.local_ids {
            core.delete_for_certain(&core.name, id, &c.claims, &c.project, &c.rid);
        }
        Ok(())
    })
}

/// A coordinator gives (or takes back) the record of a boot on its own
/// cloudlet: this agent is its backup ([`Core::hold_replica`]).
pub(super) async fn p2p_replica(
    State(core): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = (&method, &uri, &headers, &body[..]);
    peer_notice(&core, req, "boot record", |c, rec: BootReplica| {
        if idroute::parse(&rec.gid).is_none() {
            return Err(fault(
                Service::Control,
                400,
                "Invalid global id in boot record",
            ));
        }
        core.hold_replica(rec, Arc::unwrap_or_clone(c.claims), c.project);
        Ok(())
    })
}

/// A server action at the global ID's coordinator (or adopter, backup).
pub(super) async fn p2p_server_action(
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
pub(super) async fn p2p_keypair(
    State(core): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let c = peer_ctx(&core, &method, &uri, &headers, &body)?;
    let k: KeypairCopy = peer_body(&body, "keypair copy")?;
    // Only the caller's own stored keypairs.
    if names::user_name_of(&k.name).is_none_or(|n| names::stored_name(&c.claims, n) != k.name) {
        return Err(fault(Service::Control, 403, "Not the caller's keypair"));
    }
    let cf = |e| call_fault(Service::Control, e);
    match &k.public_key {
        Some(pk) => core
            .ensure_keypair_here(&c.project, &k.name, pk, &c.rid)
            .await
            .map_err(cf)?,
        None => {
            if let Some(wanted) = &k.if_public_key {
                // Made again (another key) since the removal was sent:
                // nothing of the removed keypair is here.
                let held = core
                    .keypair_here(&c.project, &k.name, &c.rid)
                    .await
                    .map_err(cf)?;
                let key_of = |kp: &Value| {
                    kp.get("public_key")
                        .and_then(Value::as_str)
                        .map(|s| s.trim().to_string())
                };
                match held {
                    None => return Err(fault(Service::Control, 404, "No such keypair here")),
                    Some(kp) if key_of(&kp).as_deref() != Some(wanted.trim()) => {
                        return Ok(StatusCode::NO_CONTENT.into_response())
                    }
                    Some(_) => {}
                }
            }
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

/// The backup of a lost pair took servers of its cloudlet over and shows
/// them ERROR: so does this agent from what it remembers of that cloudlet.
pub(super) async fn p2p_lost(
    State(core): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = (&method, &uri, &headers, &body[..]);
    peer_notice(&core, req, "lost list", |_, l: Lost| {
        core.remember_lost(&l);
        Ok(())
    })
}

/// A peer deleted servers of a lost cloudlet: this agent never shows them
/// again from what it remembers of that cloudlet.
pub(super) async fn p2p_gone(
    State(core): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = (&method, &uri, &headers, &body[..]);
    peer_notice(&core, req, "gone list", |_, g: Gone| {
        core.forget_gone(&g);
        Ok(())
    })
}

/// What a peer may do on this cloudlet for the user of its token: the
/// project's servers (list without other tenants, show and delete of its
/// own), and the compute reads [`policy::compute_access`] allows. For a
/// server GET, returns the project ID the answer must belong to.
pub(super) async fn local_access(
    core: &Core,
    c: &Ctx,
    method: &Method,
    rest: &str,
    uri: &Uri,
) -> Result<Option<String>, ApiError> {
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
                .map_err(|e| call_fault(Service::Compute, e))?;
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
                Ok(_) | Err(CallError::Status { status: 404, .. }) => Err(instance_not_found(id)),
                Err(e) => Err(call_fault(Service::Compute, e)),
            }
        }
        _ if *method != Method::GET => Err(fault(
            Service::Control,
            405,
            "Only GET and DELETE of servers",
        )),
        _ => match policy::compute_access(rest) {
            policy::Access::Member => Ok(None),
            policy::Access::Admin(rule) if !admin => Err(forbidden(Service::Compute, rule)),
            policy::Access::OwnProject { .. } if rest.contains(PROJECT_PLACEHOLDER) => Ok(None),
            policy::Access::OwnProject { rule, .. } if !admin => {
                Err(forbidden(Service::Compute, rule))
            }
            policy::Access::Unknown if !admin => Err(fault(
                Service::Compute,
                404,
                "The resource could not be found.",
            )),
            _ => Ok(None),
        },
    }
}

/// This agent's view of the federation (for operators and tests).
pub(super) async fn p2p_view(
    State(core): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_peer(&core, &method, &uri, &headers, &body)?;
    let known = core.gossip.known().await;
    let members: Vec<Value> = known
        .into_iter()
        .map(|(s, alive)| json!({"state": s, "alive": alive}))
        .collect();
    Ok(json_resp(
        StatusCode::OK,
        &json!({"agent": core.name, "members": members}),
    ))
}

/// A peer whose own cloudlet is down resolves flavors/images/networks here.
pub(super) async fn p2p_read(
    State(core): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let c = peer_ctx(&core, &method, &uri, &headers, &body)?;
    let (svc, rest) = match protocol::read_target(uri.path()) {
        Some((ReadKind::Compute, r)) => (Svc::Compute, r),
        Some((ReadKind::Image, r)) => (Svc::Image, r),
        Some((ReadKind::Network, r)) => (Svc::Network, r),
        None => return Err(fault(Service::Control, 404, "Unknown service")),
    };
    let path = match uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    let cf = |e| call_fault(Service::Control, e);
    let r = core
        .cloudlet
        .call(&c.project, svc, Method::GET, &path, None, &c.rid)
        .await
        .map_err(cf)?;
    if c.claims.is_admin() || !r.status().is_success() || svc == Svc::Compute {
        return Ok(raw_json(r.status(), r.into_body()));
    }
    // Trimmed to what the user's project may see, as the proxy does.
    let own = core
        .cloudlet
        .token_for(&c.project)
        .await
        .map_err(cf)?
        .project_id
        .clone();
    let mut v: Value = serde_json::from_slice(r.body()).unwrap_or(Value::Null);
    if !policy::filter_owned(&mut v, &own) {
        return Err(fault(
            Service::Control,
            404,
            "The resource could not be found.",
        ));
    }
    Ok(json_resp(r.status(), &v))
}

/// A peer whose own cloudlet is down authenticates a user here (the
/// answer is the cloudlet's Keystone answer; the peer mints its own
/// federation token from it).
pub(super) async fn p2p_auth(
    State(core): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_peer(&core, &method, &uri, &headers, &body)?;
    let r = core
        .cloudlet
        .user_auth(body, &rid(&headers))
        .await
        .map_err(|e| call_fault(Service::Identity, e))?;
    Ok(raw_json(r.status(), r.into_body()))
}

/// What this agent knows of another member's servers (for a peer that
/// cannot reach that member and never listed it).
pub(super) async fn p2p_known(
    State(core): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(member): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let c = peer_ctx(&core, &method, &uri, &headers, &body)?;
    let known = core.known_servers_of(&member, &c.project);
    Ok(json_resp(StatusCode::OK, &json!(known)))
}

#[cfg(test)]
mod tests {
    use super::plausible_id;

    #[test]
    fn only_plain_ids_reach_a_nova_path() {
        assert!(plausible_id("0b6f5a34-9f2e-4c1e-8d7b-2f3a4b5c6d7e"));
        for bad in ["", "x/action", "..", "a?b=1", "a%2F", &"a".repeat(65)] {
            assert!(!plausible_id(bad), "{bad:?}");
        }
    }
}
