//! The coordinator's directory (global ID → owner cloudlet and local ID)
//! and the server operations answered from it.

use super::*;
use crate::protocol::ReplicaState;
use crate::server_json::{ServerDoc, Shape, Shown};

/// Where a coordinated server lives now.
#[derive(Debug, Clone, PartialEq)]
pub enum DirState {
    Building,
    /// Being re-placed after a failure: users see BUILD.
    Retrying,
    Active,
    /// Failed everywhere and no instance holds the fault: users see ERROR.
    Failed(String),
    Deleted,
}

/// An instance of a global ID found on a cloudlet ([`Core::find_newest`]).
#[derive(Debug, Clone)]
pub struct Found {
    pub entry: DirEntry,
    /// The coordinator its metadata names.
    pub coordinator: Option<String>,
    /// Its recorded placement attempt (0 when unrecorded).
    pub attempt: u32,
}

#[derive(Debug, Clone)]
pub struct DirEntry {
    pub owner: String,
    pub local_id: String,
    pub name: String,
    pub tenant: String,
    pub project: ProjectRef,
    /// Shared: an entry is cloned on every lookup.
    pub claims: Arc<Claims>,
    pub state: DirState,
    pub tried: Vec<String>,
    /// The agent holding a copy of this record ([`Core::replicate`]).
    pub backup: Option<String>,
}

impl Core {
    /// Whether a listed instance must not be shown: this agent coordinates
    /// its global ID and knows it deleted, or knows it lives elsewhere now
    /// (a superseded instance awaiting deletion).
    pub(crate) fn hidden(&self, cloudlet: &str, s: &Value, gid: &str) -> bool {
        let local = s.get("id").and_then(Value::as_str).unwrap_or_default();
        if self.is_doomed(cloudlet, local) {
            return true;
        }
        let Ok(g) = Uuid::parse_str(gid) else {
            return false;
        };
        match self.entry(&g) {
            Some(e) => e.state == DirState::Deleted || e.owner != cloudlet || e.local_id != local,
            None => false,
        }
    }

    /// Whether this agent is deleting instance `local` of `cloudlet` for
    /// certain (superseded or abandoned).
    pub(crate) fn is_doomed(&self, cloudlet: &str, local: &str) -> bool {
        self.doomed
            .lock()
            .is_ok_and(|d| d.contains(&(cloudlet.to_string(), local.to_string())))
    }

    pub(crate) fn entry(&self, gid: &Uuid) -> Option<DirEntry> {
        self.directory.lock().ok().and_then(|d| d.get(gid).cloned())
    }

    pub(crate) fn update(&self, gid: &Uuid, f: impl FnOnce(&mut DirEntry)) {
        if let Ok(mut d) = self.directory.lock() {
            if let Some(e) = d.get_mut(gid) {
                f(e);
            }
        }
    }

    /// `GET`/`DELETE` of a global ID at its coordinator (or anywhere when
    /// the directory has to be rebuilt from instance metadata). A `GET`
    /// answers the owner's server object rewritten for the user without a
    /// JSON tree ([`ServerDoc`], carried as raw bytes in [`Shown::Server`])
    /// and, when `caller` is given, shaped as that caller may see it (key
    /// name as given, admin-only fields for admins).
    #[allow(clippy::too_many_arguments)]
    pub async fn server_op(
        self: &Arc<Self>,
        method: &Method,
        gid: Uuid,
        claims: &Claims,
        p: &ProjectRef,
        base: &str,
        rid: &str,
        caller: Option<&Claims>,
    ) -> Shown {
        let e = match self.lookup(gid, claims, p, rid).await {
            Ok(e) => e,
            Err(o) => return Shown::Other(o),
        };
        if *method == Method::DELETE {
            return Shown::Other(self.delete_entry(gid, e, claims, p, rid).await);
        }
        self.show_entry_for(gid, e, claims, p, base, rid, caller)
            .await
    }

