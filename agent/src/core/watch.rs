//! Boot watching: every accepted boot is followed until ACTIVE, ERROR or
//! deletion; superseded instances are deleted for certain.

use super::*;
use crate::protocol::{LocalStatus, ReplicaState, StatusQuery, StatusReport};

/// What a boot watcher reads of a server.
#[derive(Debug, Deserialize)]
struct BootStatus {
    #[serde(default)]
    status: String,
    #[serde(default)]
    fault: Option<BootFault>,
}

#[derive(Debug, Deserialize)]
struct BootFault {
    message: Option<String>,
}

/// A boot being watched by its coordinator.
#[derive(Debug)]
pub struct Watch {
    plan: BootPlan,
    demand: Demand,
    rid: String,
    /// Watching ends here (`boot_watch_secs` after acceptance).
    deadline: Instant,
    /// Since when its cloudlet has not answered.
    unreachable_since: Option<Instant>,
}

/// The boots this agent watches, polled together (see [`Core::accept`]).
#[derive(Debug, Default)]
pub struct Watches {
    boots: BTreeMap<Uuid, Watch>,
    /// Whether the poll loop runs.
    polling: bool,
}

/// What one poll learnt of a watched boot.
enum Seen {
    Building,
    Status(BootStatus),
    Gone,
    Unreachable(String),
}

impl Core {
    /// Like [`Core::fetch_local`], for a watcher: only the status and the
    /// fault message are read from the answer.
    async fn fetch_status(
        &self,
        owner: &str,
        local_id: &str,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) -> Result<Option<BootStatus>, CallError> {
        let Some(resp) = self.get_local(owner, local_id, claims, p, rid).await? else {
            return Ok(None);
        };
        if !resp.status().is_success() {
            return Err(status_error(&resp));
        }
        #[derive(Deserialize)]
        struct Wrapped {
            // Absent: read as gone, as fetch_local does.
            #[serde(default)]
            server: Option<BootStatus>,
        }
        serde_json::from_slice::<Wrapped>(resp.body())
            .map(|w| w.server)
            .map_err(|e| CallError::BadResponse(format!("server status: {e}")))
    }

    /// Deletes an instance for certain: now, or retried every boot poll
    /// until its cloudlet answers (a superseded or abandoned instance must
    /// never come back under its global ID). Meanwhile it is hidden from
    /// this agent's lists and, once a delete failed, the owner cloudlet's
    /// agent is told too ([`PeerRequest::Superseded`]): it hides the
    /// instance from every list it serves and deletes it itself, so that no
    /// agent lists it when the cloudlet answers again. Pending deletes are
    /// counted on `/metrics`.
    pub fn delete_for_certain(
        self: &Arc<Self>,
        owner: &str,
        local_id: &str,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) {
        let me = self.clone();
        let (owner, local_id, claims, p, rid) = (
            owner.to_string(),
            local_id.to_string(),
            claims.clone(),
            p.clone(),
            rid.to_string(),
        );
        let new = self
            .doomed
            .lock()
            .is_ok_and(|mut g| g.insert((owner.clone(), local_id.clone())));
        if !new {
            return; // already being deleted
        }
        // Decided: no reader shows it again from a remembered list.
        self.forget_seen(&owner, std::slice::from_ref(&local_id));
        Metrics::inc(&self.metrics.deletes_pending);
        self.spawn_bg(async move {
            let every = Duration::from_millis(me.cfg.boot_poll_ms.max(10));
            let mut attempts = 1u64;
            let mut owner_told = owner == me.name;
            // The backup keeps a record of the delete while the first try
            // runs: should this agent die before the cloudlet confirms, the
            // backup carries it on ([`Core::take_over_deletes`]).
            let (mut result, _) = futures::join!(
                me.delete_local(&owner, &local_id, &claims, &p, &rid),
                me.replicate_delete(&owner, &local_id, &claims)
            );
            while let Err(e) = result {
                if attempts == 1 {
                    warn!(cloudlet = %owner, local_id = %local_id, error = %e, "delete failed; retrying until the cloudlet answers");
                }
                if !owner_told {
                    owner_told = me.tell_superseded(&owner, &local_id, &claims, &rid).await;
                }
                tokio::time::sleep(every).await;
                attempts += 1;
                result = me.delete_local(&owner, &local_id, &claims, &p, &rid).await;
            }
            me.metrics
                .deletes_pending
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            info!(cloudlet = %owner, local_id = %local_id, attempts, "superseded instance deleted");
            me.delete_confirmed(&owner, &local_id).await;
        });
    }

