//! `POST /servers/{id}/action`: reboot, os-stop/os-start, pause/unpause,
//! suspend/resume, rebuild (state changes that take the profile's model
//! time, see `driver.rs`), lock/unlock (API-only, immediate) and
//! add/removeSecurityGroup. Refusals are nova's: 409 `conflictingRequest`
//! for a wrong state or a locked server, 403 for a lock held by an admin.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use os_wire::ApiError;
use serde_json::{json, Map, Value};

use super::servers::{admin_pass, not_found, server_view, visible};
use super::S;
use crate::defaults::IMAGE_ID;
use crate::error::ApiResult;
use crate::http::{json_body, with_status};
use crate::lifecycle::{Action, ActionRefused};
use crate::state::{AuthCtx, LockedBy, Server, State};

/// One parsed action request body.
#[derive(Debug, Clone, PartialEq)]
enum Request {
    /// An action the compute node carries out (takes model time).
    Compute(Action, Option<RebuildArgs>),
    Lock,
    Unlock,
    AddSecurityGroup(String),
    RemoveSecurityGroup(String),
}

#[derive(Debug, Clone, PartialEq)]
struct RebuildArgs {
    name: Option<String>,
    metadata: Option<Map<String, Value>>,
}

fn invalid(field: &str) -> ApiError {
    ApiError::bad_request(S, format!("Invalid input for field/attribute {field}."))
}

/// Parses the body as nova's schemas do: exactly one action key.
fn parse(v: &Value) -> ApiResult<Request> {
    let obj = v
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| ApiError::bad_request(S, "Malformed request body"))?;
    let Some((key, arg)) = obj.iter().next() else {
        return Err(ApiError::bad_request(S, "Malformed request body"));
    };
    let group_name = |arg: &Value| {
        arg.get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(String::from)
            .ok_or_else(|| invalid("name"))
    };
    Ok(match key.as_str() {
        "reboot" => {
            let ty = arg
                .get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::required(S, "type"))?;
            // nova's schema: HARD/Hard/hard/SOFT/Soft/soft.
            let hard = match ty {
                "HARD" | "Hard" | "hard" => true,
                "SOFT" | "Soft" | "soft" => false,
                _ => return Err(invalid("type")),
            };
            Request::Compute(Action::Reboot { hard }, None)
        }
        "os-stop" => Request::Compute(Action::Stop, None),
        "os-start" => Request::Compute(Action::Start, None),
        "pause" => Request::Compute(Action::Pause, None),
        "unpause" => Request::Compute(Action::Unpause, None),
        "suspend" => Request::Compute(Action::Suspend, None),
        "resume" => Request::Compute(Action::Resume, None),
        "rebuild" => {
            let image = arg
                .get("imageRef")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::required(S, "imageRef"))?;
            let image = image.trim_end_matches('/').rsplit('/').next().unwrap_or("");
            if image != IMAGE_ID {
                return Err(ApiError::bad_request(
                    S,
                    format!("Image {image} could not be found."),
                ));
            }
            let name = match arg.get("name") {
                None => None,
                Some(Value::String(n)) if !n.trim().is_empty() && n.len() <= 255 => {
                    Some(n.trim().to_string())
                }
                Some(_) => return Err(invalid("name")),
            };
            let metadata = match arg.get("metadata") {
                None => None,
                Some(Value::Object(m)) if m.values().all(Value::is_string) && m.len() <= 128 => {
                    Some(m.clone())
                }
                Some(_) => return Err(invalid("metadata")),
            };
            Request::Compute(Action::Rebuild, Some(RebuildArgs { name, metadata }))
        }
        "lock" => Request::Lock,
        "unlock" => Request::Unlock,
        "addSecurityGroup" => Request::AddSecurityGroup(group_name(arg)?),
        "removeSecurityGroup" => Request::RemoveSecurityGroup(group_name(arg)?),
        other => {
            return Err(ApiError::bad_request(
                S,
                format!("There is no such action: {other}"),
            ))
        }
    })
}

/// nova's `raise_http_conflict_for_instance_invalid_state`.
fn conflict(refused: &ActionRefused, id: &str) -> ApiError {
    ApiError::conflict(
        S,
        format!(
            "Cannot '{}' instance {id} while it is in {} {}",
            refused.action, refused.attr, refused.state
        ),
    )
}

