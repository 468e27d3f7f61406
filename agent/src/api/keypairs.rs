//! Keypairs, stored on every cloudlet so that a boot may land anywhere
//! (docs/agent.md, "Keypairs").

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use os_wire::{ApiError, Service};
use serde_json::{json, Value};

use super::*;
use crate::core::keypairs as names;

fn keypair_not_found(name: &str, c: &Ctx) -> ApiError {
    fault(
        Service::Compute,
        404,
        format!("Keypair {name} not found for user {}", c.claims.user_id),
    )
}

pub(super) async fn keypairs_list(
    State(core): S,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
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
pub(super) async fn keypair_create(
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
    if !names::valid_name(name) {
        return Err(bad(
            "Keypair data is invalid: Keypair name contains unsafe characters",
        ));
    }
    let public_key = match kp.get("public_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err(bad("Invalid input for field/attribute public_key.")),
    };
    let stored = names::stored_name(&c.claims, name);
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
        if_public_key: None,
        public_key: created
            .get("public_key")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    core.broadcast_keypair(&c.claims, &copy, &c.rid).await;
    let view = names::user_view(created, &c.claims);
    Ok(json_resp(StatusCode::OK, &json!({ "keypair": view })))
}

pub(super) async fn keypair_show(
    State(core): S,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let c = ctx(&core, &headers, Service::Compute)?;
    let stored = names::stored_name(&c.claims, &name);
    let kp = core
        .keypair_here(&c.project, &stored, &c.rid)
        .await
        .map_err(|e| call_fault(Service::Compute, e))?
        .ok_or_else(|| keypair_not_found(&name, &c))?;
    let view = names::user_view(kp, &c.claims);
    Ok(json_resp(StatusCode::OK, &json!({ "keypair": view })))
}

/// Deletes the keypair on the own cloudlet and every member's (later for
/// a member that cannot do it now, see `Core::broadcast_keypair`).
pub(super) async fn keypair_delete(
    State(core): S,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let c = ctx(&core, &headers, Service::Compute)?;
    let stored = names::stored_name(&c.claims, &name);
    let cf = |e| call_fault(Service::Compute, e);
    // Its public key, so that a late removal elsewhere removes this one only.
    let public_key = core
        .keypair_here(&c.project, &stored, &c.rid)
        .await
        .map_err(cf)?
        .and_then(|k| {
            k.get("public_key")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    let here = core
        .delete_keypair_here(&c.project, &stored, &c.rid)
        .await
        .map_err(cf)?;
    let copy = KeypairCopy {
        name: stored,
        public_key: None,
        if_public_key: public_key,
    };
    let elsewhere = core.broadcast_keypair(&c.claims, &copy, &c.rid).await;
    if !here && elsewhere.is_empty() {
        return Err(keypair_not_found(&name, &c));
    }
    // Nova answers 202 up to microversion 2.1.
    Ok(StatusCode::ACCEPTED.into_response())
}