    /// Tells `owner`'s agent that its instance `local_id` must go; true
    /// once it acknowledged.
    async fn tell_superseded(
        &self,
        owner: &str,
        local_id: &str,
        claims: &Claims,
        rid: &str,
    ) -> bool {
        let m = self.member(owner).await;
        let (true, Some(url)) = (m.alive, m.url.as_deref()) else {
            return false;
        };
        let body = Superseded {
            local_ids: vec![local_id.to_string()],
        };
        let tok = self.token_for_claims(claims);
        match self
            .peer(url, &PeerRequest::Superseded(&body), &tok, rid)
            .await
        {
            Ok(r) if r.status().is_success() => true,
            Ok(r) => {
                warn!(cloudlet = %owner, status = %r.status(), "owner agent refused a superseded instance");
                false
            }
            Err(_) => false,
        }
    }

    /// Whether this agent's cloudlet holds instances it is deleting for
    /// certain (lists it serves must then be filtered).
    pub fn has_doomed_here(&self) -> bool {
        self.doomed
            .lock()
            .is_ok_and(|d| d.iter().any(|(c, _)| *c == self.name))
    }

    /// Removes the instances this agent's cloudlet holds and it is deleting
    /// for certain from a raw Nova list (`{"servers": [...]}`).
    pub fn drop_doomed_here(&self, list: &mut Value) {
        let Ok(d) = self.doomed.lock() else { return };
        if let Some(a) = list.get_mut("servers").and_then(Value::as_array_mut) {
            a.retain(|s| {
                let id = s.get("id").and_then(Value::as_str).unwrap_or_default();
                !d.contains(&(self.name.clone(), id.to_string()))
            });
        }
    }

    /// Records an accepted boot and watches it.
    pub fn accept(
        self: &Arc<Self>,
        gid: Uuid,
        entry: DirEntry,
        plan: BootPlan,
        demand: Demand,
        rid: String,
    ) {
        if let Ok(mut d) = self.directory.lock() {
            d.insert(gid, entry);
        }
        // A record held for its dead coordinator is spent (adopted here).
        self.drop_replica(&gid);
        let deadline = clock::now() + Duration::from_secs(self.cfg.boot_watch_secs);
        self.watch(
            gid,
            Watch {
                plan,
                demand,
                rid,
                deadline,
                unreachable_since: None,
            },
        );
    }

    /// Adds a boot to the watched set; starts the poller if it is idle.
    fn watch(self: &Arc<Self>, gid: Uuid, w: Watch) {
        let start = match self.watches.lock() {
            Ok(mut ws) => {
                ws.boots.insert(gid, w);
                !std::mem::replace(&mut ws.polling, true)
            }
            Err(_) => false,
        };
        if start {
            let me = self.clone();
            self.spawn_bg(async move { me.poll_loop().await });
        }
    }

