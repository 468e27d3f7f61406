//! Adoption: the unfinished boots of a dead coordinator are taken over by
//! one live agent (rendezvous hashing).

use super::*;
use crate::protocol::ReplicaState;

/// Rank of `member` for the cloudlet `owner` (rendezvous hashing): every
/// agent with the same view picks the same adopter.
pub(super) fn rendezvous(owner: &str, member: &str) -> u64 {
    use sha2::Digest;
    let d = sha2::Sha256::new()
        .chain_update(owner.as_bytes())
        .chain_update([0u8])
        .chain_update(member.as_bytes())
        .finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

impl Core {
    /// The agent answerable for the boots on `owner`'s cloudlet whose
    /// coordinator is dead: `owner`'s own agent while it lives, else the
    /// live member ranked first for `owner` (rendezvous hashing), so that
    /// agents sharing a view name the same one.
    pub async fn adopter_of(&self, owner: &str) -> Option<String> {
        let live = self.gossip.live_view().await;
        if live.iter().any(|s| s.name == owner) {
            return Some(owner.to_string());
        }
        live.into_iter()
            .map(|s| s.name)
            .max_by_key(|n| rendezvous(owner, n))
    }

    /// For an ID whose coordinator is gone: the URL of the live agent
    /// answerable for it (its adopter) when that is another agent. Ops
    /// then go there, so that a delete and the adopter's re-placement
    /// cannot cross (the adopter's directory decides).
    pub async fn adopter_url(
        &self,
        gid: Uuid,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) -> Option<(String, String)> {
        let (e, coordinator) = self.find_instance(gid, claims, p, rid).await.ok()??;
        // A re-placed instance names its adopter as coordinator: while that
        // one lives it decides, wherever the instance is now.
        let live = self.gossip.live_view().await;
        let adopter = match coordinator.filter(|c| live.iter().any(|s| s.name == *c)) {
            Some(c) => c,
            None => self.adopter_of(&e.owner).await?,
        };
        if adopter == self.name {
            return None;
        }
        let url = self.url_of(&adopter).await?;
        Some((adopter, url))
    }

    /// Starts the agent's own background work (see [`Core::adopt_loop`]).
    pub fn start_background(self: &Arc<Self>) {
        let me = self.clone();
        self.spawn_bg(async move { me.adopt_loop().await });
    }

    /// Boot records follow a change of backup ([`Core::rereplicate`]), and
    /// boots whose coordinator died are adopted: every capacity interval,
    /// while a member died less than `boot_watch_secs` ago, this agent
    /// lists the cloudlets it is the adopter of (its own, and those of dead
    /// agents it ranks first for) and watches each unfinished instance
    /// (BUILD, or ERROR with retries left) of a dead coordinator as if it
    /// had accepted it: re-placed on ERROR or when its cloudlet dies,
    /// deletable through any agent. Costs one list per interval and
    /// adopted cloudlet during that window, nothing otherwise.
    pub(crate) async fn adopt_loop(self: Arc<Self>) {
        let every = Duration::from_millis(self.cfg.capacity_interval_ms.max(10));
        let window = Duration::from_secs(self.cfg.boot_watch_secs);
        let mut dead_since: HashMap<String, Instant> = HashMap::new();
        loop {
            tokio::time::sleep(every).await;
            let now = clock::now();
            for (st, alive) in self.gossip.known().await {
                if alive {
                    dead_since.remove(&st.name);
                } else {
                    dead_since.entry(st.name).or_insert(now);
                }
            }
            // Cloudlets known silent are called again here, not on a
            // client's request.
            self.probe_silent();
            // The backup may have changed (died, or a better one joined).
            self.rereplicate().await;
            let dead: HashSet<String> = dead_since
                .iter()
                .filter(|(_, t)| now.saturating_duration_since(**t) < window)
                .map(|(n, _)| n.clone())
                .collect();
            if dead.is_empty() {
                continue;
            }
            self.take_over_replicas(&dead).await;
            self.take_over_deletes(&dead);
            let mut sources = vec![self.name.clone()];
            for d in &dead {
                if self.adopter_of(d).await.as_deref() == Some(self.name.as_str()) {
                    sources.push(d.clone());
                }
            }
            for src in sources {
                self.adopt_from(&src, &dead).await;
            }
        }
    }

    /// Adopts the unfinished boots of dead coordinators on `src`'s cloudlet.
    pub(crate) async fn adopt_from(self: &Arc<Self>, src: &str, dead: &HashSet<String>) {
        const LIST: &str = "/servers/detail?all_tenants=1&limit=1000";
        let sp = self.cloudlet.service_project().clone();
        let listed = if src == self.name {
            self.cloudlet.get_json(&sp, Svc::Compute, LIST, "").await
        } else {
            match self.direct(src).await {
                Some(c) => self
                    .direct_call(src, &c, &sp, Method::GET, LIST, None, "")
                    .await
                    .and_then(|r| json_of(&r)),
                None => return,
            }
        };
        let Ok(v) = listed else { return };
        let servers = v
            .get("servers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for s in servers {
            let coord = s
                .pointer(&format!("/metadata/{COORDINATOR_KEY}"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !dead.contains(coord) || coord == self.name {
                continue;
            }
            self.adopt(src, &s).await;
        }
    }

    /// Takes over the watch of one instance of a dead coordinator.
    pub(crate) async fn adopt(self: &Arc<Self>, owner: &str, s: &Value) {
        let status = s.get("status").and_then(Value::as_str).unwrap_or("");
        let local_id = s.get("id").and_then(Value::as_str).unwrap_or_default();
        let Some(gid) = s
            .pointer(&format!("/metadata/{METADATA_KEY}"))
            .and_then(Value::as_str)
            .and_then(|g| Uuid::parse_str(g).ok())
        else {
            return;
        };
        let record = PlanRecord::decode(s);
        let budget = self.cfg.retries as usize + 1;
        let attempt = record
            .as_ref()
            .map_or(budget, |r| r.attempt.max(1) as usize);
        let unfinished = status == "BUILD" || (status == "ERROR" && attempt < budget);
        if !unfinished
            || self.entry(&gid).is_some()
            || self
                .doomed
                .lock()
                .is_ok_and(|d| d.contains(&(owner.to_string(), local_id.to_string())))
        {
            return;
        }
        let str_of = |k: &str| {
            s.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        // Without a recorded plan (project, names) the boot is watched
        // with the service account and never re-placed.
        let project = record.as_ref().map_or_else(
            || self.cloudlet.service_project().clone(),
            |r| ProjectRef {
                name: r.project.clone(),
                domain: r.domain.clone(),
            },
        );
        let claims = Claims {
            user_id: String::new(),
            user_name: self.cfg.service_username.clone(),
            user_domain: self.cfg.service_domain.clone(),
            project_id: None,
            project_name: Some(project.name.clone()),
            project_domain: Some(project.domain.clone()),
            roles: vec!["member".into()],
            issued_at: now(),
            expires_at: now() + 3600,
            issuer: self.name.clone(),
            audit_id: String::new(),
        };
        // A newer instance of this ID elsewhere: the dead coordinator had
        // re-placed the boot and died before this superseded one was
        // deleted. It is deleted for certain, never adopted (two adopters
        // would each re-place the boot, and one copy would outlive the
        // client's delete). Undecided while a live cloudlet cannot be
        // listed: the next round decides.
        let rid = format!("req-adopt-{gid}");
        let own_attempt = record.as_ref().map_or(0, |r| r.attempt);
        match self.find_newest(gid, &claims, &project, &rid).await {
            Ok(Some(newer)) if newer.attempt > own_attempt => {
                info!(gid = %gid, cloudlet = %owner, superseded_by = %newer.entry.owner, "superseded instance of a dead coordinator deleted, not adopted");
                self.delete_for_certain(owner, local_id, &claims, &project, &rid);
                if owner != self.name {
                    // No agent filters that cloudlet's lists: every peer
                    // is told never to show it (its delete may take a while).
                    self.announce_gone(owner, local_id, &claims);
                }
                return;
            }
            Ok(_) => {}
            Err(_) => return,
        }
        let flavor_id = s
            .pointer("/flavor/id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let demand = match self
            .read_json(
                &claims,
                &project,
                Svc::Compute,
                &format!("/flavors/{flavor_id}"),
                "",
            )
            .await
        {
            Ok(f) => {
                let n = |k: &str| {
                    f.pointer(&format!("/flavor/{k}"))
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                };
                Demand {
                    vcpus: n("vcpus"),
                    ram_mb: n("ram"),
                    disk_gb: n("disk"),
                }
            }
            Err(_) => Demand::default(),
        };
        let mut metadata = s.get("metadata").cloned().unwrap_or_else(|| json!({}));
        if let Some(m) = metadata.as_object_mut() {
            for k in [METADATA_KEY, COORDINATOR_KEY, PLAN_KEY] {
                m.remove(k);
            }
        }
        let plan = BootPlan {
            gid: gid.to_string(),
            coordinator: self.name.clone(),
            server: json!({"name": str_of("name"), "metadata": metadata}),
            flavor_name: record
                .as_ref()
                .map(|r| r.flavor.clone())
                .unwrap_or_default(),
            image_name: record.as_ref().and_then(|r| r.image.clone()),
            networks: record
                .as_ref()
                .map(|r| r.networks.clone())
                .unwrap_or(Value::Null),
            scheduler_hints: None,
            attempt: attempt as u32,
            key: None,
        };
        // The cloudlets tried before are not known: only the count matters
        // for the budget, and the current owner is not tried again.
        let mut tried = vec![String::new(); attempt.saturating_sub(1)];
        tried.push(owner.to_string());
        if record.is_none() {
            tried.resize(budget.max(tried.len()), String::new());
        }
        let entry = DirEntry {
            owner: owner.to_string(),
            local_id: local_id.to_string(),
            name: str_of("name"),
            tenant: str_of("tenant_id"),
            project,
            claims: Arc::new(claims),
            state: DirState::Building,
            tried,
            backup: None,
        };
        info!(gid = %gid, cloudlet = %owner, status, "adopted the boot of a dead coordinator");
        Metrics::inc(&self.metrics.boots_adopted);
        // An ERROR instance is re-placed on the watcher's first poll.
        self.accept(gid, entry, plan.clone(), demand, rid);
        if owner == self.name {
            // Now on its adopter's own cloudlet: nobody else holds it.
            let me = self.clone();
            self.spawn_bg(async move {
                me.replicate(gid, Some((&plan, &demand)), ReplicaState::Building)
                    .await
            });
        }
    }
}
