//! Boot planning: a user's `server` object turned into a portable plan,
//! created on the own cloudlet, or placed and retried across the federation.

use super::*;
use crate::protocol::PlanKey;

/// Instance metadata key holding what an adopter needs to re-place the
/// boot (flavor, image and network names, project, attempt), as compact
/// JSON; left out when it would exceed Nova's 255 characters.
pub const PLAN_KEY: &str = "p2p_plan";

/// The portable plan recorded in an instance's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRecord {
    #[serde(rename = "f")]
    pub flavor: String,
    #[serde(rename = "i", default)]
    pub image: Option<String>,
    #[serde(rename = "n", default)]
    pub networks: Value,
    #[serde(rename = "p")]
    pub project: String,
    #[serde(rename = "d")]
    pub domain: String,
    #[serde(rename = "a", default)]
    pub attempt: u32,
}

impl PlanRecord {
    /// The metadata value, if it fits Nova's 255 characters.
    pub fn encode(&self) -> Option<String> {
        serde_json::to_string(self).ok().filter(|s| s.len() <= 255)
    }

    pub fn decode(server: &Value) -> Option<Self> {
        let raw = server
            .pointer(&format!("/metadata/{PLAN_KEY}"))
            .and_then(Value::as_str)?;
        serde_json::from_str(raw).ok()
    }
}

fn last_segment(r: &str) -> String {
    r.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(r)
        .to_string()
}