    /// Every `boot_poll_ms` while boots are watched: one poll per owner
    /// cloudlet (and project) for all the boots on it. Ends when nothing
    /// is watched (an idle agent has no timer running).
    async fn poll_loop(self: Arc<Self>) {
        let poll = Duration::from_millis(self.cfg.boot_poll_ms.max(10));
        loop {
            tokio::time::sleep(poll).await;
            let now = clock::now();
            let mut groups: BTreeMap<(String, String, String), Vec<(Uuid, DirEntry)>> =
                BTreeMap::new();
            {
                let Ok(mut ws) = self.watches.lock() else {
                    return;
                };
                ws.boots.retain(|gid, w| {
                    w.deadline > now
                        && self
                            .entry(gid)
                            .is_some_and(|e| e.state != DirState::Deleted)
                });
                if ws.boots.is_empty() {
                    ws.polling = false;
                    return;
                }
                for gid in ws.boots.keys() {
                    if let Some(e) = self.entry(gid) {
                        let key = (
                            e.owner.clone(),
                            e.project.name.clone(),
                            e.project.domain.clone(),
                        );
                        groups.entry(key).or_default().push((*gid, e));
                    }
                }
            }
            let polls = groups
                .into_iter()
                .map(|((owner, ..), boots)| self.poll_owner(owner, boots));
            futures::future::join_all(polls).await;
        }
    }

    /// One poll of `owner`'s cloudlet for the watched `boots` on it (one
    /// project): their state from the owner's status feed
    /// ([`Core::feed_statuses`]), or, when the owner's agent cannot serve
    /// it, from the cloudlet itself ([`Core::poll_by_list`]).
    async fn poll_owner(self: &Arc<Self>, owner: String, boots: Vec<(Uuid, DirEntry)>) {
        let Some((_, first)) = boots.first() else {
            return;
        };
        let (claims, p) = (first.claims.clone(), first.project.clone());
        let rid = format!("req-watch-{owner}");
        let m = self.member(&owner).await;
        let ids: Vec<String> = boots.iter().map(|(_, e)| e.local_id.clone()).collect();
        let seen = match self.feed_statuses(&m, &claims, &p, &ids, &rid).await {
            Some(Ok(report)) => boots
                .into_iter()
                .map(|(gid, e)| {
                    let seen = match report.get(&e.local_id) {
                        None => Seen::Gone,
                        Some(s) => match &s.unreadable {
                            Some(why) => Seen::Unreachable(why.clone()),
                            None if s.status == "BUILD" => Seen::Building,
                            None => Seen::Status(BootStatus {
                                status: s.status.clone(),
                                fault: s.fault.clone().map(|m| BootFault { message: Some(m) }),
                            }),
                        },
                    };
                    (gid, e, seen)
                })
                .collect(),
            Some(Err(err)) => boots
                .into_iter()
                .map(|(gid, e)| (gid, e, Seen::Unreachable(err.to_string())))
                .collect(),
            None => self.poll_by_list(&m, &claims, &p, boots, &rid).await,
        };
        let alive = self.in_view(&owner).await;
        let patience = Duration::from_millis(self.cfg.owner_unreachable_ms);
        for (gid, e, seen) in seen {
            let fault = match seen {
                Seen::Building => {
                    self.with_watch(&gid, |w| w.unreachable_since = None);
                    continue;
                }
                Seen::Status(s) => {
                    self.with_watch(&gid, |w| w.unreachable_since = None);
                    match s.status.as_str() {
                        "ACTIVE" => {
                            info!(gid = %gid, cloudlet = %e.owner, "boot ACTIVE");
                            self.update(&gid, |e| e.state = DirState::Active);
                            self.unwatch(&gid);
                            self.replicate_later(gid, e, ReplicaState::Active);
                            continue;
                        }
                        "ERROR" => s
                            .fault
                            .and_then(|f| f.message)
                            .unwrap_or_else(|| "instance went to ERROR".to_string()),
                        _ => continue,
                    }
                }
                Seen::Gone => {
                    // Deleted on the cloudlet behind our back.
                    self.update(&gid, |e| e.state = DirState::Deleted);
                    self.unwatch(&gid);
                    continue;
                }
                Seen::Unreachable(err) => {
                    let now = clock::now();
                    let since = self
                        .with_watch(&gid, |w| *w.unreachable_since.get_or_insert(now))
                        .unwrap_or(now);
                    if alive && now.saturating_duration_since(since) < patience {
                        continue;
                    }
                    format!("cloudlet {} unreachable: {err}", e.owner)
                }
            };
            // Failed before ACTIVE: retry elsewhere if the budget allows.
            let Some(mut w) = self.unwatch(&gid) else {
                continue;
            };
            w.unreachable_since = None;
            let attempts_left = self.cfg.retries as usize + 1 > e.tried.len();
            if !attempts_left {
                warn!(gid = %gid, fault = %fault, "boot failed; retries exhausted");
                if fault.starts_with("cloudlet ") {
                    self.update(&gid, |e| e.state = DirState::Failed(fault.clone()));
                } else {
                    self.update(&gid, |e| e.state = DirState::Active); // real ERROR stays visible
                    self.replicate_later(gid, e, ReplicaState::Active);
                }
                continue;
            }
            self.update(&gid, |e| e.state = DirState::Retrying);
            let me = self.clone();
            self.spawn_bg(async move { me.replace(gid, e, w, fault).await });
        }
    }

