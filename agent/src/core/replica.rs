//! Boot records kept on a second agent (the *backup*): while a boot's
//! instance lives on its coordinator's own cloudlet, nobody else would know
//! it exists; if the agent and its cloudlet die together, the backup takes
//! the boot over (re-places it while it was building, else shows it ERROR
//! with the loss as fault), answers for it, and deletes it for certain.
//!
//! The backup is the live member ranked first for the coordinator's name
//! (rendezvous hashing, [`Core::adopter_of`]): once the coordinator is
//! dead, every agent that shares the view names that same agent as the
//! coordinator's adopter and sends it the requests for its IDs.

use super::adopt::rendezvous;
use super::*;
use crate::protocol::{BootReplica, Gone, ReplicaState};

/// A boot record held for a coordinator.
#[derive(Debug, Clone)]
pub struct Replica {
    pub rec: BootReplica,
    /// Since when its cloudlet has not answered (dead coordinator only).
    pub unreachable_since: Option<Instant>,
    /// The user the boot was made for (from the token of the call).
    pub claims: Claims,
    pub project: ProjectRef,
}

/// What [`Core::take_over`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakeOver {
    /// The ID is in this agent's directory now.
    Done,
    /// No held record, or its pair is not lost.
    NotHeld,
    /// Held, but its cloudlet has not been silent long enough (named).
    Pending(String),
}

/// How many times a replica update is sent before giving up (the backup
/// may be gone: then its records are gone too).
const UPDATE_TRIES: u32 = 3;

impl Core {
    /// The agent keeping this agent's boot records: the live member other
    /// than this one ranked first for this agent's name.
    pub async fn backup(&self) -> Option<String> {
        self.gossip
            .live_view()
            .await
            .into_iter()
            .map(|s| s.name)
            .filter(|n| *n != self.name)
            .max_by_key(|n| rendezvous(&self.name, n))
    }

    /// Sends the record of boot `gid` (which must be in the directory) to
    /// the backup: with its plan while it builds, as a state change after.
    /// Only boots held on the own cloudlet are replicated (an instance on
    /// another cloudlet is found there by its metadata); a boot that moved
    /// elsewhere is forgotten by the backup. Waits for the backup's answer
    /// (a client told "accepted" must be covered); a failure is logged and
    /// counted, not fatal: the boot is then known to this agent only.
    pub(crate) async fn replicate(
        &self,
        gid: Uuid,
        plan: Option<(&BootPlan, &Demand)>,
        state: ReplicaState,
    ) {
        if let Some(e) = self.entry(&gid) {
            self.replicate_entry(gid, e, plan, state).await;
        }
    }

