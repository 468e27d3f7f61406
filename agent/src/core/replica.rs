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

use std::collections::BTreeSet;

use super::adopt::rendezvous;
use super::*;
use crate::protocol::{BootReplica, Gone, Lost, ReplicaState};

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

/// A delete for certain whose record this agent gave its backup
/// ([`Core::replicate_delete`]).
#[derive(Debug, Clone)]
pub struct SentDelete {
    rec: BootReplica,
    claims: Claims,
    /// The agent that acknowledged the record (none yet: sent again on the
    /// next membership check).
    holder: Option<String>,
}

/// Deletes for certain kept on two agents, and members to probe at once.
#[derive(Debug, Default)]
pub struct Pending {
    /// Held for peers as their backup: (cloudlet, local ID) → record. Taken
    /// over (the delete carried on here) once the sender is dead.
    pub held: BTreeMap<(String, String), Replica>,
    /// This agent's own deletes for certain not yet confirmed by their
    /// cloudlet, with the backup holding each.
    pub sent: BTreeMap<(String, String), SentDelete>,
    /// Members whose agent just timed out: their cloudlet is listed
    /// directly on the next background round ([`Core::peer_timed_out`]).
    pub probe_soon: BTreeSet<String>,
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

/// What the agent answering for a lost pair's servers tells every peer.
enum Notice {
    /// Deleted by the client: never shown again from memory.
    Gone(Gone),
    /// Taken over as lost: shown ERROR with the fault.
    Lost(Lost),
}

impl Notice {
    fn request(&self) -> PeerRequest<'_> {
        match self {
            Notice::Gone(g) => PeerRequest::Gone(g),
            Notice::Lost(l) => PeerRequest::Lost(l),
        }
    }

