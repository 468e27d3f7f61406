//! The list fan-out: every cloudlet's servers and federation-wide sums,
//! with what is remembered of unreachable members.

use super::*;

impl Core {
    /// Every cloudlet's servers for `p` (every project's with
    /// `all_tenants`, for an admin), globalized for `base`. Servers of
    /// unreachable cloudlets come from the last list seen, as UNKNOWN.
    pub async fn all_servers(
        &self,
        claims: &Claims,
        p: &ProjectRef,
        all_tenants: bool,
        base: &str,
        rid: &str,
    ) -> Vec<Value> {
        // Every member: with a partial view, a census of the overlay.
        let known = self.gossip.everyone().await;
        let tok = self.token_for_claims(claims);
        let path = if all_tenants {
            ALL_TENANTS_LIST
        } else {
            SERVER_LIST
        };
        // All tenants' lists are remembered apart from any project's.
        let cache_project = if all_tenants {
            ProjectRef {
                name: "*".into(),
                domain: "*".into(),
            }
        } else {
            p.clone()
        };
        let futs = known.iter().map(|(st, alive)| async move {
            let m = Member::of(st, *alive);
            // A member known lost with its cloudlet fails at once (its rows
            // then come from memory).
            let r = self.nova_json(&m, path, claims, p, rid).await.ok();
            (st, *alive, r)
        });
        let results = futures::future::join_all(futs).await;
        let mut out = vec![];
        // Rows remembered of unreachable cloudlets come after the rows
        // listed now: a re-placed boot shows where it lives now.
        let mut remembered = vec![];
        let mut reached = HashSet::new();
        for (st, alive, r) in results {
            let name = st.name.clone();
            let key = (name.clone(), cache_project.clone());
            match r.and_then(|v| v.get("servers").and_then(Value::as_array).cloned()) {
                Some(list) => {
                    reached.insert(name.clone());
                    let kept = self.rememberable(&name, &list);
                    if let Ok(mut c) = self.last_seen.lock() {
                        c.insert(key, kept);
                    }
                    for mut s in list {
                        if let Some(gid) = view::global_id_of(&s) {
                            if self.hidden(&name, &s, &gid) {
                                continue;
                            }
                            view::globalize(&mut s, &gid, base);
                            out.push(s);
                        }
                    }
                }
                None => {
                    let mut cached = self
                        .last_seen
                        .lock()
                        .ok()
                        .and_then(|c| c.get(&key).cloned())
                        .unwrap_or_default();
                    if alive && name != self.name && !all_tenants && !self.suspected(&name) {
                        // Its agent lives while its cloudlet does not
                        // answer: it knows what it created there since
                        // anyone listed it (a boot whose coordinator died
                        // before answering the client, say).
                        cached.extend(self.ask_member_itself(st, &tok, rid).await);
                    } else if cached.is_empty() && !all_tenants {
                        // Never listed it ourselves: ask peers what they saw.
                        cached = self.ask_peers_about(&name, &tok, &known, rid).await;
                    }
                    for mut s in cached {
                        if let Some(gid) = view::global_id_of(&s) {
                            if self.hidden(&name, &s, &gid) {
                                continue;
                            }
                            let local = s.get("id").and_then(Value::as_str).map(str::to_string);
                            view::globalize(&mut s, &gid, base);
                            self.mark_remembered(&name, local.as_deref().unwrap_or(""), &mut s);
                            remembered.push(s);
                        }
                    }
                }
            }
        }
        out.append(&mut remembered);
        // Coordinated servers with no instance to show (being re-placed,
        // failed everywhere) or on a cloudlet we have no list of.
        let seen: HashSet<String> = out
            .iter()
            .filter_map(|s| s.get("id").and_then(Value::as_str).map(str::to_string))
            .collect();
        if let Ok(d) = self.directory.lock() {
            for (gid, e) in d.iter() {
                let g = gid.to_string();
                if seen.contains(&g) || (!all_tenants && e.project != *p) {
                    continue;
                }
                let s = match &e.state {
                    DirState::Deleted => continue,
                    DirState::Retrying => {
                        view::synthetic(&g, &e.name, "BUILD", &e.tenant, None, base)
                    }
                    DirState::Failed(f) => {
                        view::synthetic(&g, &e.name, "ERROR", &e.tenant, Some(f), base)
                    }
                    _ if !reached.contains(&e.owner) => {
                        view::synthetic(&g, &e.name, "UNKNOWN", &e.tenant, None, base)
                    }
                    _ => continue,
                };
                out.push(s);
            }
        }
        // One row per global ID, real rows first.
        let mut ids = HashSet::new();
        out.retain(|s| {
            s.get("id")
                .and_then(Value::as_str)
                .is_none_or(|id| ids.insert(id.to_string()))
        });
        out
    }