    /// [`Core::replicate`] of a given directory entry.
    async fn replicate_entry(
        &self,
        gid: Uuid,
        e: DirEntry,
        plan: Option<(&BootPlan, &Demand)>,
        state: ReplicaState,
    ) {
        let (state, to) = if e.owner != self.name {
            match e.backup.clone() {
                Some(b) => (ReplicaState::Deleted, b),
                None => return,
            }
        } else {
            match e.backup.clone() {
                Some(b) => (state, b),
                None if state == ReplicaState::Deleted => return,
                None => match self.backup().await {
                    Some(b) => (state, b),
                    None => return,
                },
            }
        };
        let rec = BootReplica {
            gid: gid.to_string(),
            coordinator: self.name.clone(),
            owner: e.owner.clone(),
            local_id: e.local_id.clone(),
            name: e.name.clone(),
            tenant: e.tenant.clone(),
            plan: plan.map(|(p, _)| p.clone()),
            demand: plan.map_or([0; 3], |(_, d)| [d.vcpus, d.ram_mb, d.disk_gb]),
            tried: e.tried.clone(),
            state,
        };
        let tok = self.token_for_claims(&e.claims);
        let rid = format!("req-replica-{gid}");
        for attempt in 1..=UPDATE_TRIES {
            let Some(url) = self.url_of(&to).await else {
                break;
            };
            match self
                .peer(&url, &PeerRequest::Replica(&rec), &tok, &rid)
                .await
            {
                Ok(r) if r.status().is_success() => {
                    let keep = (state != ReplicaState::Deleted).then(|| to.clone());
                    self.update(&gid, |x| x.backup = keep);
                    return;
                }
                Ok(r) => {
                    warn!(gid = %gid, backup = %to, status = %r.status(), "backup refused a boot record");
                    break;
                }
                Err(err) if attempt == UPDATE_TRIES => {
                    warn!(gid = %gid, backup = %to, error = %err, "boot record not replicated");
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(self.cfg.boot_poll_ms.max(10))).await
                }
            }
        }
        Metrics::inc(&self.metrics.replicas_failed);
    }

    /// [`Core::replicate`] in the background (state changes after the
    /// client's answer).
    pub(crate) fn replicate_later(self: &Arc<Self>, gid: Uuid, e: DirEntry, state: ReplicaState) {
        let me = self.clone();
        self.spawn_bg(async move {
            // The snapshot may predate the first replication's answer.
            let backup = me.entry(&gid).and_then(|x| x.backup).or(e.backup.clone());
            if backup.is_some() {
                me.replicate_entry(gid, DirEntry { backup, ..e }, None, state)
                    .await;
            }
        });
    }

    /// Keeps (or, for [`ReplicaState::Deleted`], forgets) a peer's boot
    /// record; a state change keeps the plan already held.
    pub fn hold_replica(&self, rec: BootReplica, claims: Claims, project: ProjectRef) {
        let Ok(gid) = Uuid::parse_str(&rec.gid) else {
            return;
        };
        let Ok(mut held) = self.replicas.lock() else {
            return;
        };
        if rec.state == ReplicaState::Deleted {
            held.remove(&gid);
            return;
        }
        let mut rec = rec;
        if let Some(old) = held.get(&gid) {
            if rec.plan.is_none() {
                rec.plan = old.rec.plan.clone();
                rec.demand = old.rec.demand;
            }
        }
        held.insert(
            gid,
            Replica {
                rec,
                unreachable_since: None,
                claims,
                project,
            },
        );
    }

    /// Takes over every held boot whose coordinator is among `dead` and
    /// whose cloudlet is lost (see [`Core::take_over`]).
    pub(crate) async fn take_over_replicas(self: &Arc<Self>, dead: &HashSet<String>) {
        let gids: Vec<Uuid> = self
            .replicas
            .lock()
            .map(|h| {
                h.iter()
                    .filter(|(_, r)| dead.contains(&r.rec.coordinator))
                    .map(|(g, _)| *g)
                    .collect()
            })
            .unwrap_or_default();
        for gid in gids {
            self.take_over(gid).await;
        }
    }

    /// Takes over held boot `gid` once its coordinator is dead and its
    /// cloudlet cannot be reached either: the record moves into this
    /// agent's directory (this agent now answers for the ID). A boot
    /// still building (as last reported) is re-placed under its ID; one
    /// that was ACTIVE shows ERROR with the loss as fault (its disk is on
    /// the lost cloudlet). Either way the lost instance is deleted for
    /// certain should its cloudlet ever answer again. The cloudlet counts
    /// as lost once it did not answer for `owner_unreachable_ms` (a slow
    /// answer is not a loss: two agents would then coordinate the boot).
    pub(crate) async fn take_over(self: &Arc<Self>, gid: Uuid) -> TakeOver {
        let Some(r) = self.replicas.lock().ok().and_then(|h| h.get(&gid).cloned()) else {
            return TakeOver::NotHeld;
        };
        // Already answered for here (adopted, or deleted): the record is
        // spent; taking it over again would bring a deleted server back.
        if self.entry(&gid).is_some() {
            self.drop_replica(&gid);
            return TakeOver::Done;
        }
        if self.member(&r.rec.coordinator).await.alive || self.member(&r.rec.owner).await.alive {
            return TakeOver::NotHeld;
        }
        let rid = format!("req-takeover-{gid}");
        // Its agent is gone; its cloudlet may still answer (agent loss):
        // then the instance is found there, as for any dead coordinator.
        match self
            .fetch_local(&r.rec.owner, &r.rec.local_id, &r.claims, &r.project, &rid)
            .await
        {
            Ok(Some(_)) => {
                self.with_replica(&gid, |r| r.unreachable_since = None);
                return TakeOver::NotHeld;
            }
            Ok(None) => {
                // Deleted on the cloudlet itself: nothing to answer for.
                if let Ok(mut h) = self.replicas.lock() {
                    h.remove(&gid);
                }
                return TakeOver::NotHeld;
            }
            Err(_) => {
                let now = clock::now();
                let since = self
                    .with_replica(&gid, |r| *r.unreachable_since.get_or_insert(now))
                    .unwrap_or(now);
                let patience = Duration::from_millis(self.cfg.owner_unreachable_ms);
                if now.saturating_duration_since(since) < patience {
                    return TakeOver::Pending(r.rec.owner.clone());
                }
            }
        }
        let Some(r) = self.replicas.lock().ok().and_then(|mut h| h.remove(&gid)) else {
            return self.taken_if_in_directory(&gid);
        };
        if self.entry(&gid).is_some() {
            return TakeOver::Done;
        }
        let owner = r.rec.owner.clone();
        let fault = format!("cloudlet {owner} was lost with its agent (host lost)");
        let mut entry = DirEntry {
            owner: owner.clone(),
            local_id: r.rec.local_id.clone(),
            name: r.rec.name.clone(),
            tenant: r.rec.tenant.clone(),
            project: r.project.clone(),
            claims: r.claims.clone(),
            state: DirState::Failed(fault.clone()),
            tried: r.rec.tried.clone(),
            backup: None,
        };
        let budget = self.cfg.retries as usize + 1;
        let plan = r
            .rec
            .plan
            .clone()
            .filter(|_| r.rec.state == ReplicaState::Building && entry.tried.len() < budget);
        info!(gid = %gid, cloudlet = %owner, coordinator = %r.rec.coordinator, building = plan.is_some(), "took over the boot of a lost pair");
        Metrics::inc(&self.metrics.boots_taken_over);
        match plan {
            Some(plan) => {
                entry.state = DirState::Retrying;
                let [vcpus, ram_mb, disk_gb] = r.rec.demand;
                let demand = Demand {
                    vcpus,
                    ram_mb,
                    disk_gb,
                };
                let plan = BootPlan {
                    coordinator: self.name.clone(),
                    ..plan
                };
                if let Ok(mut d) = self.directory.lock() {
                    d.insert(gid, entry.clone());
                }
                self.replace_lost(gid, entry, plan, demand, rid, fault);
            }
            // Shown ERROR until the client deletes it; the delete then
            // removes the instance for certain (server_op).
            None => {
                if let Ok(mut d) = self.directory.lock() {
                    d.insert(gid, entry);
                }
            }
        }
        TakeOver::Done
    }

    fn taken_if_in_directory(&self, gid: &Uuid) -> TakeOver {
        if self.entry(gid).is_some() {
            TakeOver::Done
        } else {
            TakeOver::NotHeld
        }
    }

    /// Forgets a held record (its ID is answered for here now).
    pub(crate) fn drop_replica(&self, gid: &Uuid) {
        if let Ok(mut h) = self.replicas.lock() {
            h.remove(gid);
        }
    }

    fn with_replica<T>(&self, gid: &Uuid, f: impl FnOnce(&mut Replica) -> T) -> Option<T> {
        self.replicas.lock().ok()?.get_mut(gid).map(f)
    }

    /// The client deleted server `local_id` of lost cloudlet `owner`
    /// (taken over here): every live peer is told, so that none shows it
    /// again from what it remembers of that cloudlet. Best effort, in the
    /// background.
    pub(crate) fn announce_gone(self: &Arc<Self>, owner: &str, local_id: &str, claims: &Claims) {
        let me = self.clone();
        let gone = Gone {
            cloudlet: owner.to_string(),
            local_ids: vec![local_id.to_string()],
        };
        let tok = self.token_for_claims(claims);
        self.spawn_bg(async move {
            let peers: Vec<CloudletState> = me
                .gossip
                .live_view()
                .await
                .into_iter()
                .filter(|s| s.name != me.name)
                .collect();
            let calls = peers.iter().map(|st| {
                let (gone, tok) = (&gone, &tok);
                let me = &me;
                async move {
                    let r = me
                        .peer(&st.url, &PeerRequest::Gone(gone), tok, "req-gone")
                        .await;
                    if let Err(e) = r {
                        warn!(peer = %st.name, error = %e, "could not tell a peer of a deleted server of a lost cloudlet");
                    }
                }
            });
            futures::future::join_all(calls).await;
        });
    }

    /// A peer says these instances of lost cloudlet `g.cloudlet` were
    /// deleted: never shown again from this agent's memory of it.
    pub fn forget_gone(&self, g: &Gone) {
        if g.cloudlet == self.name {
            return;
        }
        if let Ok(mut d) = self.doomed.lock() {
            for id in &g.local_ids {
                d.insert((g.cloudlet.clone(), id.clone()));
            }
        }
    }
}