    fn rid(&self) -> &'static str {
        match self {
            Notice::Gone(_) => "req-gone",
            Notice::Lost(_) => "req-lost",
        }
    }
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
        self.note_sent(gid, &rec);
        self.send_record(gid, &to, &rec, &e.claims).await;
    }

    /// Remembers the last record sent for `gid` (with the plan already
    /// sent when a state change carries none), to send it again to a new
    /// backup; a deleted or moved boot is forgotten.
    fn note_sent(&self, gid: Uuid, rec: &BootReplica) {
        let Ok(mut sent) = self.sent_records.lock() else {
            return;
        };
        if rec.state == ReplicaState::Deleted || rec.owner != self.name {
            sent.remove(&gid);
            return;
        }
        let mut rec = rec.clone();
        if let Some(old) = sent.get(&gid).filter(|_| rec.plan.is_none()) {
            rec.plan = old.plan.clone();
            rec.demand = old.demand;
        }
        sent.insert(gid, rec);
    }

    /// The agent keeping this agent's record of a delete for certain on
    /// `owner`'s cloudlet: the live, unsuspected member ranked first for
    /// this agent's name other than this one and `owner` (whose agent may
    /// be cut off with its cloudlet, the reason the delete is pending);
    /// `owner` only when it is the only peer.
    async fn delete_backup(&self, owner: &str) -> Option<String> {
        let peers: Vec<String> = self
            .gossip
            .live_view()
            .await
            .into_iter()
            .map(|s| s.name)
            .filter(|n| *n != self.name)
            .collect();
        let best = |ok: &dyn Fn(&String) -> bool| {
            peers
                .iter()
                .filter(|n| ok(n))
                .max_by_key(|n| rendezvous(&self.name, n))
                .cloned()
        };
        best(&|n| *n != owner && !self.suspected(n)).or_else(|| best(&|_| true))
    }

    /// Sends `rec` to backup `to` (retried [`UPDATE_TRIES`] times); on
    /// success the directory names `to` as the record's holder.
    async fn send_record(&self, gid: Uuid, to: &str, rec: &BootReplica, claims: &Claims) -> bool {
        let sent = self
            .send_to(to, rec, claims, &format!("req-replica-{gid}"))
            .await;
        if sent {
            let keep = (rec.state != ReplicaState::Deleted).then(|| to.to_string());
            self.update(&gid, |x| x.backup = keep);
        }
        sent
    }

    /// Sends `rec` to agent `to` (retried [`UPDATE_TRIES`] times); true
    /// once it acknowledged. Counted on `/metrics` either way.
    async fn send_to(&self, to: &str, rec: &BootReplica, claims: &Claims, rid: &str) -> bool {
        let tok = self.token_for_claims(claims);
        for attempt in 1..=UPDATE_TRIES {
            let Some(url) = self.url_of(to).await else {
                break;
            };
            match self.peer(&url, &PeerRequest::Replica(rec), &tok, rid).await {
                Ok(r) if r.status().is_success() => {
                    Metrics::inc(&self.metrics.replicas_sent);
                    return true;
                }
                Ok(r) => {
                    warn!(gid = %rec.gid, local_id = %rec.local_id, backup = %to, status = %r.status(), "backup refused a record");
                    break;
                }
                Err(err) if attempt == UPDATE_TRIES => {
                    warn!(gid = %rec.gid, local_id = %rec.local_id, backup = %to, error = %err, "record not replicated");
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(self.cfg.boot_poll_ms.max(10))).await
                }
            }
        }
        Metrics::inc(&self.metrics.replicas_failed);
        false
    }

    /// Gives the backup the record of a delete for certain this agent
    /// starts (instance `local_id` of cloudlet `owner`: superseded by a
    /// re-placement, or abandoned), sent while the first delete is tried:
    /// should this agent die before the cloudlet confirms, the backup
    /// carries the delete on ([`Core::take_over_deletes`]). Without it a
    /// superseded instance that went ACTIVE unseen on a cut-off cloudlet
    /// outlived a dead coordinator, an orphan that could be found again
    /// under its server's ID once the client deleted the newest copy.
    /// True once a backup acknowledged; otherwise sent again on the next
    /// membership check ([`Core::rereplicate`]).
    pub(crate) async fn replicate_delete(
        &self,
        owner: &str,
        local_id: &str,
        claims: &Claims,
    ) -> bool {
        let rec = BootReplica {
            // Not a boot record: keyed by cloudlet and local ID.
            gid: Uuid::nil().to_string(),
            coordinator: self.name.clone(),
            owner: owner.to_string(),
            local_id: local_id.to_string(),
            name: String::new(),
            tenant: String::new(),
            plan: None,
            demand: [0; 3],
            tried: vec![],
            state: ReplicaState::Doomed,
        };
        let key = (owner.to_string(), local_id.to_string());
        if let Ok(mut p) = self.pending.lock() {
            p.sent.insert(
                key.clone(),
                SentDelete {
                    rec: rec.clone(),
                    claims: claims.clone(),
                    holder: None,
                },
            );
        }
        let Some(to) = self.delete_backup(owner).await else {
            return false;
        };
        if !self.send_to(&to, &rec, claims, "req-doomed").await {
            return false;
        }
        let landed = match self.pending.lock() {
            Ok(mut p) => match p.sent.get_mut(&key) {
                Some(s) => {
                    s.holder = Some(to.clone());
                    false
                }
                None => true,
            },
            Err(_) => false,
        };
        if landed {
            // Confirmed while the record travelled: forgotten at once.
            self.purge_delete(&to, rec, claims).await;
        }
        true
    }

    /// The delete of instance `local_id` of `owner` landed (its cloudlet
    /// said deleted or gone): the backup holding its record forgets it.
    pub(crate) async fn delete_confirmed(&self, owner: &str, local_id: &str) {
        let key = (owner.to_string(), local_id.to_string());
        let Some(s) = self
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.sent.remove(&key))
        else {
            return;
        };
        if let Some(holder) = s.holder {
            self.purge_delete(&holder, s.rec, &s.claims).await;
        }
    }

    /// Tells `holder` to forget a delete record (best effort: a record
    /// left behind costs one more delete, answered 404, if this agent dies).
    async fn purge_delete(&self, holder: &str, rec: BootReplica, claims: &Claims) {
        let rec = BootReplica {
            state: ReplicaState::Purged,
            ..rec
        };
        self.send_to(holder, &rec, claims, "req-doomed").await;
    }

    /// Keeps (or, [`ReplicaState::Purged`], forgets) a peer's delete
    /// record.
    fn hold_delete(&self, rec: BootReplica, claims: Claims, project: ProjectRef) {
        let Ok(mut p) = self.pending.lock() else {
            return;
        };
        let key = (rec.owner.clone(), rec.local_id.clone());
        if rec.state == ReplicaState::Purged {
            // Only the sender's own record (a record moved here from
            // another sender stays).
            if p.held
                .get(&key)
                .is_some_and(|r| r.rec.coordinator == rec.coordinator)
            {
                p.held.remove(&key);
            }
            return;
        }
        p.held.insert(
            key,
            Replica {
                rec,
                unreachable_since: None,
                claims,
                project,
            },
        );
    }

    /// Carries on the deletes held for members among `dead`: each is
    /// deleted for certain from here (retried until its cloudlet confirms,
    /// and replicated to this agent's own backup in turn), and every live
    /// peer is told never to list it meanwhile (`/p2p/v1/gone`).
    pub(crate) fn take_over_deletes(self: &Arc<Self>, dead: &HashSet<String>) {
        let due: Vec<Replica> = match self.pending.lock() {
            Ok(mut p) => {
                let keys: Vec<(String, String)> = p
                    .held
                    .iter()
                    .filter(|(_, r)| dead.contains(&r.rec.coordinator))
                    .map(|(k, _)| k.clone())
                    .collect();
                keys.iter().filter_map(|k| p.held.remove(k)).collect()
            }
            Err(_) => return,
        };
        for r in due {
            let (owner, local_id) = (&r.rec.owner, &r.rec.local_id);
            info!(cloudlet = %owner, local_id = %local_id, coordinator = %r.rec.coordinator, "carrying on a dead agent's delete for certain");
            let rid = format!("req-doomed-{local_id}");
            self.delete_for_certain(owner, local_id, &r.claims, &r.project, &rid);
            if *owner != self.name {
                self.announce_gone(owner, local_id, &r.claims);
            }
        }
    }

    /// Sends each delete record whose holder died (or whose first send
    /// failed) to the agent that would keep it now
    /// ([`Core::delete_backup`]).
    async fn rereplicate_deletes(&self, live: &HashSet<String>) {
        let sent: Vec<((String, String), SentDelete)> = match self.pending.lock() {
            Ok(p) => p.sent.iter().map(|(k, s)| (k.clone(), s.clone())).collect(),
            Err(_) => return,
        };
        for (key, s) in sent {
            let Some(to) = self.delete_backup(&key.0).await else {
                return;
            };
            let backup = to.as_str();
            // Kept while its holder lives (a member that merely ranks
            // better now does not move it).
            if s.holder
                .as_ref()
                .is_some_and(|h| h == backup || live.contains(h))
            {
                continue;
            }
            if !self.send_to(backup, &s.rec, &s.claims, "req-doomed").await {
                continue;
            }
            Metrics::inc(&self.metrics.replicas_resent);
            let still_pending = match self.pending.lock() {
                Ok(mut p) => p
                    .sent
                    .get_mut(&key)
                    .map(|x| x.holder = Some(backup.to_string()))
                    .is_some(),
                Err(_) => true,
            };
            if !still_pending {
                // Confirmed meanwhile: the new holder forgets it too.
                self.purge_delete(backup, s.rec, &s.claims).await;
            }
        }
    }

    /// Sends every record of a boot on the own cloudlet to the current
    /// backup when it is not the agent that holds it: the holder died, or
    /// a member that ranks first joined (run on every membership check).
    /// A holder still alive is then told to forget its copy, so that only
    /// one agent would ever take the boot over.
    pub(crate) async fn rereplicate(&self) {
        let Some(backup) = self.backup().await else {
            return;
        };
        let live: HashSet<String> = self
            .gossip
            .live_view()
            .await
            .into_iter()
            .map(|s| s.name)
            .collect();
        self.rereplicate_deletes(&live).await;
        let stale: Vec<(Uuid, BootReplica, DirEntry)> = {
            let Ok(sent) = self.sent_records.lock() else {
                return;
            };
            sent.iter()
                .filter_map(|(gid, rec)| {
                    let e = self.entry(gid)?;
                    let current = e.owner == self.name && e.state != DirState::Deleted;
                    (current && e.backup.as_deref() != Some(backup.as_str()))
                        .then(|| (*gid, rec.clone(), e))
                })
                .collect()
        };
        if stale.is_empty() {
            return;
        }
        info!(backup = %backup, records = stale.len(), "sending boot records to a new backup");
        for (gid, rec, e) in stale {
            if !self.send_record(gid, &backup, &rec, &e.claims).await {
                continue;
            }
            Metrics::inc(&self.metrics.replicas_resent);
            if let Some(old) = e.backup.filter(|o| *o != backup && live.contains(o)) {
                let forget = BootReplica {
                    plan: None,
                    state: ReplicaState::Deleted,
                    ..rec
                };
                // The directory keeps naming the new holder.
                if let Some(url) = self.url_of(&old).await {
                    let tok = self.token_for_claims(&e.claims);
                    let r = self
                        .peer(
                            &url,
                            &PeerRequest::Replica(&forget),
                            &tok,
                            "req-replica-moved",
                        )
                        .await;
                    if let Err(err) = r {
                        warn!(gid = %gid, old = %old, error = %err, "former backup not told to forget a boot record");
                    }
                }
            }
        }
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
        if matches!(rec.state, ReplicaState::Doomed | ReplicaState::Purged) {
            return self.hold_delete(rec, claims, project);
        }
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
        // A cloudlet known lost fails at once ([`Core::nova_call`]).
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
            claims: Arc::new(r.claims.clone()),
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
                // The lost instance is superseded: no agent shows it again
                // from its memory of that cloudlet (the new one is listed
                // where it lands).
                self.announce_gone(&owner, &entry.local_id, &entry.claims);
                self.replace_lost(gid, entry, plan, demand, rid, fault);
            }
            // Shown ERROR until the client deletes it; the delete then
            // removes the instance for certain (server_op). Every agent
            // shows it ERROR too, not UNKNOWN from its memory.
            None => {
                let lost = Lost {
                    cloudlet: owner.clone(),
                    local_ids: vec![entry.local_id.clone()],
                    fault,
                };
                self.remember_lost(&lost);
                self.announce_lost(lost, &entry.claims);
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
        let gone = Gone {
            cloudlet: owner.to_string(),
            local_ids: vec![local_id.to_string()],
        };
        self.broadcast(Notice::Gone(gone), claims);
    }

    /// Tells every live peer that these servers of a lost cloudlet show
    /// ERROR (best effort, in the background).
    fn announce_lost(self: &Arc<Self>, lost: Lost, claims: &Claims) {
        self.broadcast(Notice::Lost(lost), claims);
    }

    /// Sends `notice` to every live peer at once, in the background (best
    /// effort: a peer that cannot be told is logged).
    fn broadcast(self: &Arc<Self>, notice: Notice, claims: &Claims) {
        let me = self.clone();
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
                let (notice, tok, me) = (&notice, &tok, &me);
                async move {
                    let r = me.peer(&st.url, &notice.request(), tok, notice.rid()).await;
                    if let Err(e) = r {
                        warn!(peer = %st.name, error = %e, notice = notice.rid(), "could not tell a peer about servers of a lost cloudlet");
                    }
                }
            });
            futures::future::join_all(calls).await;
        });
    }

    /// Servers of lost cloudlet `l.cloudlet` that their backup shows ERROR:
    /// shown so from this agent's memory of that cloudlet too.
    pub fn remember_lost(&self, l: &Lost) {
        self.remember_lost_rows(&l.cloudlet, l.local_ids.iter().map(|id| (id, &l.fault)));
    }

    /// Instances of `cloudlet` known lost (local ID, fault), from a backup's
    /// announcement or a peer's answer about that cloudlet; never our own.
    pub fn remember_lost_rows<'a>(
        &self,
        cloudlet: &str,
        rows: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) {
        if cloudlet == self.name {
            return;
        }
        if let Ok(mut lost) = self.lost.lock() {
            for (id, fault) in rows {
                lost.insert((cloudlet.to_string(), id.clone()), fault.clone());
            }
        }
    }

    /// A remembered server of unreachable `cloudlet` (local ID `local`,
    /// already globalized): ERROR when its boot was taken over as lost,
    /// else UNKNOWN.
    pub fn mark_remembered(&self, cloudlet: &str, local: &str, s: &mut Value) {
        let fault = self
            .lost
            .lock()
            .ok()
            .and_then(|l| l.get(&(cloudlet.to_string(), local.to_string())).cloned());
        match fault {
            Some(f) => view::mark_lost(s, &f),
            None => view::mark_unknown(s),
        }
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
        self.forget_seen(&g.cloudlet, &g.local_ids);
    }
}
