//! Server actions (`POST /servers/{id}/action`: reboot, stop, start,
//! pause, suspend, lock, rebuild, …), carried out by the cloudlet holding
//! the instance. The answering agent is the one that answers `GET` for the
//! ID (its coordinator, adopter or backup): it knows where the instance
//! lives now. The cloudlet's answer (202, or Nova's 409/400 for an action
//! in the wrong state or a bad body) is passed on as it is.

use super::*;

/// The action named by a request body (its one key), for error messages.
pub fn action_name(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.as_object().and_then(|o| o.keys().next().cloned()))
        .unwrap_or_else(|| "action".into())
}

fn conflict(action: &str, gid: Uuid, vm_state: &str) -> Outcome {
    Outcome::json(
        StatusCode::CONFLICT,
        json!({"conflictingRequest": {"code": 409, "message": format!(
            "Cannot '{action}' instance {gid} while it is in vm_state {vm_state}")}}),
        None,
    )
}

impl Core {
    /// `POST /servers/{gid}/action` on the instance's cloudlet.
    pub async fn server_action(
        self: &Arc<Self>,
        gid: Uuid,
        claims: &Claims,
        p: &ProjectRef,
        body: Bytes,
        rid: &str,
    ) -> Outcome {
        let e = match self.lookup(gid, claims, p, rid).await {
            Ok(e) => e,
            Err(o) => return o,
        };
        let action = action_name(&body);
        match &e.state {
            DirState::Deleted => return not_found(gid),
            DirState::Retrying => return conflict(&action, gid, "building"),
            DirState::Failed(_) => return conflict(&action, gid, "error"),
            _ => {}
        }
        let owner = Some(e.owner.clone());
        // The one call path: the own cloudlet, the owner's agent, or the
        // owner's cloudlet itself when its agent is gone.
        let path = format!("/servers/{}/action", e.local_id);
        let r = self
            .owner_call(&e.owner, Method::POST, &path, Some(body), claims, p, rid)
            .await;
        match r {
            Ok(resp) => {
                let status = resp.status();
                if status == StatusCode::NOT_FOUND {
                    return not_found(gid);
                }
                let body = serde_json::from_slice::<Value>(resp.body()).ok();
                Outcome {
                    status,
                    body,
                    owner,
                }
            }
            Err(err) => Outcome::json(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"serviceUnavailable": {"code": 503, "message": format!(
                    "Cloudlet {} holding instance {gid} cannot be reached: {err}", e.owner)}}),
                owner,
            ),
        }
    }
}

/// Nova's 404 for an instance.
pub(crate) fn not_found(gid: Uuid) -> Outcome {
    Outcome::json(
        StatusCode::NOT_FOUND,
        json!({"itemNotFound": {"code": 404, "message": format!("Instance {gid} could not be found.")}}),
        None,
    )
}