    /// The state of `ids` on member `m`'s cloudlet from its agent's status
    /// feed (in-process for the own cloudlet), by local ID; an ID left out
    /// is gone. `None` when that agent cannot serve it (dead, suspected,
    /// unreachable, or without the feed): the cloudlet is then read
    /// directly. An error counts as the cloudlet being unreachable.
    async fn feed_statuses(
        &self,
        m: &Member,
        claims: &Claims,
        p: &ProjectRef,
        ids: &[String],
        rid: &str,
    ) -> Option<Result<HashMap<String, LocalStatus>, CallError>> {
        let by_id = |v: Vec<LocalStatus>| v.into_iter().map(|s| (s.id.clone(), s)).collect();
        if m.name == self.name {
            return Some(self.statuses_here(claims, p, ids, rid).await.map(by_id));
        }
        if !m.alive || self.suspected(&m.name) {
            return None;
        }
        let url = m.url.as_deref()?;
        let tok = self.token_for_claims(claims);
        let mut all = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(StatusQuery::MAX_IDS) {
            let q = StatusQuery {
                local_ids: chunk.to_vec(),
            };
            match self.peer(url, &PeerRequest::Statuses(&q), &tok, rid).await {
                // An agent that predates the feed.
                Ok(r) if r.status() == StatusCode::NOT_FOUND => return None,
                Ok(r) => match answer::<StatusReport>(&r) {
                    Ok(rep) => all.extend(rep.servers.into_iter().map(|s| (s.id.clone(), s))),
                    Err(e) => return Some(Err(e)),
                },
                // A host that swallows calls: suspected, and not chained
                // with a direct call (see `Core::nova_call`).
                Err(e @ CallError::Transport(os_client::TransportError::Timeout(_))) => {
                    self.suspect(&m.name);
                    return Some(Err(e));
                }
                Err(e) if e.is_unreachable() => {
                    self.suspect(&m.name);
                    return None;
                }
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok(all))
    }

    /// [`Core::poll_owner`] without the owner's agent: one list of the
    /// servers still building on the cloudlet (paged, through
    /// [`Core::nova_call`], i.e. directly when the agent is gone); each
    /// boot that left BUILD is then read once by ID for its outcome.
    async fn poll_by_list(
        &self,
        m: &Member,
        claims: &Claims,
        p: &ProjectRef,
        boots: Vec<(Uuid, DirEntry)>,
        rid: &str,
    ) -> Vec<(Uuid, DirEntry, Seen)> {
        let building = self.building_on(m, claims, p, rid).await;
        let seen = boots.into_iter().map(|(gid, e)| {
            let building = &building;
            async move {
                let seen = match building {
                    Ok(ids) if ids.contains(&e.local_id) => Seen::Building,
                    Ok(_) => match self
                        .fetch_status(&e.owner, &e.local_id, &e.claims, &e.project, rid)
                        .await
                    {
                        Ok(Some(s)) => Seen::Status(s),
                        Ok(None) => Seen::Gone,
                        Err(err) => Seen::Unreachable(err.to_string()),
                    },
                    Err(err) => Seen::Unreachable(err.to_string()),
                };
                (gid, e, seen)
            }
        });
        futures::future::join_all(seen).await
    }

    /// The local IDs of `p`'s servers in BUILD on member `m`'s cloudlet
    /// (every page).
    pub(super) async fn building_on(
        &self,
        m: &Member,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) -> Result<HashSet<String>, CallError> {
        const PAGE: usize = 1000;
        #[derive(Deserialize)]
        struct Brief {
            id: String,
        }
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            servers: Vec<Brief>,
        }
        let mut ids = HashSet::new();
        let mut marker: Option<String> = None;
        loop {
            let path = match &marker {
                None => format!("/servers?status=BUILD&limit={PAGE}"),
                Some(mk) => format!("/servers?status=BUILD&limit={PAGE}&marker={mk}"),
            };
            let r = self
                .nova_call(m, Method::GET, &path, None, claims, p, rid)
                .await?;
            let page: Page = answer(&r)?;
            let n = page.servers.len();
            marker = page.servers.last().map(|s| s.id.clone());
            ids.extend(page.servers.into_iter().map(|s| s.id));
            if n < PAGE {
                return Ok(ids);
            }
        }
    }