    /// `DELETE` of a global ID whose entry `e` this agent answers for.
    async fn delete_entry(
        self: &Arc<Self>,
        gid: Uuid,
        e: DirEntry,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) -> Outcome {
        let not_found = || super::actions::not_found(gid);
        let g = gid.to_string();
        let owner = Some(e.owner.clone());
        self.update(&gid, |x| x.state = DirState::Deleted);
        self.drop_replica(&gid);
        self.replicate_later(gid, e.clone(), ReplicaState::Deleted);
        if matches!(e.state, DirState::Retrying | DirState::Failed(_)) {
            // An instance may remain where the boot last failed (e.g. a
            // cloudlet that stopped answering): delete it for certain.
            if !e.local_id.is_empty() {
                self.delete_for_certain(&e.owner, &e.local_id, claims, p, rid);
                if !self.member(&e.owner).await.alive {
                    self.announce_gone(&e.owner, &e.local_id, claims);
                }
            }
            return Outcome {
                status: StatusCode::NO_CONTENT,
                body: None,
                owner,
            };
        }
        match self
            .delete_local(&e.owner, &e.local_id, claims, p, rid)
            .await
        {
            Ok(s) if s == StatusCode::NOT_FOUND => not_found(),
            Ok(_) => Outcome {
                status: StatusCode::NO_CONTENT,
                body: None,
                owner,
            },
            Err(err) => {
                self.update(&gid, |x| x.state = e.state.clone());
                Outcome::json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"serviceUnavailable": {"code": 503, "message": format!("Cloudlet {} holding instance {g} cannot be reached: {err}", e.owner)}}),
                    owner,
                )
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn show_entry_for(
        &self,
        gid: Uuid,
        e: DirEntry,
        claims: &Claims,
        p: &ProjectRef,
        base: &str,
        rid: &str,
        caller: Option<&Claims>,
    ) -> Shown {
        let not_found = || Shown::Other(super::actions::not_found(gid));
        let g = gid.to_string();
        let owner = Some(e.owner.clone());
        let synthetic = |status: &str, fault: Option<&str>| {
            Shown::Other(Outcome::json(
                StatusCode::OK,
                json!({"server": view::synthetic(&g, &e.name, status, &e.tenant, fault, base)}),
                owner.clone(),
            ))
        };
        match &e.state {
            DirState::Retrying => return synthetic("BUILD", None),
            DirState::Failed(f) => return synthetic("ERROR", Some(f)),
            _ => {}
        }
        if e.state == DirState::Deleted && e.owner != self.name {
            // Deleted (the client was told so): a cloudlet lost with its
            // agent is not waited for to confirm it.
            let m = self.member(&e.owner).await;
            if !m.alive || self.silent(&m) {
                return not_found();
            }
        }
        let fetched = self
            .get_local(&e.owner, &e.local_id, claims, p, rid)
            .await
            .and_then(|r| match r {
                Some(resp) if !resp.status().is_success() => Err(status_error(&resp)),
                other => Ok(other),
            });
        let unreachable = |err: CallError| {
            warn!(gid = %g, owner = %e.owner, error = %err, "owner unreachable");
            if e.state == DirState::Deleted {
                return not_found();
            }
            synthetic("UNKNOWN", None)
        };
        let gone = || {
            if e.state == DirState::Deleted {
                if let Ok(mut d) = self.directory.lock() {
                    d.remove(&gid);
                }
            }
            not_found()
        };
        let resp = match fetched {
            Ok(Some(resp)) => resp,
            Ok(None) => return gone(),
            Err(err) => return unreachable(err),
        };
        // An ERROR that the watcher is about to retry shows as BUILD.
        let retried = |status: Option<&str>| {
            status == Some("ERROR")
                && e.state == DirState::Building
                && (self.cfg.retries as usize + 1) > e.tried.len()
        };
        match ServerDoc::parse(resp.body()) {
            Ok(Some(doc)) => {
                if retried(doc.str_field("status").as_deref()) {
                    return synthetic("BUILD", None);
                }
                let shape = Shape {
                    gid: &g,
                    base,
                    caller,
                };
                Shown::Server {
                    body: Bytes::from(doc.render(&shape)),
                    owner: e.owner.clone(),
                }
            }
            Ok(None) => gone(),
            // Not taken by the raw reading: the tree, as before.
            Err(_) => match serde_json::from_slice::<Value>(resp.body()) {
                Err(err) => unreachable(CallError::BadResponse(err.to_string())),
                Ok(mut v) => match v.get_mut("server").map(Value::take) {
                    None => gone(),
                    Some(mut s) => {
                        if retried(s.get("status").and_then(Value::as_str)) {
                            return synthetic("BUILD", None);
                        }
                        view::globalize(&mut s, &g, base);
                        Shown::Other(Outcome::json(StatusCode::OK, json!({"server": s}), owner))
                    }
                },
            },
        }
    }