    /// Drops instances `local_ids` of `cloudlet` from every list remembered
    /// of it (all projects): decided deleted, gone or superseded, they are
    /// never shown again from memory, by this agent or a peer asking it.
    pub(crate) fn forget_seen(&self, cloudlet: &str, local_ids: &[String]) {
        let Ok(mut seen) = self.last_seen.lock() else {
            return;
        };
        for ((name, _), rows) in seen.iter_mut() {
            if name == cloudlet {
                rows.retain(|s| {
                    s.get("id")
                        .and_then(Value::as_str)
                        .is_none_or(|id| !local_ids.iter().any(|l| l == id))
                });
            }
        }
    }

    /// A cloudlet's list as remembered: without the instances this agent
    /// is deleting for certain (a fresh list still holds them until the
    /// delete lands).
    fn rememberable(&self, cloudlet: &str, list: &[Value]) -> Vec<Value> {
        list.iter()
            .filter(|s| {
                let local = s.get("id").and_then(Value::as_str).unwrap_or_default();
                !self.is_doomed(cloudlet, local)
            })
            .cloned()
            .collect()
    }

    /// What this agent knows of `member`'s servers of project `p` without
    /// asking it: the last list seen, plus boots it coordinated there.
    pub fn known_servers_of(&self, member: &str, p: &ProjectRef) -> KnownServers {
        let mut out = self
            .last_seen
            .lock()
            .ok()
            .and_then(|c| c.get(&(member.to_string(), p.clone())).cloned())
            .unwrap_or_default();
        // Not what this agent knows to be deleted, superseded or moved
        // (the asker cannot tell: a partitioned cloudlet's last list still
        // holds instances deleted for certain since).
        out.retain(|s| view::global_id_of(s).is_none_or(|g| !self.hidden(member, s, &g)));
        if let Ok(d) = self.directory.lock() {
            for (gid, e) in d.iter() {
                if e.owner == member && e.project == *p && e.state != DirState::Deleted {
                    let mut row =
                        view::synthetic(&gid.to_string(), &e.name, "UNKNOWN", &e.tenant, None, "");
                    // Under its ID on that cloudlet, as a listed row: the
                    // asker then marks it as it marks its own memories
                    // (ERROR for a taken-over boot of a lost pair).
                    if !e.local_id.is_empty() {
                        row["id"] = json!(e.local_id);
                    }
                    out.push(row);
                }
            }
        }
        let listed: HashSet<&str> = out
            .iter()
            .filter_map(|s| s.get("id").and_then(Value::as_str))
            .collect();
        let mut lost = BTreeMap::new();
        if let Ok(l) = self.lost.lock() {
            for ((c, id), fault) in l.iter() {
                if c == member && listed.contains(id.as_str()) {
                    lost.insert(id.clone(), fault.clone());
                }
            }
        }
        if let Ok(d) = self.directory.lock() {
            for e in d.values() {
                if let DirState::Failed(f) = &e.state {
                    if e.owner == member && listed.contains(e.local_id.as_str()) {
                        lost.insert(e.local_id.clone(), f.clone());
                    }
                }
            }
        }
        KnownServers { servers: out, lost }
    }

