//! Servers: create (single and multi), federated lists, and show,
//! delete and actions routed to the agent that answers for the ID.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use os_wire::{ApiError, Service};
use serde_json::{json, Value};

use super::*;
use crate::server_json::{ServerDoc, Shape, Shown};

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

pub(super) async fn create_server(
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

pub(super) async fn list(
    core: Arc<Core>,
    headers: HeaderMap,
    uri: Uri,
    detail: bool,
) -> Result<Response, ApiError> {
    let c = ctx(&core, &headers, Service::Compute)?;
    let pairs = query_pairs(&uri);
    if !c.claims.is_admin() && pairs.iter().any(|(k, v)| k == "all_tenants" && truthy(v)) {
        let rule = if detail {
            "os_compute_api:servers:detail:get_all_tenants"
        } else {
            "os_compute_api:servers:index:get_all_tenants"
        };
        return Err(forbidden(Service::Compute, rule));
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
        return Err(fault(
            Service::Compute,
            400,
            "The project_id/tenant_id filter is not federated (project IDs differ between cloudlets); list with all_tenants alone.",
        ));
    }
    let bad = |e: listing::ListError| fault(Service::Compute, 400, e.to_string());
    let q = ListQuery::parse(&pairs).map_err(bad)?;
    let all = core
        .all_servers(&c.claims, &c.project, all_tenants, &c.base, &c.rid)
        .await;
    let page = listing::paginate(all, &q).map_err(bad)?;
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
    Ok(json_resp(StatusCode::OK, &body))
}

pub(super) async fn list_brief(
    State(core): S,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    list(core, headers, uri, false).await
}

pub(super) async fn list_detail(
    State(core): S,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    list(core, headers, uri, true).await
}

/// `GET`/`DELETE /servers/{id}` (or, with `action`, `POST
/// /servers/{id}/action`): served here if this agent coordinates the ID,
/// else forwarded to its coordinator in one hop.
pub(super) async fn route_server(
    core: Arc<Core>,
    method: Method,
    headers: HeaderMap,
    id: String,
    action: Option<Bytes>,
) -> Result<Response, ApiError> {
    let c = ctx(&core, &headers, Service::Compute)?;
    let gid = global_id(&id)?;
    // The coordinator of an ID this agent does not answer for, and
    // whether its backup was asked already.
    let mut other_coord: Option<String> = None;
    let mut asked_backup = false;
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
            // A coordinator known lost with its cloudlet (suspected here,
            // its cloudlet silent) is not waited for on every request.
            let alive = alive
                && !core.silent(&crate::core::Member {
                    name: coord.clone(),
                    url: None,
                    alive,
                });
            let url = match looked_up {
                Some(u) => Some(u),
                None => core.url_of(&coord).await,
            };
            if let (true, Some(url)) = (alive, url) {
                match forward_server_op(&core, &c, &url, &method, gid, action.as_ref()).await {
                    Ok(r) => return Ok(relay(&core, &c, &id, &r)),
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
                    Ok(r) => return Ok(relay(&core, &c, &id, &r)),
                    Err(e) => {
                        tracing::warn!(adopter = %adopter, error = %e, "adopter unreachable; serving here");
                    }
                }
            } else if let Some(dead) = coord
                .as_deref()
                .filter(|c| !known.iter().any(|(s, a)| s.name == *c && *a))
            {
                // No instance on a live cloudlet: a boot the dead coordinator
                // kept on its own (lost) cloudlet.
                asked_backup = true;
                if let Some(r) = via_backup(&core, &c, dead, &method, gid, action.as_ref()).await {
                    return Ok(relay(&core, &c, &id, &r));
                }
            }
        }
        other_coord = coord.filter(|c| *c != core.name);
    }
    let mut o = match &action {
        Some(body) => {
            core.server_action(gid, &c.claims, &c.project, body.clone(), &c.rid)
                .await
        }
        None => {
            match core
                .server_op(
                    &method,
                    gid,
                    &c.claims,
                    &c.project,
                    &c.base,
                    &c.rid,
                    Some(&*c.claims),
                )
                .await
            {
                // Already shaped for the caller.
                Shown::Server { body, owner } => {
                    return Ok(with_owner(
                        peer::raw_json(StatusCode::OK, body),
                        &core,
                        Some(&owner),
                    ))
                }
                Shown::Other(o) => o,
            }
        }
    };
    if o.status == StatusCode::NOT_FOUND && o.owner.is_none() && !asked_backup {
        // Not found here, while the coordinator was seen alive above: it
        // may have been declared dead since (the search here then skipped
        // its cloudlet). Not found is then for its backup to say.
        if let Some(dead) = other_coord.as_deref() {
            if !core.member(dead).await.alive {
                if let Some(r) = via_backup(&core, &c, dead, &method, gid, action.as_ref()).await {
                    return Ok(relay(&core, &c, &id, &r));
                }
            }
        }
    }
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
                let unreachable = fault(
                    Service::Compute,
                    503,
                    format!("Cloudlet {member} holding instance {id} cannot be reached."),
                );
                return Ok(with_owner(
                    unreachable.into_response(),
                    &core,
                    Some(&member),
                ));
            }
            let local = server.get("id").and_then(Value::as_str).map(str::to_string);
            view::globalize(&mut server, &id, &c.base);
            core.mark_remembered(&member, local.as_deref().unwrap_or(""), &mut server);
            if !c.claims.is_admin() {
                policy::strip_admin_server_fields(&mut server);
            }
            return Ok(with_owner(
                json_resp(StatusCode::OK, &json!({"server": server})),
                &core,
                Some(&member),
            ));
        }
    }
    Ok(outcome(&core, o))
}

/// Sends a server op to the backup of dead coordinator `dead` (the adopter
/// of its name): it holds the records of the boots `dead` kept on its own
/// cloudlet and answers for them; its 404 is final (it searched the live
/// cloudlets too). `None` when this agent is that backup, or it could not
/// be asked.
async fn via_backup(
    core: &Core,
    c: &Ctx,
    dead: &str,
    method: &Method,
    gid: uuid::Uuid,
    action: Option<&Bytes>,
) -> Option<os_client::HttpResponse> {
    let backup = core.adopter_of(dead).await.filter(|b| *b != core.name)?;
    let url = core.url_of(&backup).await?;
    match forward_server_op(core, c, &url, method, gid, action).await {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(backup = %backup, error = %e, "backup unreachable; serving here");
            None
        }
    }
}

/// A peer agent's answer about a server, passed on to the user.
/// Sends a server GET/DELETE (or action) to the peer at `url`
/// (coordinator, adopter or backup).
pub(super) async fn forward_server_op(
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
    let shape = Shape {
        gid: id,
        base: &c.base,
        caller: Some(&c.claims),
    };
    let resp = if r.body().is_empty() {
        status.into_response()
    } else if let Ok(Some(doc)) = ServerDoc::parse(r.body()) {
        // The usual answer, `{"server": …}`: rewritten without a tree.
        peer::raw_json(status, Bytes::from(doc.render(&shape)))
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

pub(super) async fn show_server(
    State(core): S,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    route_server(core, Method::GET, headers, id, None).await
}

pub(super) async fn delete_server(
    State(core): S,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    route_server(core, Method::DELETE, headers, id, None).await
}

/// `POST /servers/{id}/action`: carried out by the instance's cloudlet,
/// routed as `GET` is (Nova's answer passed on: 202, or 409 for an action
/// in the wrong state).
pub(super) async fn server_action(
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
    route_server(core, Method::POST, headers, id, Some(body)).await
}