impl Core {
    pub(crate) async fn resolve(
        &self,
        p: &ProjectRef,
        kind: &'static str,
        name: &str,
        rid: &str,
    ) -> Result<String, CallError> {
        if let Ok(n) = self.names.lock() {
            if let Some(id) = n.get(&(kind, name.to_string())) {
                return Ok(id.clone());
            }
        }
        let enc: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
        let (svc, path, list) = match kind {
            "flavor" => (
                Svc::Compute,
                "/flavors/detail?is_public=None".to_string(),
                "flavors",
            ),
            "image" => (Svc::Image, format!("/v2/images?name={enc}"), "images"),
            _ => (
                Svc::Network,
                format!("/v2.0/networks?name={enc}"),
                "networks",
            ),
        };
        let v = self.cloudlet.get_json(p, svc, &path, rid).await?;
        let id = v
            .get(list)
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|x| x.get("name").and_then(Value::as_str) == Some(name))
            })
            .and_then(|x| x.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| CallError::Status {
                status: 400,
                message: format!("{kind} {name} not found on cloudlet"),
            })?;
        if let Ok(mut n) = self.names.lock() {
            n.insert((kind, name.to_string()), id.clone());
        }
        Ok(id)
    }

    /// Validates the user's `server` object against the own cloudlet and
    /// turns it into a portable plan plus the flavor's demand.
    pub async fn plan_boot(
        &self,
        claims: &Claims,
        p: &ProjectRef,
        body: &Value,
        rid: &str,
    ) -> Result<(BootPlan, Demand), (u16, String)> {
        let server = body
            .get("server")
            .and_then(Value::as_object)
            .ok_or((400, "Missing server in request body".to_string()))?;
        let name = server.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            return Err((400, "Invalid input for field/attribute name.".into()));
        }
        let flavor_ref = server
            .get("flavorRef")
            .and_then(Value::as_str)
            .ok_or((400, "Missing flavorRef attribute".to_string()))?;
        let fid = last_segment(flavor_ref);
        let nf = |e: CallError, what: String| match e.status() {
            Some(404) => (400, what),
            Some(s) => (s, e.to_string()),
            None => (
                503,
                format!("no cloudlet reachable to resolve the request: {e}"),
            ),
        };
        let flavor = self
            .read_json(claims, p, Svc::Compute, &format!("/flavors/{fid}"), rid)
            .await
            .map_err(|e| nf(e, format!("Flavor {fid} could not be found.")))?;
        let f = flavor.get("flavor").unwrap_or(&Value::Null);
        let n = |k: &str| f.get(k).and_then(Value::as_i64).unwrap_or(0);
        let demand = Demand {
            vcpus: n("vcpus"),
            ram_mb: n("ram"),
            disk_gb: n("disk"),
        };
        let flavor_name = f
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(&fid)
            .to_string();
        let image_name = match server
            .get("imageRef")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(r) => {
                let iid = last_segment(r);
                let img = self
                    .read_json(claims, p, Svc::Image, &format!("/v2/images/{iid}"), rid)
                    .await
                    .map_err(|e| nf(e, format!("Image {iid} could not be found.")))?;
                if !self.may_use(claims, p, &img).await {
                    return Err((400, format!("Image {iid} could not be found.")));
                }
                Some(
                    img.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or(&iid)
                        .to_string(),
                )
            }
        };
        let networks = match server.get("networks") {
            Some(Value::Array(nets)) => {
                let mut names = vec![];
                for n in nets {
                    let Some(uuid) = n.get("uuid").and_then(Value::as_str) else {
                        return Err((400, "Only networks given by uuid can be federated".into()));
                    };
                    let net = self
                        .read_json(
                            claims,
                            p,
                            Svc::Network,
                            &format!("/v2.0/networks/{uuid}"),
                            rid,
                        )
                        .await
                        .map_err(|e| nf(e, format!("Network {uuid} could not be found.")))?;
                    let obj = net.get("network").unwrap_or(&Value::Null);
                    if !self.may_use(claims, p, obj).await {
                        return Err((400, format!("Network {uuid} could not be found.")));
                    }
                    names.push(json!(net
                        .pointer("/network/name")
                        .and_then(Value::as_str)
                        .unwrap_or(uuid)));
                }
                Value::Array(names)
            }
            Some(v @ Value::String(_)) => v.clone(),
            _ => Value::Null,
        };
        let mut rest = server.clone();
        for k in [
            "imageRef",
            "flavorRef",
            "networks",
            "min_count",
            "max_count",
            "return_reservation_id",
        ] {
            rest.remove(k);
        }
        // The user's keypair, by its stored name (see `keypairs`).
        let key = match server.get("key_name") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => {
                let stored = keypairs::stored_name(claims, name);
                let kp = self
                    .keypair_here(p, &stored, rid)
                    .await
                    .map_err(|e| nf(e, "Invalid key_name provided.".into()))?
                    .ok_or((400, "Invalid key_name provided.".to_string()))?;
                let public_key = kp
                    .get("public_key")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                rest.insert("key_name".into(), json!(stored));
                Some(PlanKey {
                    name: stored,
                    public_key,
                })
            }
            Some(_) => {
                return Err((
                    400,
                    "Invalid input for field/attribute key_name.".to_string(),
                ))
            }
        };
        let gid = {
            let mut rng = self
                .rng
                .lock()
                .map_err(|_| (500, "rng poisoned".to_string()))?;
            idroute::new_global_id(&self.name, &mut *rng)
        };
        Ok((
            BootPlan {
                gid: gid.to_string(),
                coordinator: self.name.clone(),
                server: Value::Object(rest),
                flavor_name,
                image_name,
                networks,
                scheduler_hints: body.get("OS-SCH-HNT:scheduler_hints").cloned(),
                attempt: 0,
                key,
            },
            demand,
        ))
    }

    /// Whether a non-admin of `p` may use a Glance image or Neutron network
    /// read with the service account: owned by `p` on this cloudlet,
    /// shared, external or public. When the own cloudlet cannot be asked,
    /// the read came through a peer, which trimmed it the same way.
    pub(crate) async fn may_use(&self, claims: &Claims, p: &ProjectRef, obj: &Value) -> bool {
        if claims.is_admin() {
            return true;
        }
        match self.cloudlet.token_for(p).await {
            Ok(t) => crate::policy::visible(obj, &t.project_id),
            Err(_) => true,
        }
    }

    /// Creates the planned server on the own cloudlet. Returns the local ID
    /// and the cloudlet's 202 body.
    pub async fn boot_local(
        &self,
        p: &ProjectRef,
        plan: &BootPlan,
        rid: &str,
    ) -> Result<(String, Value), CallError> {
        let mut server = plan.server.clone();
        if let Some(k) = &plan.key {
            // This cloudlet may have missed the keypair (down when it was
            // made, or joined later).
            self.ensure_keypair_here(p, &k.name, &k.public_key, rid)
                .await?;
        }
        let flavor = self.resolve(p, "flavor", &plan.flavor_name, rid).await?;
        server["flavorRef"] = json!(flavor);
        if let Some(img) = &plan.image_name {
            server["imageRef"] = json!(self.resolve(p, "image", img, rid).await?);
        }
        match &plan.networks {
            Value::Array(names) => {
                let mut nets = vec![];
                for n in names {
                    let name = n.as_str().unwrap_or_default();
                    nets.push(json!({"uuid": self.resolve(p, "network", name, rid).await?}));
                }
                server["networks"] = Value::Array(nets);
            }
            Value::String(s) => server["networks"] = json!(s),
            _ => {}
        }
        if !server.get("metadata").is_some_and(Value::is_object) {
            server["metadata"] = json!({});
        }
        server["metadata"][METADATA_KEY] = json!(plan.gid);
        server["metadata"][COORDINATOR_KEY] = json!(plan.coordinator);
        let record = PlanRecord {
            flavor: plan.flavor_name.clone(),
            image: plan.image_name.clone(),
            networks: plan.networks.clone(),
            project: p.name.clone(),
            domain: p.domain.clone(),
            attempt: plan.attempt.max(1),
        };
        if let Some(r) = record.encode() {
            server["metadata"][PLAN_KEY] = json!(r);
        }
        let mut body = json!({"server": server});
        if let Some(h) = &plan.scheduler_hints {
            body["OS-SCH-HNT:scheduler_hints"] = h.clone();
        }
        // Remembered before the call: an answer that comes too late (a
        // timeout) may still have made the instance.
        self.remember_created(p, plan, &plan.gid);
        let resp = self
            .cloudlet
            .call(
                p,
                Svc::Compute,
                Method::POST,
                "/servers",
                Some(Bytes::from(body.to_string())),
                rid,
            )
            .await;
        let refused = matches!(&resp, Ok(r) if r.status().is_client_error());
        let created = resp.and_then(|r| {
            let v = json_of(&r)?;
            let id = v
                .pointer("/server/id")
                .and_then(Value::as_str)
                .ok_or_else(|| CallError::BadResponse("no server id in create response".into()))?
                .to_string();
            Ok((id, v))
        });
        match &created {
            Ok((id, _)) => self.remember_created(p, plan, id),
            // Refused: nothing was made.
            Err(_) if refused => self.forget_created(p, &plan.gid),
            Err(_) => {}
        }
        created
    }

    /// Drops the row [`Core::remember_created`] kept under `key`.
    fn forget_created(&self, p: &ProjectRef, key: &str) {
        if let Ok(mut seen) = self.last_seen.lock() {
            if let Some(list) = seen.get_mut(&(self.name.clone(), p.clone())) {
                list.retain(|s| s.get("id").and_then(Value::as_str) != Some(key));
            }
        }
    }

    /// Remembers an instance just created on the own cloudlet among the
    /// servers last seen there: should the cloudlet stop answering before
    /// anyone lists it, this agent still reports it (a peer's list asks it,
    /// [`Core::all_servers`]), even if its coordinator died with the
    /// client's answer (issue 12: reported in lists or cleaned up). Kept
    /// under the global ID until the cloudlet names the instance.
    fn remember_created(&self, p: &ProjectRef, plan: &BootPlan, local_id: &str) {
        let name = plan
            .server
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut row = view::synthetic(&plan.gid, name, "BUILD", "", None, "");
        row["id"] = json!(local_id);
        if let Ok(mut seen) = self.last_seen.lock() {
            let list = seen.entry((self.name.clone(), p.clone())).or_default();
            // The row kept under the global ID before the create answered.
            list.retain(|s| s.get("id").and_then(Value::as_str) != Some(plan.gid.as_str()));
            if !list
                .iter()
                .any(|s| s.get("id").and_then(Value::as_str) == Some(local_id))
            {
                list.push(row);
            }
        }
    }

    /// Places and creates one boot, retrying on refusal up to
    /// `cfg.retries` more times on cloudlets not yet tried.
    pub async fn place_and_boot(
        self: &Arc<Self>,
        claims: &Claims,
        p: &ProjectRef,
        plan: &BootPlan,
        demand: &Demand,
        tried: &mut Vec<String>,
        rid: &str,
    ) -> Result<(String, String, Value), CallError> {
        let mut last_err = CallError::Status {
            status: 500,
            message: "No valid host was found. No live cloudlet to place on.".into(),
        };
        let budget = self.cfg.retries as usize + 1;
        let mut attempts = 0;
        while attempts < budget {
            // Only the target's name and URL outlive this block: the view
            // (every candidate's state) must not stay in the future while
            // the boot call waits (a burst holds thousands of them).
            let target = {
                let view = self.view().await;
                let tried_set: HashSet<String> = tried.iter().cloned().collect();
                let Ok(mut rng) = self.rng.lock() else { break };
                placement::choose(
                    &self.name,
                    &view,
                    demand,
                    &tried_set,
                    &self.policy(),
                    &mut *rng,
                )
                .map(|t| {
                    let url = view.iter().find(|s| s.name == t).map(|s| s.url.clone());
                    (t.to_string(), url)
                })
            };
            let Some((target, target_url)) = target else {
                break;
            };
            if !tried.is_empty() {
                Metrics::inc(&self.metrics.boot_retries);
            }
            attempts += 1;
            tried.push(target.clone());
            self.note_placement(&target, demand);
            let plan = &BootPlan {
                attempt: u32::try_from(tried.len()).unwrap_or(u32::MAX),
                ..plan.clone()
            };
            let result = if target == self.name {
                self.boot_local(p, plan, rid).await
            } else {
                match target_url {
                    None => Err(CallError::BadResponse("target vanished".into())),
                    Some(url) => {
                        let tok = self.token_for_claims(claims);
                        match self.peer(&url, &PeerRequest::Boot(plan), &tok, rid).await {
                            Ok(r) => answer::<BootAccepted>(&r).map(|a| (a.local_id, a.create)),
                            Err(e) => Err(e),
                        }
                    }
                }
            };
            match result {
                Ok((local_id, created)) => {
                    if target == self.name {
                        Metrics::inc(&self.metrics.boots_local);
                    } else {
                        Metrics::inc(&self.metrics.boots_remote);
                    }
                    info!(gid = %plan.gid, cloudlet = %target, attempt = attempts, "boot placed");
                    return Ok((target, local_id, created));
                }
                Err(e) => {
                    warn!(gid = %plan.gid, cloudlet = %target, error = %e, "boot refused; trying elsewhere");
                    if e.is_unreachable() {
                        self.suspect(&target);
                    }
                    if answer_lost(&e) {
                        self.sweep_lost_attempt(&target, plan, claims, p, rid);
                    }
                    last_err = e;
                }
            }
        }
        Metrics::inc(&self.metrics.boots_failed);
        Err(last_err)
    }

    /// An attempt whose answer was lost (a timeout, a dropped connection, a
    /// server error of the callee) may have created an instance anyway: the
    /// callee or its cloudlet did the work and then died or stalled. Once
    /// `target`'s cloudlet answers (at most `boot_watch_secs`), every
    /// instance of this boot made by that attempt (its recorded attempt
    /// number) is deleted for certain, so none is left behind or listed
    /// under the boot's global ID by another agent.
    fn sweep_lost_attempt(
        self: &Arc<Self>,
        target: &str,
        plan: &BootPlan,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) {
        let me = self.clone();
        let (target, gid, attempt) = (target.to_string(), plan.gid.clone(), plan.attempt);
        let (claims, p, rid) = (claims.clone(), p.clone(), rid.to_string());
        // Only servers of this name are listed (the filter is a regex).
        let name = plan
            .server
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let filter = format!("^{}$", regex::escape(name));
        let enc: String = url::form_urlencoded::byte_serialize(filter.as_bytes()).collect();
        let path = format!("/servers/detail?name={enc}&limit=1000");
        self.spawn_bg(async move {
            let poll = Duration::from_millis(me.cfg.boot_poll_ms.max(10));
            // A callee still working on the request is bounded by its own
            // call timeout: look after it.
            tokio::time::sleep(Duration::from_millis(me.cfg.request_timeout_ms) + poll).await;
            let deadline = clock::now() + Duration::from_secs(me.cfg.boot_watch_secs);
            while clock::now() < deadline {
                let m = me.member(&target).await;
                let Ok(v) = me.nova_json(&m, &path, &claims, &p, &rid).await else {
                    tokio::time::sleep(poll).await;
                    continue;
                };
                let servers = v.get("servers").and_then(Value::as_array);
                for s in servers.into_iter().flatten() {
                    let made_by_attempt = view::global_id_of(s).as_deref() == Some(gid.as_str())
                        && PlanRecord::decode(s).is_some_and(|r| r.attempt.max(1) == attempt);
                    if let (true, Some(id)) = (made_by_attempt, s.get("id").and_then(Value::as_str)) {
                        warn!(gid = %gid, cloudlet = %target, local_id = %id, "instance of a lost boot answer found; deleting it");
                        me.delete_for_certain(&target, id, &claims, &p, &rid);
                    }
                }
                return;
            }
        });
    }
}

/// Whether a failed boot attempt may still have created an instance.
fn answer_lost(e: &CallError) -> bool {
    match e {
        CallError::Transport(t) => !matches!(
            t,
            os_client::TransportError::Connect(_) | os_client::TransportError::InvalidRequest(_)
        ),
        CallError::Status { status, .. } => *status >= 500,
        CallError::BadResponse(_) => true,
    }
}