    /// Re-places a failed boot (on ERROR, or its cloudlet gone) and
    /// watches the new instance; the superseded one is deleted for certain.
    async fn replace(self: Arc<Self>, gid: Uuid, e: DirEntry, w: Watch, fault: String) {
        let mut tried = e.tried.clone();
        let res = self
            .place_and_boot(
                &e.claims, &e.project, &w.plan, &w.demand, &mut tried, &w.rid,
            )
            .await;
        // The superseded instance must go, now or once its cloudlet
        // answers again (else it comes back under the same ID). Only
        // after the new one exists: an agent that searches the
        // cloudlets for this ID meanwhile always finds an instance.
        self.delete_for_certain(&e.owner, &e.local_id, &e.claims, &e.project, &w.rid);
        match res {
            Ok((owner, local_id, _)) => {
                let deleted = self
                    .entry(&gid)
                    .map(|x| x.state == DirState::Deleted)
                    .unwrap_or(true);
                if deleted {
                    self.delete_for_certain(&owner, &local_id, &e.claims, &e.project, &w.rid);
                    return;
                }
                self.update(&gid, |x| {
                    x.owner = owner;
                    x.local_id = local_id;
                    x.tried = tried;
                    x.state = DirState::Building;
                });
                // Now on the own cloudlet: a backup holds the record; moved
                // elsewhere: the backup forgets it.
                self.replicate(gid, Some((&w.plan, &w.demand)), ReplicaState::Building)
                    .await;
                if clock::now() < w.deadline {
                    self.watch(gid, w);
                }
            }
            Err(err) => {
                let msg = format!("No valid host was found. Last: {fault}; then {err}");
                self.update(&gid, |x| {
                    x.tried = tried;
                    if x.state != DirState::Deleted {
                        x.state = DirState::Failed(msg);
                    }
                });
            }
        }
    }

    /// Re-places a taken-over boot of a lost pair at once (its record is
    /// in the directory, [`DirState::Retrying`]) and watches the new
    /// instance; the lost one is deleted for certain.
    pub(crate) fn replace_lost(
        self: &Arc<Self>,
        gid: Uuid,
        e: DirEntry,
        plan: BootPlan,
        demand: Demand,
        rid: String,
        fault: String,
    ) {
        let w = Watch {
            plan,
            demand,
            rid,
            deadline: clock::now() + Duration::from_secs(self.cfg.boot_watch_secs),
            unreachable_since: None,
        };
        let me = self.clone();
        self.spawn_bg(async move { me.replace(gid, e, w, fault).await });
    }

    fn unwatch(&self, gid: &Uuid) -> Option<Watch> {
        self.watches.lock().ok()?.boots.remove(gid)
    }

    fn with_watch<T>(&self, gid: &Uuid, f: impl FnOnce(&mut Watch) -> T) -> Option<T> {
        self.watches.lock().ok()?.boots.get_mut(gid).map(f)
    }
}