/// `check_instance_lock`: a locked server refuses actions (and deletes)
/// unless the caller is an admin.
pub(crate) fn check_lock(s: &Server, ctx: &AuthCtx) -> ApiResult<()> {
    if s.locked_by.is_some() && !ctx.is_admin {
        return Err(ApiError::conflict(
            S,
            format!("Instance {} is locked", s.id),
        ));
    }
    Ok(())
}

pub async fn action(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let ctx = st.authenticate(&headers, S)?;
    let request = parse(&json_body(S, &body)?)?;
    let now = st.now();
    let mut g = st.lock();
    let s = g
        .servers
        .get_mut(&id)
        .filter(|s| visible(s, &ctx))
        .ok_or_else(|| not_found(&id))?;
    let is_owner = ctx.project_id == Some(s.project_id);
    match request {
        Request::Compute(action, rebuild) => {
            check_lock(s, &ctx)?;
            let from = s.lc.vm_state;
            // On a copy: nothing changes unless every check passes.
            let mut lc = s.lc.clone();
            lc.begin(action).map_err(|e| conflict(&e, &id))?;
            // nova's `must_have_launched` (checked after the states): a
            // server that never reached ACTIVE has nothing to act on.
            if s.launched_at.is_none() {
                let refused = ActionRefused {
                    action: action.api_name(),
                    attr: "launched_at",
                    state: "None",
                };
                return Err(conflict(&refused, &id));
            }
            s.lc = lc;
            s.updated = now;
            let mut body = None;
            if let Some(args) = rebuild {
                if let Some(n) = args.name {
                    s.name = n;
                }
                if let Some(m) = args.metadata {
                    s.metadata = m;
                }
                let base = st.base_url(&headers);
                let mut view = serde_json::to_value(server_view(&base, s, ctx.is_admin))
                    .unwrap_or_else(|_| json!({}));
                view["adminPass"] = json!(admin_pass(&id));
                body = Some(json!({ "server": view }));
            }
            drop(g);
            st.engine.action(id, action, from);
            Ok(match body {
                Some(b) => with_status(StatusCode::ACCEPTED, b),
                None => StatusCode::ACCEPTED.into_response(),
            })
        }
        Request::Lock => {
            // nova: the owner re-locking is a no-op; an admin of another
            // project takes the lock over.
            if !(s.locked_by.is_some() && is_owner) {
                s.locked_by = Some(if is_owner {
                    LockedBy::Owner
                } else {
                    LockedBy::Admin
                });
            }
            Ok(StatusCode::ACCEPTED.into_response())
        }
        Request::Unlock => {
            let expected = if is_owner {
                LockedBy::Owner
            } else {
                LockedBy::Admin
            };
            if s.locked_by.is_some_and(|by| by != expected) && !ctx.is_admin {
                return Err(ApiError::forbidden(
                    S,
                    "Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override \
                     to be performed.",
                ));
            }
            s.locked_by = None;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        Request::AddSecurityGroup(name) => {
            if !s.security_groups.contains(&name) {
                s.security_groups.push(name);
            }
            Ok(StatusCode::ACCEPTED.into_response())
        }
        Request::RemoveSecurityGroup(name) => {
            let before = s.security_groups.len();
            s.security_groups.retain(|n| *n != name);
            if s.security_groups.len() == before {
                return Err(ApiError::not_found(
                    S,
                    format!(
                        "Security group {name} not found for project {}.",
                        s.project_id
                    ),
                ));
            }
            Ok(StatusCode::ACCEPTED.into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_parse_like_nova_schemas() {
        assert_eq!(
            parse(&json!({"reboot": {"type": "Hard"}})).unwrap(),
            Request::Compute(Action::Reboot { hard: true }, None)
        );
        assert_eq!(
            parse(&json!({"os-stop": null})).unwrap(),
            Request::Compute(Action::Stop, None)
        );
        assert_eq!(parse(&json!({"lock": null})).unwrap(), Request::Lock);
        for bad in [
            json!({"reboot": {"type": "WARM"}}),
            json!({"reboot": {}}),
            json!({"os-stop": null, "os-start": null}),
            json!({}),
            json!({"explode": null}),
            json!({"rebuild": {"imageRef": "nope"}}),
            json!({"rebuild": {}}),
            json!([1]),
        ] {
            let e = parse(&bad).expect_err("refused");
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn conflict_message_is_novas() {
        let e = conflict(
            &ActionRefused {
                action: "stop",
                attr: "vm_state",
                state: "stopped",
            },
            "abc",
        );
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert_eq!(
            e.body(),
            json!({"conflictingRequest": {"code": 409,
                "message": "Cannot 'stop' instance abc while it is in vm_state stopped"}})
        );
    }
}
