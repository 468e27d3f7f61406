//! One create request, one or several servers (`min_count`/`max_count`):
//! every server is placed on its own (so they may spread over cloudlets)
//! and, as in Nova, the request is all-or-nothing below `min_count`.

use super::*;
use crate::protocol::ReplicaState;

/// A server of a create request that was placed and created.
#[derive(Debug, Clone)]
pub struct Placed {
    pub gid: Uuid,
    pub owner: String,
    /// The cloudlet's create answer (holds `adminPass`).
    pub created: Value,
}

/// Why a create request failed: the last placement error and the
/// cloudlets tried for it.
#[derive(Debug)]
pub struct NotPlaced {
    pub error: CallError,
    pub tried: Vec<String>,
}

impl Core {
    /// A fresh global ID coordinated by this agent.
    pub(crate) fn new_gid(&self) -> Option<Uuid> {
        let mut rng = self.rng.lock().ok()?;
        Some(idroute::new_global_id(&self.name, &mut *rng))
    }

    /// Places and creates up to `max` servers of `plan` (named `name-1` …
    /// `name-N`, Nova's `multi_instance_display_name_template`, when `max`
    /// is above 1). Placement stops at the first server that finds no room
    /// (as Nova creates as many as fit, up to `max`). If fewer than `min`
    /// were created, those are deleted for certain and the request fails;
    /// else each one is recorded, watched and, when kept on the own
    /// cloudlet, replicated to the backup before the caller answers.
    pub async fn create_servers(
        self: &Arc<Self>,
        claims: &Claims,
        p: &ProjectRef,
        plan: BootPlan,
        demand: Demand,
        (min, max): (u64, u64),
        rid: &str,
    ) -> Result<Vec<Placed>, NotPlaced> {
        let base_name = plan
            .server
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut done: Vec<(Placed, DirEntry, BootPlan)> = vec![];
        let mut failure = None;
        for k in 1..=max {
            let mut plan_k = plan.clone();
            let mut name = base_name.clone();
            if max > 1 {
                name = format!("{base_name}-{k}");
                plan_k.server["name"] = json!(name);
                if k > 1 {
                    let Some(gid) = self.new_gid() else { break };
                    plan_k.gid = gid.to_string();
                }
            }
            let Ok(gid) = Uuid::parse_str(&plan_k.gid) else {
                break;
            };
            let mut tried = vec![];
            match self
                .place_and_boot(claims, p, &plan_k, &demand, &mut tried, rid)
                .await
            {
                Ok((owner, local_id, created)) => {
                    let entry = DirEntry {
                        owner: owner.clone(),
                        local_id,
                        name,
                        tenant: claims.project_id.clone().unwrap_or_default(),
                        project: p.clone(),
                        claims: Arc::new(claims.clone()),
                        state: DirState::Building,
                        tried,
                        backup: None,
                    };
                    done.push((
                        Placed {
                            gid,
                            owner,
                            created,
                        },
                        entry,
                        plan_k,
                    ));
                }
                Err(error) => {
                    failure = Some(NotPlaced { error, tried });
                    break;
                }
            }
        }
        if (done.len() as u64) < min {
            // All or nothing: what was created goes.
            for (placed, e, _) in &done {
                warn!(gid = %placed.gid, "min_count not reached; deleting a created server");
                self.delete_for_certain(&e.owner, &e.local_id, claims, p, rid);
            }
            return Err(failure.unwrap_or(NotPlaced {
                error: CallError::Status {
                    status: 500,
                    message: "No valid host was found.".into(),
                },
                tried: vec![],
            }));
        }
        let mut out = vec![];
        for (placed, entry, plan_k) in done {
            let home = entry.owner == self.name;
            self.accept(placed.gid, entry, plan_k.clone(), demand, rid.to_string());
            if home {
                // Before the client hears "accepted": losing this agent
                // with its cloudlet must not lose the server.
                self.replicate(placed.gid, Some((&plan_k, &demand)), ReplicaState::Building)
                    .await;
            }
            out.push(placed);
        }
        Ok(out)
    }
}