    /// The last known state of `gid` on a member that is not alive (from
    /// this agent's and its peers' memories), with that member's name.
    pub async fn last_known_on_dead(
        &self,
        gid: Uuid,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) -> Option<(String, Value)> {
        // With a partial view every member heard of counts alive, so only a
        // suspected one can be searched below: with none suspected, the
        // copy of the view and address book is not worth making (every
        // 404 of a deleted server's last poll comes here).
        if self.gossip.partial_view().is_some() && !self.suspects_any() {
            return None;
        }
        let g = gid.to_string();
        let known = self.gossip.known().await;
        let tok = self.token_for_claims(claims);
        for (st, alive) in &known {
            if *alive && !self.suspected(&st.name) {
                continue;
            }
            // Its agent is gone but its cloudlet answers: the cloudlet's own
            // list is the truth (a server missing there is gone). Not
            // waited for when known lost with its agent.
            let direct = if self.silent(&Member::of(st, *alive)) {
                None
            } else {
                self.direct(&st.name).await
            };
            if let Some(c) = direct {
                if let Ok(v) = self.direct_list(&st.name, &c, p, rid).await {
                    if let Some(list) = v.get("servers").and_then(Value::as_array) {
                        let kept = self.rememberable(&st.name, list);
                        if let Ok(mut cache) = self.last_seen.lock() {
                            cache.insert((st.name.clone(), p.clone()), kept);
                        }
                    }
                    continue;
                }
            }
            let mut list = self.known_servers_of(&st.name, p).servers;
            if !list
                .iter()
                .any(|s| view::global_id_of(s).as_deref() == Some(g.as_str()))
            {
                list = self.ask_peers_about(&st.name, &tok, &known, rid).await;
            }
            if let Some(s) = list
                .into_iter()
                .find(|s| view::global_id_of(s).as_deref() == Some(g.as_str()))
            {
                return Some((st.name.clone(), s));
            }
        }
        None
    }

    /// What a live member's agent knows of its own (unreachable) cloudlet's
    /// servers.
    async fn ask_member_itself(&self, st: &CloudletState, tok: &str, rid: &str) -> Vec<Value> {
        let req = PeerRequest::Known { member: &st.name };
        match self.peer(&st.url, &req, tok, rid).await {
            Ok(r) => answer::<KnownServers>(&r)
                .map(|k| k.servers)
                .unwrap_or_default(),
            Err(_) => vec![],
        }
    }

    /// Asks up to two live peers what they know of `member`'s servers.
    pub(crate) async fn ask_peers_about(
        &self,
        member: &str,
        tok: &str,
        known: &[(CloudletState, bool)],
        rid: &str,
    ) -> Vec<Value> {
        let mut out = vec![];
        let peers = known
            .iter()
            .filter(|(s, alive)| {
                *alive && s.name != self.name && s.name != member && !self.suspected(&s.name)
            })
            .take(2);
        for (st, _) in peers {
            if let Ok(r) = self
                .peer(&st.url, &PeerRequest::Known { member }, tok, rid)
                .await
            {
                if let Ok(k) = answer::<KnownServers>(&r) {
                    self.remember_lost_rows(member, &k.lost);
                    out.extend(k.servers);
                }
            }
        }
        out
    }

    /// Substitutes [`PROJECT_PLACEHOLDER`] with the own cloudlet's ID of `p`.
    pub async fn with_local_project(
        &self,
        p: &ProjectRef,
        path: &str,
    ) -> Result<String, CallError> {
        if !path.contains(PROJECT_PLACEHOLDER) {
            return Ok(path.to_string());
        }
        let tok = self.cloudlet.token_for(p).await?;
        Ok(path.replace(PROJECT_PLACEHOLDER, &tok.project_id))
    }

    /// Sums a per-cloudlet JSON document (`inner` key) over every alive
    /// cloudlet (a census with a partial view); used for hypervisor
    /// statistics, limits and quotas.
    pub async fn federated_sum(
        &self,
        claims: &Claims,
        p: &ProjectRef,
        path: &str,
        pointer: &str,
        kind: view::SumKind,
        rid: &str,
    ) -> Result<Value, CallError> {
        let view = self.gossip.everyone_alive().await;
        let futs = view.iter().map(|st| async move {
            self.nova_json(&Member::of(st, true), path, claims, p, rid)
                .await
        });
        let results = futures::future::join_all(futs).await;
        let mut parts = vec![];
        let mut first_err = None;
        for r in results {
            match r {
                Ok(v) => parts.push(v.pointer(pointer).cloned().unwrap_or(Value::Null)),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if parts.is_empty() {
            return Err(first_err.unwrap_or(CallError::BadResponse("no cloudlet answered".into())));
        }
        Ok(view::sum_objects(parts.iter(), kind))
    }
}