    /// The directory entry answering for `gid` in project `p`: this
    /// agent's own, a held record of a lost pair (taken over now), or one
    /// rebuilt from instance metadata. Else the answer to give: 404, or
    /// 503 when a live member's cloudlet could not be asked.
    pub(crate) async fn lookup(
        self: &Arc<Self>,
        gid: Uuid,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) -> Result<DirEntry, Outcome> {
        let mut entry = self.entry(&gid);
        // A held record of a lost pair is this agent's to answer for.
        if entry.is_none() {
            match self.take_over(gid).await {
                TakeOver::Done => entry = self.entry(&gid),
                TakeOver::NotHeld => {}
                // Not yet known lost: not "not found" either.
                TakeOver::Pending(owner) => {
                    return Err(Outcome::json(
                        StatusCode::SERVICE_UNAVAILABLE,
                        json!({"serviceUnavailable": {"code": 503, "message": format!("Instance {gid} cannot be looked up: cloudlet {owner} cannot be reached.")}}),
                        Some(owner),
                    ))
                }
            }
        }
        let entry = match entry {
            Some(e) => Some(e),
            None => match self.rebuild_entry(gid, claims, p, rid).await {
                Ok(e) => e,
                // Not found, but a live member's cloudlet could not be
                // asked: a 404 would tell a client that deleted it that
                // it is gone (an orphan); say it cannot be answered.
                Err(member) => {
                    return Err(Outcome::json(
                        StatusCode::SERVICE_UNAVAILABLE,
                        json!({"serviceUnavailable": {"code": 503, "message": format!("Instance {gid} cannot be looked up: cloudlet {member} cannot be reached.")}}),
                        None,
                    ))
                }
            },
        };
        match entry {
            Some(e) if e.project == *p => Ok(e),
            _ => Err(super::actions::not_found(gid)),
        }
    }

    /// Finds `gid` by listing every cloudlet (its metadata names it). The
    /// entry is kept only for IDs this agent coordinates (a lost directory);
    /// another coordinator's boot may move meanwhile (its adopter
    /// re-placing it), so it is searched afresh each time.
    pub(crate) async fn rebuild_entry(
        &self,
        gid: Uuid,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) -> Result<Option<DirEntry>, String> {
        let Some((e, _)) = self.find_instance(gid, claims, p, rid).await? else {
            return Ok(None);
        };
        let ours = idroute::coordinator_tag(&gid) == Some(idroute::tag_of(&self.name));
        if ours {
            if let Ok(mut d) = self.directory.lock() {
                d.insert(gid, e.clone());
            }
        }
        Ok(Some(e))
    }

    /// Searches every known cloudlet's list for the instance of `gid`;
    /// with the coordinator its metadata names.
    pub(crate) async fn find_instance(
        &self,
        gid: Uuid,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) -> Result<Option<(DirEntry, Option<String>)>, String> {
        Ok(self
            .find_newest(gid, claims, p, rid)
            .await?
            .map(|f| (f.entry, f.coordinator)))
    }

    /// The newest instance of `gid` on any known cloudlet (the highest
    /// recorded placement attempt: while a re-placed boot's superseded
    /// instance awaits deletion, both carry the ID). `Err(member)` when
    /// none was found but a live member's cloudlet could not be listed.
    pub(crate) async fn find_newest(
        &self,
        gid: Uuid,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) -> Result<Option<Found>, String> {
        let g = gid.to_string();
        let known = self.gossip.known().await;
        // Every cloudlet at once (the search costs the slowest answer, not
        // their sum; a member known lost with its cloudlet fails at once,
        // see [`Core::nova_call`]).
        let lists = futures::future::join_all(known.iter().map(|(st, alive)| async move {
            let m = Member::of(st, *alive);
            self.nova_json(&m, SERVER_LIST, claims, p, rid).await.ok()
        }))
        .await;
        let mut unasked = None;
        let mut newest: Option<Found> = None;
        for ((st, alive), list) in known.iter().zip(lists) {
            if list.is_none() && *alive {
                // A live member whose cloudlet cannot be listed may hold
                // the instance: "not found" would be a guess.
                unasked.get_or_insert_with(|| st.name.clone());
            }
            let servers = list
                .and_then(|v| v.get("servers").and_then(Value::as_array).cloned())
                .unwrap_or_default();
            for s in servers {
                let local = s.get("id").and_then(Value::as_str).unwrap_or_default();
                if self.is_doomed(&st.name, local) {
                    // A superseded instance awaiting deletion is not the
                    // server (it would bring a deleted one back).
                    continue;
                }
                if view::global_id_of(&s).as_deref() != Some(g.as_str()) {
                    continue;
                }
                let attempt = PlanRecord::decode(&s).map_or(0, |r| r.attempt);
                if newest.as_ref().is_some_and(|n| n.attempt >= attempt) {
                    continue;
                }
                let str_of = |k: &str| {
                    s.get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                let entry = DirEntry {
                    owner: st.name.clone(),
                    local_id: local.to_string(),
                    name: str_of("name"),
                    tenant: str_of("tenant_id"),
                    project: p.clone(),
                    claims: Arc::new(claims.clone()),
                    state: DirState::Active,
                    tried: vec![st.name.clone()],
                    backup: None,
                };
                let coordinator = s
                    .pointer(&format!("/metadata/{COORDINATOR_KEY}"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                newest = Some(Found {
                    entry,
                    coordinator,
                    attempt,
                });
            }
        }
        match (newest, unasked) {
            (Some(f), _) => Ok(Some(f)),
            (None, Some(member)) => Err(member),
            (None, None) => Ok(None),
        }
    }
}
