//! `os-aggregates` (max microversion 2.1): list, show, create, delete and
//! the add_host/remove_host actions, admin-only as nova's policy says. A
//! deployment starts with none (like DevStack); `openstack hypervisor show`
//! reads them to print a host's aggregates.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http::{HeaderMap, StatusCode};
use os_wire::time::rfc3339;
use os_wire::ApiError;
use serde_json::{json, Map, Value};

use super::S;
use crate::error::ApiResult;
use crate::http::{json_body, ok};
use crate::state::{Aggregate, AuthCtx, State};

pub fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/compute/v2.1/os-aggregates", get(list).post(create))
        .route("/compute/v2.1/os-aggregates/{id}", get(show).delete(delete))
        .route("/compute/v2.1/os-aggregates/{id}/action", post(action))
}

/// nova's `os_compute_api:os-aggregates:<rule>` (admin only).
fn allow(ctx: &AuthCtx, rule: &str) -> ApiResult<()> {
    if ctx.is_admin {
        return Ok(());
    }
    Err(ApiError::forbidden(
        S,
        format!("Policy doesn't allow os_compute_api:os-aggregates:{rule} to be performed."),
    ))
}

/// nova's `utils.validate_integer(id, 'id')`.
fn parse_id(id: &str) -> ApiResult<u64> {
    id.parse()
        .map_err(|_| ApiError::bad_request(S, "Invalid input received: id must be an integer"))
}

fn not_found(id: u64) -> ApiError {
    ApiError::not_found(S, format!("Aggregate {id} could not be found."))
}

/// nova's aggregate view (`deleted` fields included, as at 2.1).
fn view(a: &Aggregate) -> Value {
    let mut metadata = a.metadata.clone();
    if let Some(az) = &a.availability_zone {
        metadata.insert("availability_zone".into(), json!(az));
    }
    json!({
        "id": a.id, "name": a.name, "availability_zone": a.availability_zone,
        "hosts": a.hosts, "metadata": metadata,
        "created_at": rfc3339(a.created_at),
        "updated_at": a.updated_at.map(rfc3339),
        "deleted": false, "deleted_at": null,
    })
}

async fn list(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> ApiResult<Response> {
    allow(&st.authenticate(&headers, S)?, "index")?;
    let g = st.lock();
    let list: Vec<Value> = g.aggregates.values().map(view).collect();
    Ok(ok(json!({ "aggregates": list })))
}

async fn show(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    allow(&st.authenticate(&headers, S)?, "show")?;
    let id = parse_id(&id)?;
    let g = st.lock();
    let a = g.aggregates.get(&id).ok_or_else(|| not_found(id))?;
    Ok(ok(json!({ "aggregate": view(a) })))
}

async fn create(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    allow(&st.authenticate(&headers, S)?, "create")?;
    let v = json_body(S, &body)?;
    let a = v
        .get("aggregate")
        .filter(|a| a.is_object())
        .ok_or_else(|| ApiError::required(S, "aggregate"))?;
    let name = a
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.len() <= 255)
        .ok_or_else(|| ApiError::bad_request(S, "Invalid input for field/attribute name."))?;
    let az = match a.get("availability_zone") {
        None | Some(Value::Null) => None,
        Some(Value::String(z)) if !z.trim().is_empty() && z.len() <= 255 => Some(z.clone()),
        Some(_) => {
            return Err(ApiError::bad_request(
                S,
                "Invalid input for field/attribute availability_zone.",
            ))
        }
    };
    let now = st.now();
    let mut g = st.lock();
    if g.aggregates.values().any(|x| x.name == name) {
        return Err(ApiError::conflict(
            S,
            format!("Aggregate {name} already exists."),
        ));
    }
    g.next_aggregate += 1;
    let agg = Aggregate {
        id: g.next_aggregate,
        name: name.to_string(),
        availability_zone: az,
        hosts: vec![],
        metadata: Map::new(),
        created_at: now,
        updated_at: None,
    };
    // nova drops hosts and metadata from the create answer.
    let mut out = view(&agg);
    if let Some(o) = out.as_object_mut() {
        o.remove("hosts");
        o.remove("metadata");
    }
    g.aggregates.insert(agg.id, agg);
    Ok(ok(json!({ "aggregate": out })))
}

async fn delete(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    allow(&st.authenticate(&headers, S)?, "delete")?;
    let id = parse_id(&id)?;
    let mut g = st.lock();
    let a = g.aggregates.get(&id).ok_or_else(|| not_found(id))?;
    if !a.hosts.is_empty() {
        return Err(ApiError::bad_request(
            S,
            format!(
                "Cannot perform action 'delete' on aggregate {id}. Reason: Host aggregate is not empty."
            ),
        ));
    }
    g.aggregates.remove(&id);
    Ok(StatusCode::OK.into_response())
}

async fn action(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let ctx = st.authenticate(&headers, S)?;
    let v = json_body(S, &body)?;
    let (key, arg) = v
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.iter().next())
        .ok_or_else(|| ApiError::bad_request(S, "Malformed request body"))?;
    let add = match key.as_str() {
        "add_host" => true,
        "remove_host" => false,
        other => {
            return Err(ApiError::bad_request(
                S,
                format!("There is no such action: {other}"),
            ))
        }
    };
    allow(&ctx, key)?;
    let id = parse_id(&id)?;
    let host = arg
        .get("host")
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| ApiError::bad_request(S, "Invalid input for field/attribute host."))?
        .to_string();
    let now = st.now();
    let mut g = st.lock();
    let known_host = g.capacity.nodes.iter().any(|n| n.hostname == host);
    let a = g.aggregates.get_mut(&id).ok_or_else(|| not_found(id))?;
    if add {
        if !known_host {
            return Err(ApiError::not_found(
                S,
                format!("Compute host {host} could not be found."),
            ));
        }
        if a.hosts.contains(&host) {
            return Err(ApiError::conflict(
                S,
                format!("Aggregate {id} already has host {host}."),
            ));
        }
        a.hosts.push(host);
    } else {
        let before = a.hosts.len();
        a.hosts.retain(|h| *h != host);
        if a.hosts.len() == before {
            return Err(ApiError::not_found(
                S,
                format!("Cannot remove host {host} in aggregate {id}"),
            ));
        }
    }
    a.updated_at = Some(now);
    Ok(ok(json!({ "aggregate": view(a) })))
}
