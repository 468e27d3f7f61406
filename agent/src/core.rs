//! The agent's shared state and the I/O-bound operations built on the pure
//! modules: placing and forwarding boots, watching them, routing server
//! IDs to their owner, and fanning lists out to every cloudlet.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cp_model::clock::{self, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use os_client::HttpResponse;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::{info, warn};
use uuid::Uuid;

use crate::cloudlet::{build_request, json_of, status_error, CloudletClient, ProjectRef, Svc};
use crate::error::CallError;
use crate::gossip::Gossip;
use crate::idroute::{self, COORDINATOR_KEY, METADATA_KEY};
use crate::metrics::Metrics;
use crate::peer_sig;
use crate::placement::{self, Demand, Policy};
use crate::state::CloudletState;
use crate::token::{self, Claims};
use crate::{view, AgentConfig};

/// Stands for "this cloudlet's ID of the caller's project" in paths sent
/// to every cloudlet (project IDs differ between cloudlets).
pub const PROJECT_PLACEHOLDER: &str = "@project";

/// Header carrying the agent-to-agent signature.
pub const P2P_AUTH: &str = "x-p2p-auth";

/// A boot, described portably (names, not cloudlet-local IDs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootPlan {
    pub gid: String,
    pub coordinator: String,
    /// The user's `server` object without imageRef/flavorRef/networks.
    pub server: Value,
    pub flavor_name: String,
    pub image_name: Option<String>,
    /// Network names, or the string `"auto"`/`"none"`, or null (omitted).
    pub networks: Value,
    pub scheduler_hints: Option<Value>,
    /// Which placement attempt this is (1 = the first); recorded in the
    /// instance so that an adopter knows the retry budget left.
    #[serde(default)]
    pub attempt: u32,
}

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

/// Rank of `member` for the cloudlet `owner` (rendezvous hashing): every
/// agent with the same view picks the same adopter.
fn rendezvous(owner: &str, member: &str) -> u64 {
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

#[derive(Debug, Clone)]
pub struct DirEntry {
    pub owner: String,
    pub local_id: String,
    pub name: String,
    pub tenant: String,
    pub project: ProjectRef,
    pub claims: Claims,
    pub state: DirState,
    pub tried: Vec<String>,
}

/// A client of another member's cloudlet, and when a call through it last
/// failed to connect.
pub type DirectClient = (Arc<CloudletClient>, Option<Instant>);

pub struct Core {
    pub cfg: AgentConfig,
    pub name: String,
    pub self_url: String,
    pub secret: Vec<u8>,
    /// Federation tokens already verified or minted.
    pub tokens: token::Cache,
    /// Signs this agent's `/p2p/v1` requests.
    pub peer_key: peer_sig::PeerKey,
    /// Checks peers' `/p2p/v1` requests and remembers their nonces.
    pub peer_verifier: Mutex<peer_sig::Verifier>,
    pub cloudlet: CloudletClient,
    pub gossip: Gossip,
    pub metrics: Metrics,
    /// Ordered, so that listings come out the same in every run.
    pub directory: Mutex<BTreeMap<Uuid, DirEntry>>,
    /// Peers that refused a connection: name → since.
    pub suspects: Mutex<HashMap<String, Instant>>,
    /// Last servers seen per (cloudlet, project), shown as UNKNOWN when the
    /// cloudlet cannot be reached.
    pub last_seen: Mutex<HashMap<(String, ProjectRef), Vec<Value>>>,
    /// name → id per (kind, name) on the own cloudlet.
    pub names: Mutex<HashMap<(&'static str, String), String>>,
    pub rng: Mutex<StdRng>,
    /// Draws request IDs (seeded like `rng`, kept apart from placement).
    pub request_ids: Mutex<StdRng>,
    /// Own recent placements, to correct the view between reports.
    pub recent: Mutex<placement::RecentPlacements>,
    /// Instances (cloudlet, local ID) this agent deleted or is deleting for
    /// certain: never listed again.
    pub doomed: Mutex<HashSet<(String, String)>>,
    /// Clients of other members' cloudlets, used when their agent is gone;
    /// with the time of the last direct call that could not connect.
    pub direct_clients: Mutex<HashMap<String, DirectClient>>,
    /// Set when the agent stops or is killed: background work (boot
    /// watchers, pending deletes, adoption) ends with it.
    pub halt: tokio::sync::watch::Sender<bool>,
}

/// Unix seconds on the project clock (virtual under the `sim` backend).
pub fn now() -> i64 {
    clock::unix_secs()
}

pub fn project_of(c: &Claims) -> Option<ProjectRef> {
    Some(ProjectRef {
        name: c.project_name.clone()?,
        domain: c.project_domain.clone().unwrap_or_else(|| "Default".into()),
    })
}

fn last_segment(r: &str) -> String {
    r.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(r)
        .to_string()
}

/// The user-facing outcome of an operation: a status and a JSON body, plus
/// the cloudlet that owns the server (for `X-P2P-Cloudlet`).
#[derive(Debug)]
pub struct Outcome {
    pub status: StatusCode,
    pub body: Option<Value>,
    pub owner: Option<String>,
}

impl Outcome {
    pub fn json(status: StatusCode, body: Value, owner: Option<String>) -> Self {
        Self {
            status,
            body: Some(body),
            owner,
        }
    }
}

impl Core {
    /// Spawns background work that ends when the agent stops or is killed
    /// (a dead agent must not keep re-placing boots).
    pub fn spawn_bg(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut halted = self.halt.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                _ = fut => {}
                _ = halted.wait_for(|h| *h) => {}
            }
        });
    }

    /// Ends every background task (see [`Core::spawn_bg`]).
    pub fn halt(&self) {
        self.halt.send_replace(true);
    }

    fn policy(&self) -> Policy {
        Policy {
            local_max_builds: self.cfg.local_max_builds,
        }
    }

    pub fn suspect(&self, name: &str) {
        if name == self.name {
            return;
        }
        if let Ok(mut s) = self.suspects.lock() {
            s.insert(name.to_string(), clock::now());
        }
    }

    fn is_suspect(&self, name: &str) -> bool {
        let ttl = Duration::from_millis(self.cfg.suspect_ms);
        self.suspects.lock().is_ok_and(|s| {
            s.get(name)
                .is_some_and(|since| clock::now().saturating_duration_since(*since) < ttl)
        })
    }

    fn suspected(&self, st: &CloudletState) -> bool {
        let Ok(mut s) = self.suspects.lock() else {
            return false;
        };
        let ttl = Duration::from_millis(self.cfg.suspect_ms);
        match s.get(&st.name) {
            Some(since) if clock::now().saturating_duration_since(*since) < ttl => true,
            Some(_) => {
                s.remove(&st.name);
                false
            }
            None => false,
        }
    }

    /// The placement view: alive by gossip, not suspected locally, and
    /// corrected with this agent's own placements since each report.
    pub async fn view(&self) -> Vec<CloudletState> {
        let v = self.gossip.live_view().await;
        let mut v: Vec<CloudletState> = v.into_iter().filter(|s| !self.suspected(s)).collect();
        if let Ok(mut recent) = self.recent.lock() {
            placement::account_recent(&mut v, &mut recent);
        }
        v
    }

    fn note_placement(&self, target: &str, demand: &Demand) {
        let now_ms = clock::unix_millis();
        if let Ok(mut r) = self.recent.lock() {
            let list = r.entry(target.to_string()).or_default();
            // Bound memory if a target stops reporting.
            if list.len() >= 10_000 {
                list.remove(0);
            }
            list.push(placement::Recent {
                demand: *demand,
                at_ms: now_ms,
            });
        }
    }

    /// URL of a member by name (alive or not).
    pub async fn url_of(&self, name: &str) -> Option<String> {
        if name == self.name {
            return Some(self.self_url.clone());
        }
        self.gossip.known().await.member(name).map(|(url, _)| url)
    }

    /// A signed call to a peer agent.
    pub async fn peer_call(
        &self,
        url: &str,
        method: Method,
        path: &str,
        user_token: &str,
        body: Option<Bytes>,
        request_id: &str,
    ) -> Result<HttpResponse, CallError> {
        let (pure_path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let mut nonce = [0u8; 16];
        if let Ok(mut rng) = self.request_ids.lock() {
            rand::RngCore::fill_bytes(&mut *rng, &mut nonce);
        }
        let sig = peer_sig::sign(
            &self.peer_key,
            now(),
            nonce,
            &peer_sig::Parts {
                method: method.as_str(),
                path: pure_path,
                query,
                body: body.as_deref().unwrap_or_default(),
                user_token,
            },
        );
        let mut req = build_request(
            method,
            &format!("{url}{path}"),
            Some(user_token),
            body,
            request_id,
        )?;
        if let Ok(v) = http::HeaderValue::from_str(&sig) {
            req.headers_mut().insert(P2P_AUTH, v);
        }
        let t0 = clock::now();
        let r = self.cloudlet.send(req).await;
        self.metrics
            .observe_forward(clock::now().saturating_duration_since(t0));
        r
    }

    /// A federation token for background work on behalf of `claims`.
    pub fn token_for_claims(&self, claims: &Claims) -> String {
        // Valid for at least 5 minutes (any call is bounded far below);
        // a new one lasts 10.
        self.tokens.mint(claims, &self.secret, now(), 300, 600)
    }

    // ---- name resolution on the own cloudlet ----

    async fn resolve(
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

    /// A read on the own cloudlet; when it cannot be reached, the same read
    /// on a healthy peer's cloudlet (names and IDs are portable), so an
    /// agent whose cloudlet is down can still plan boots.
    pub async fn read_json(
        &self,
        claims: &Claims,
        p: &ProjectRef,
        svc: Svc,
        path: &str,
        rid: &str,
    ) -> Result<Value, CallError> {
        let err = match self.cloudlet.get_json(p, svc, path, rid).await {
            Ok(v) => return Ok(v),
            Err(e) if e.status().is_some() => return Err(e),
            Err(e) => e,
        };
        let kind = match svc {
            Svc::Compute => "compute",
            Svc::Image => "image",
            Svc::Network => "network",
            _ => return Err(err),
        };
        let tok = self.token_for_claims(claims);
        let peers: Vec<CloudletState> = self
            .view()
            .await
            .into_iter()
            .filter(|s| s.name != self.name && s.healthy)
            .take(3)
            .collect();
        for st in peers {
            let path = format!("/p2p/v1/read/{kind}{path}");
            match self
                .peer_call(&st.url, Method::GET, &path, &tok, None, rid)
                .await
            {
                Ok(r) => return json_of(&r),
                Err(e) if e.is_unreachable() => self.suspect(&st.name),
                Err(_) => {}
            }
        }
        Err(err)
    }

    /// Authenticates a user on the own cloudlet, or through a healthy peer
    /// when the own cloudlet cannot be reached.
    pub async fn user_auth(&self, body: Bytes, rid: &str) -> Result<HttpResponse, CallError> {
        let err = match self.cloudlet.user_auth(body.clone(), rid).await {
            Ok(r) => return Ok(r),
            Err(e) => e,
        };
        let peers: Vec<CloudletState> = self
            .view()
            .await
            .into_iter()
            .filter(|s| s.name != self.name && s.healthy)
            .take(3)
            .collect();
        for st in peers {
            match self
                .peer_call(
                    &st.url,
                    Method::POST,
                    "/p2p/v1/auth",
                    "",
                    Some(body.clone()),
                    rid,
                )
                .await
            {
                Ok(r) => return Ok(r),
                Err(e) if e.is_unreachable() => self.suspect(&st.name),
                Err(_) => {}
            }
        }
        Err(err)
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
        ] {
            rest.remove(k);
        }
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
            },
            demand,
        ))
    }

    /// Whether a non-admin of `p` may use a Glance image or Neutron network
    /// read with the service account: owned by `p` on this cloudlet,
    /// shared, external or public. When the own cloudlet cannot be asked,
    /// the read came through a peer, which trimmed it the same way.
    async fn may_use(&self, claims: &Claims, p: &ProjectRef, obj: &Value) -> bool {
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
            .await?;
        let v = json_of(&resp)?;
        let id = v
            .pointer("/server/id")
            .and_then(Value::as_str)
            .ok_or_else(|| CallError::BadResponse("no server id in create response".into()))?
            .to_string();
        Ok((id, v))
    }

    /// Places and creates one boot, retrying on refusal up to
    /// `cfg.retries` more times on cloudlets not yet tried.
    pub async fn place_and_boot(
        &self,
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
            let view = self.view().await;
            let tried_set: HashSet<String> = tried.iter().cloned().collect();
            let target = {
                let Ok(mut rng) = self.rng.lock() else { break };
                placement::choose(
                    &self.name,
                    &view,
                    demand,
                    &tried_set,
                    &self.policy(),
                    &mut *rng,
                )
                .map(str::to_string)
            };
            let Some(target) = target else { break };
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
                match view.iter().find(|s| s.name == target) {
                    None => Err(CallError::BadResponse("target vanished".into())),
                    Some(st) => {
                        let tok = self.token_for_claims(claims);
                        let body = Bytes::from(serde_json::to_vec(plan).unwrap_or_default());
                        match self
                            .peer_call(&st.url, Method::POST, "/p2p/v1/boot", &tok, Some(body), rid)
                            .await
                        {
                            Ok(r) => json_of(&r).and_then(|v| {
                                let id = v
                                    .get("local_id")
                                    .and_then(Value::as_str)
                                    .map(str::to_string);
                                let sv = v.get("create").cloned().unwrap_or(Value::Null);
                                id.map(|i| (i, sv))
                                    .ok_or_else(|| CallError::BadResponse("no local_id".into()))
                            }),
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
                    last_err = e;
                }
            }
        }
        Metrics::inc(&self.metrics.boots_failed);
        Err(last_err)
    }

    /// Fetches the cloudlet-local server `local_id` from `owner`:
    /// `Ok(None)` when the cloudlet says 404.
    /// A Nova call about a server on `owner`'s cloudlet: locally, through
    /// `owner`'s agent, or, when that agent is gone (dead by gossip, or
    /// unreachable), straight to its cloudlet (see [`Core::direct`]).
    async fn owner_call(
        &self,
        owner: &str,
        method: Method,
        nova_path: &str,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) -> Result<HttpResponse, CallError> {
        if owner == self.name {
            return self
                .cloudlet
                .call(p, Svc::Compute, method, nova_path, None, rid)
                .await;
        }
        // One read of the overlay for both questions (alive? where?).
        let member = self.gossip.known().await.member(owner);
        let alive = member.as_ref().is_some_and(|(_, alive)| *alive);
        if !alive || self.is_suspect(owner) {
            if let Some(c) = self.direct(owner).await {
                return self.direct_call(owner, &c, p, method, nova_path, rid).await;
            }
        }
        let url = member
            .map(|(url, _)| url)
            .ok_or_else(|| CallError::BadResponse(format!("unknown cloudlet {owner}")))?;
        let tok = self.token_for_claims(claims);
        let r = self
            .peer_call(
                &url,
                method.clone(),
                &format!("/p2p/v1/local{nova_path}"),
                &tok,
                None,
                rid,
            )
            .await;
        match r {
            // A timeout means a host that swallows calls (gone, partitioned):
            // its cloudlet would most likely hang too, and chaining both
            // would make one call cost twice the timeout. Suspected, the
            // member is tried directly first next time.
            Err(e @ CallError::Transport(os_client::TransportError::Timeout(_))) => {
                self.suspect(owner);
                Err(e)
            }
            Err(e) if e.is_unreachable() => match self.direct(owner).await {
                Some(c) => self.direct_call(owner, &c, p, method, nova_path, rid).await,
                None => Err(e),
            },
            other => other,
        }
    }

    async fn direct_list(
        &self,
        member: &str,
        c: &CloudletClient,
        p: &ProjectRef,
        rid: &str,
    ) -> Result<Value, CallError> {
        let r = self
            .direct_call(member, c, p, Method::GET, "/servers/detail?limit=1000", rid)
            .await?;
        json_of(&r)
    }

    /// A client of `member`'s cloudlet itself, for when its agent is gone:
    /// the cloudlet's Keystone URL comes from the member's (authenticated)
    /// gossip state and this agent's service account is used (the same
    /// account must exist on every cloudlet). `None` when unknown, or when
    /// a direct call failed to connect within the last `suspect_ms`.
    pub async fn direct(&self, member: &str) -> Option<Arc<CloudletClient>> {
        let ttl = Duration::from_millis(self.cfg.suspect_ms);
        if let Ok(d) = self.direct_clients.lock() {
            if let Some((c, failed)) = d.get(member) {
                return match failed {
                    Some(at) if clock::now().saturating_duration_since(*at) < ttl => None,
                    _ => Some(c.clone()),
                };
            }
        }
        let st = self
            .gossip
            .known()
            .await
            .into_iter()
            .find(|(s, _)| s.name == member)?
            .0;
        let url = st.cloudlet_auth_url.filter(|u| !u.is_empty())?;
        let mut cfg = self.cfg.clone();
        cfg.cloudlet_auth_url = url;
        let c = Arc::new(CloudletClient::new(&cfg, self.cloudlet.transport()));
        if let Ok(mut d) = self.direct_clients.lock() {
            d.insert(member.to_string(), (c.clone(), None));
        }
        Some(c)
    }

    async fn direct_call(
        &self,
        member: &str,
        c: &CloudletClient,
        p: &ProjectRef,
        method: Method,
        nova_path: &str,
        rid: &str,
    ) -> Result<HttpResponse, CallError> {
        let r = c.call(p, Svc::Compute, method, nova_path, None, rid).await;
        if let Ok(mut d) = self.direct_clients.lock() {
            if let Some(entry) = d.get_mut(member) {
                entry.1 = match &r {
                    Err(e) if e.is_unreachable() => Some(clock::now()),
                    _ => None,
                };
            }
        }
        if r.is_ok() {
            Metrics::inc(&self.metrics.direct_calls);
        }
        r
    }

    /// Fetches the cloudlet-local server `local_id` from `owner`:
    /// `Ok(None)` when the cloudlet says 404.
    pub async fn fetch_local(
        &self,
        owner: &str,
        local_id: &str,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) -> Result<Option<Value>, CallError> {
        let Some(resp) = self.get_local(owner, local_id, claims, p, rid).await? else {
            return Ok(None);
        };
        let v = json_of(&resp)?;
        Ok(v.get("server").cloned())
    }

    /// `GET /servers/{local_id}` on `owner`: `Ok(None)` when the cloudlet
    /// says 404, the answer otherwise (the callers read what they need).
    async fn get_local(
        &self,
        owner: &str,
        local_id: &str,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) -> Result<Option<HttpResponse>, CallError> {
        let path = format!("/servers/{local_id}");
        let resp = self
            .owner_call(owner, Method::GET, &path, claims, p, rid)
            .await?;
        Ok((resp.status() != StatusCode::NOT_FOUND).then_some(resp))
    }

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

    pub async fn delete_local(
        &self,
        owner: &str,
        local_id: &str,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) -> Result<StatusCode, CallError> {
        let resp = self
            .owner_call(
                owner,
                Method::DELETE,
                &format!("/servers/{local_id}"),
                claims,
                p,
                rid,
            )
            .await?;
        if resp.status().is_success() || resp.status() == StatusCode::NOT_FOUND {
            Ok(resp.status())
        } else {
            Err(status_error(&resp))
        }
    }

    /// Deletes an instance for certain: now, or retried every boot poll
    /// until its cloudlet answers (a superseded or abandoned instance must
    /// never come back under its global ID). Pending deletes are counted
    /// on `/metrics`.
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
        if let Ok(mut g) = self.doomed.lock() {
            g.insert((owner.clone(), local_id.clone()));
        }
        Metrics::inc(&self.metrics.deletes_pending);
        self.spawn_bg(async move {
            let every = Duration::from_millis(me.cfg.boot_poll_ms.max(10));
            let mut attempts = 0u64;
            loop {
                attempts += 1;
                match me.delete_local(&owner, &local_id, &claims, &p, &rid).await {
                    Ok(_) => break,
                    Err(e) => {
                        if attempts == 1 {
                            warn!(cloudlet = %owner, local_id = %local_id, error = %e, "delete failed; retrying until the cloudlet answers");
                        }
                        tokio::time::sleep(every).await;
                    }
                }
            }
            me.metrics
                .deletes_pending
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            info!(cloudlet = %owner, local_id = %local_id, attempts, "superseded instance deleted");
        });
    }

    /// Whether a listed instance must not be shown: this agent coordinates
    /// its global ID and knows it deleted, or knows it lives elsewhere now
    /// (a superseded instance awaiting deletion).
    fn hidden(&self, cloudlet: &str, s: &Value, gid: &str) -> bool {
        let local = s.get("id").and_then(Value::as_str).unwrap_or_default();
        if self
            .doomed
            .lock()
            .is_ok_and(|d| d.contains(&(cloudlet.to_string(), local.to_string())))
        {
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

    fn entry(&self, gid: &Uuid) -> Option<DirEntry> {
        self.directory.lock().ok().and_then(|d| d.get(gid).cloned())
    }

    fn update(&self, gid: &Uuid, f: impl FnOnce(&mut DirEntry)) {
        if let Ok(mut d) = self.directory.lock() {
            if let Some(e) = d.get_mut(gid) {
                f(e);
            }
        }
    }

    /// Follows one accepted boot until ACTIVE, ERROR or deletion; re-places
    /// it while retries remain when it goes to ERROR or its cloudlet dies.
    pub async fn watch_boot(
        self: Arc<Self>,
        gid: Uuid,
        plan: BootPlan,
        demand: Demand,
        rid: String,
    ) {
        let deadline = clock::now() + Duration::from_secs(self.cfg.boot_watch_secs);
        let poll = Duration::from_millis(self.cfg.boot_poll_ms.max(10));
        let mut unreachable_since: Option<Instant> = None;
        while clock::now() < deadline {
            tokio::time::sleep(poll).await;
            let Some(e) = self.entry(&gid) else { return };
            if e.state == DirState::Deleted {
                return;
            }
            let fault = match self
                .fetch_status(&e.owner, &e.local_id, &e.claims, &e.project, &rid)
                .await
            {
                Ok(Some(s)) => {
                    unreachable_since = None;
                    match s.status.as_str() {
                        "ACTIVE" => {
                            info!(gid = %gid, cloudlet = %e.owner, "boot ACTIVE");
                            self.update(&gid, |e| e.state = DirState::Active);
                            return;
                        }
                        "ERROR" => s
                            .fault
                            .and_then(|f| f.message)
                            .unwrap_or_else(|| "instance went to ERROR".to_string()),
                        _ => continue,
                    }
                }
                Ok(None) => {
                    // Deleted on the cloudlet behind our back.
                    self.update(&gid, |e| e.state = DirState::Deleted);
                    return;
                }
                Err(err) => {
                    let alive = self.view().await.iter().any(|s| s.name == e.owner);
                    let since = *unreachable_since.get_or_insert_with(clock::now);
                    let patience = Duration::from_millis(self.cfg.owner_unreachable_ms);
                    if alive && clock::now().saturating_duration_since(since) < patience {
                        continue;
                    }
                    format!("cloudlet {} unreachable: {err}", e.owner)
                }
            };
            unreachable_since = None;
            // Failed before ACTIVE: retry elsewhere if the budget allows.
            let attempts_left = self.cfg.retries as usize + 1 > e.tried.len();
            if !attempts_left {
                warn!(gid = %gid, fault = %fault, "boot failed; retries exhausted");
                if fault.starts_with("cloudlet ") {
                    self.update(&gid, |e| e.state = DirState::Failed(fault.clone()));
                } else {
                    self.update(&gid, |e| e.state = DirState::Active); // real ERROR stays visible
                }
                return;
            }
            self.update(&gid, |e| e.state = DirState::Retrying);
            let mut tried = e.tried.clone();
            let res = self
                .place_and_boot(&e.claims, &e.project, &plan, &demand, &mut tried, &rid)
                .await;
            // The superseded instance must go, now or once its cloudlet
            // answers again (else it comes back under the same ID). Only
            // after the new one exists: an agent that searches the
            // cloudlets for this ID meanwhile always finds an instance.
            self.delete_for_certain(&e.owner, &e.local_id, &e.claims, &e.project, &rid);
            match res {
                Ok((owner, local_id, _)) => {
                    let deleted = self
                        .entry(&gid)
                        .map(|x| x.state == DirState::Deleted)
                        .unwrap_or(true);
                    if deleted {
                        self.delete_for_certain(&owner, &local_id, &e.claims, &e.project, &rid);
                        return;
                    }
                    self.update(&gid, |x| {
                        x.owner = owner;
                        x.local_id = local_id;
                        x.tried = tried;
                        x.state = DirState::Building;
                    });
                }
                Err(err) => {
                    let msg = format!("No valid host was found. Last: {fault}; then {err}");
                    self.update(&gid, |x| {
                        x.tried = tried;
                        if x.state != DirState::Deleted {
                            x.state = DirState::Failed(msg);
                        }
                    });
                    return;
                }
            }
        }
    }

    /// Records an accepted boot and starts its watcher.
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
        let me = self.clone();
        self.spawn_bg(async move { me.watch_boot(gid, plan, demand, rid).await });
    }

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
        let (e, coordinator) = self.find_instance(gid, claims, p, rid).await?;
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

    /// Boots whose coordinator died are adopted: every capacity interval,
    /// while a member died less than `boot_watch_secs` ago, this agent
    /// lists the cloudlets it is the adopter of (its own, and those of dead
    /// agents it ranks first for) and watches each unfinished instance
    /// (BUILD, or ERROR with retries left) of a dead coordinator as if it
    /// had accepted it: re-placed on ERROR or when its cloudlet dies,
    /// deletable through any agent. Costs one list per interval and
    /// adopted cloudlet during that window, nothing otherwise.
    async fn adopt_loop(self: Arc<Self>) {
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
            let dead: HashSet<String> = dead_since
                .iter()
                .filter(|(_, t)| now.saturating_duration_since(**t) < window)
                .map(|(n, _)| n.clone())
                .collect();
            if dead.is_empty() {
                continue;
            }
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
    async fn adopt_from(self: &Arc<Self>, src: &str, dead: &HashSet<String>) {
        const LIST: &str = "/servers/detail?all_tenants=1&limit=1000";
        let sp = self.cloudlet.service_project().clone();
        let listed = if src == self.name {
            self.cloudlet.get_json(&sp, Svc::Compute, LIST, "").await
        } else {
            match self.direct(src).await {
                Some(c) => self
                    .direct_call(src, &c, &sp, Method::GET, LIST, "")
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
    async fn adopt(self: &Arc<Self>, owner: &str, s: &Value) {
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
            claims,
            state: DirState::Building,
            tried,
        };
        info!(gid = %gid, cloudlet = %owner, status, "adopted the boot of a dead coordinator");
        Metrics::inc(&self.metrics.boots_adopted);
        // An ERROR instance is re-placed on the watcher's first poll.
        self.accept(gid, entry, plan, demand, format!("req-adopt-{gid}"));
    }

    /// Every cloudlet's servers for `p`, globalized for `base`. Servers of
    /// unreachable cloudlets come from the last list seen, as UNKNOWN.
    pub async fn all_servers(
        &self,
        claims: &Claims,
        p: &ProjectRef,
        base: &str,
        rid: &str,
    ) -> Vec<Value> {
        let known = self.gossip.known().await;
        let tok = self.token_for_claims(claims);
        let futs = known.iter().map(|(st, alive)| {
            let tok = tok.clone();
            async move {
                let r: Result<Value, CallError> = if st.name == self.name {
                    self.cloudlet
                        .get_json(p, Svc::Compute, "/servers/detail?limit=1000", rid)
                        .await
                } else if !alive || self.suspected(st) {
                    // Its agent is gone: ask its cloudlet itself.
                    match self.direct(&st.name).await {
                        Some(c) => self.direct_list(&st.name, &c, p, rid).await,
                        None => Err(CallError::BadResponse("member not alive".into())),
                    }
                } else {
                    match self
                        .peer_call(
                            &st.url,
                            Method::GET,
                            "/p2p/v1/local/servers/detail?limit=1000",
                            &tok,
                            None,
                            rid,
                        )
                        .await
                    {
                        Ok(r) => json_of(&r),
                        Err(e) => {
                            if e.is_unreachable() {
                                self.suspect(&st.name);
                            }
                            Err(e)
                        }
                    }
                };
                (st.name.clone(), r)
            }
        });
        let results = futures::future::join_all(futs).await;
        let mut out = vec![];
        let mut reached = HashSet::new();
        for (name, r) in results {
            let key = (name.clone(), p.clone());
            match r
                .ok()
                .and_then(|v| v.get("servers").and_then(Value::as_array).cloned())
            {
                Some(list) => {
                    reached.insert(name.clone());
                    if let Ok(mut c) = self.last_seen.lock() {
                        c.insert(key, list.clone());
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
                    if cached.is_empty() {
                        // Never listed it ourselves: ask peers what they saw.
                        cached = self.ask_peers_about(&name, &tok, &known, rid).await;
                    }
                    for mut s in cached {
                        if let Some(gid) = view::global_id_of(&s) {
                            view::globalize(&mut s, &gid, base);
                            view::mark_unknown(&mut s);
                            out.push(s);
                        }
                    }
                }
            }
        }
        // Coordinated servers with no instance to show (being re-placed,
        // failed everywhere) or on a cloudlet we have no list of.
        let seen: HashSet<String> = out
            .iter()
            .filter_map(|s| s.get("id").and_then(Value::as_str).map(str::to_string))
            .collect();
        if let Ok(d) = self.directory.lock() {
            for (gid, e) in d.iter() {
                let g = gid.to_string();
                if seen.contains(&g) || e.project != *p {
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

    /// What this agent knows of `member`'s servers of project `p` without
    /// asking it: the last list seen, plus boots it coordinated there.
    pub fn known_servers_of(&self, member: &str, p: &ProjectRef) -> Vec<Value> {
        let mut out = self
            .last_seen
            .lock()
            .ok()
            .and_then(|c| c.get(&(member.to_string(), p.clone())).cloned())
            .unwrap_or_default();
        if let Ok(d) = self.directory.lock() {
            for (gid, e) in d.iter() {
                if e.owner == member && e.project == *p && e.state != DirState::Deleted {
                    out.push(view::synthetic(
                        &gid.to_string(),
                        &e.name,
                        "UNKNOWN",
                        &e.tenant,
                        None,
                        "",
                    ));
                }
            }
        }
        out
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
        let g = gid.to_string();
        let known = self.gossip.known().await;
        let tok = self.token_for_claims(claims);
        for (st, alive) in &known {
            if *alive && !self.suspected(st) {
                continue;
            }
            // Its agent is gone but its cloudlet answers: the cloudlet's own
            // list is the truth (a server missing there is gone).
            if let Some(c) = self.direct(&st.name).await {
                if let Ok(v) = self.direct_list(&st.name, &c, p, rid).await {
                    if let (Some(list), Ok(mut cache)) = (
                        v.get("servers").and_then(Value::as_array),
                        self.last_seen.lock(),
                    ) {
                        cache.insert((st.name.clone(), p.clone()), list.clone());
                    }
                    continue;
                }
            }
            let mut list = self.known_servers_of(&st.name, p);
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

    /// Asks up to two live peers what they know of `member`'s servers.
    async fn ask_peers_about(
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
                *alive && s.name != self.name && s.name != member && !self.suspected(s)
            })
            .take(2);
        for (st, _) in peers {
            let path = format!("/p2p/v1/known/{member}");
            if let Ok(r) = self
                .peer_call(&st.url, Method::GET, &path, tok, None, rid)
                .await
            {
                if let Ok(v) = json_of(&r) {
                    if let Some(list) = v.get("servers").and_then(Value::as_array) {
                        out.extend(list.iter().cloned());
                    }
                }
            }
        }
        out
    }

    /// `GET`/`DELETE` of a global ID at its coordinator (or anywhere when
    /// the directory has to be rebuilt from instance metadata).
    pub async fn server_op(
        self: &Arc<Self>,
        method: &Method,
        gid: Uuid,
        claims: &Claims,
        p: &ProjectRef,
        base: &str,
        rid: &str,
    ) -> Outcome {
        let not_found = || {
            Outcome::json(
                StatusCode::NOT_FOUND,
                json!({"itemNotFound": {"code": 404, "message": format!("Instance {gid} could not be found.")}}),
                None,
            )
        };
        let entry = match self.entry(&gid) {
            Some(e) => Some(e),
            None => self.rebuild_entry(gid, claims, p, rid).await,
        };
        let Some(e) = entry else { return not_found() };
        if e.project != *p {
            return not_found();
        }
        let g = gid.to_string();
        let owner = Some(e.owner.clone());
        if *method == Method::DELETE {
            self.update(&gid, |x| x.state = DirState::Deleted);
            if matches!(e.state, DirState::Retrying | DirState::Failed(_)) {
                // An instance may remain where the boot last failed (e.g. a
                // cloudlet that stopped answering): delete it for certain.
                if !e.local_id.is_empty() {
                    self.delete_for_certain(&e.owner, &e.local_id, claims, p, rid);
                }
                return Outcome {
                    status: StatusCode::NO_CONTENT,
                    body: None,
                    owner,
                };
            }
            return match self
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
            };
        }
        match &e.state {
            DirState::Retrying => {
                return Outcome::json(
                    StatusCode::OK,
                    json!({"server": view::synthetic(&g, &e.name, "BUILD", &e.tenant, None, base)}),
                    owner,
                )
            }
            DirState::Failed(f) => {
                return Outcome::json(
                    StatusCode::OK,
                    json!({"server": view::synthetic(&g, &e.name, "ERROR", &e.tenant, Some(f), base)}),
                    owner,
                )
            }
            _ => {}
        }
        match self
            .fetch_local(&e.owner, &e.local_id, claims, p, rid)
            .await
        {
            Ok(Some(mut s)) => {
                // An ERROR that the watcher is about to retry shows as BUILD.
                let st = s.get("status").and_then(Value::as_str).unwrap_or("");
                if st == "ERROR"
                    && e.state == DirState::Building
                    && (self.cfg.retries as usize + 1) > e.tried.len()
                {
                    return Outcome::json(
                        StatusCode::OK,
                        json!({"server": view::synthetic(&g, &e.name, "BUILD", &e.tenant, None, base)}),
                        owner,
                    );
                }
                view::globalize(&mut s, &g, base);
                Outcome::json(StatusCode::OK, json!({"server": s}), owner)
            }
            Ok(None) => {
                if e.state == DirState::Deleted {
                    if let Ok(mut d) = self.directory.lock() {
                        d.remove(&gid);
                    }
                }
                not_found()
            }
            Err(err) => {
                warn!(gid = %g, owner = %e.owner, error = %err, "owner unreachable");
                if e.state == DirState::Deleted {
                    return not_found();
                }
                Outcome::json(
                    StatusCode::OK,
                    json!({"server": view::synthetic(&g, &e.name, "UNKNOWN", &e.tenant, None, base)}),
                    owner,
                )
            }
        }
    }

    /// Finds `gid` by listing every cloudlet (its metadata names it). The
    /// entry is kept only for IDs this agent coordinates (a lost directory);
    /// another coordinator's boot may move meanwhile (its adopter
    /// re-placing it), so it is searched afresh each time.
    async fn rebuild_entry(
        &self,
        gid: Uuid,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) -> Option<DirEntry> {
        let (e, _) = self.find_instance(gid, claims, p, rid).await?;
        let ours = idroute::coordinator_tag(&gid) == Some(idroute::tag_of(&self.name));
        if ours {
            if let Ok(mut d) = self.directory.lock() {
                d.insert(gid, e.clone());
            }
        }
        Some(e)
    }

    /// Searches every known cloudlet's list for the instance of `gid`;
    /// with the coordinator its metadata names.
    async fn find_instance(
        &self,
        gid: Uuid,
        claims: &Claims,
        p: &ProjectRef,
        rid: &str,
    ) -> Option<(DirEntry, Option<String>)> {
        let g = gid.to_string();
        let known = self.gossip.known().await;
        let tok = self.token_for_claims(claims);
        for (st, alive) in known {
            let list = if st.name == self.name {
                self.cloudlet
                    .get_json(p, Svc::Compute, "/servers/detail?limit=1000", rid)
                    .await
                    .ok()
            } else if !alive {
                match self.direct(&st.name).await {
                    Some(c) => self.direct_list(&st.name, &c, p, rid).await.ok(),
                    None => None,
                }
            } else {
                match self
                    .peer_call(
                        &st.url,
                        Method::GET,
                        "/p2p/v1/local/servers/detail?limit=1000",
                        &tok,
                        None,
                        rid,
                    )
                    .await
                {
                    Ok(r) => json_of(&r).ok(),
                    Err(_) => None,
                }
            };
            let servers = list
                .and_then(|v| v.get("servers").and_then(Value::as_array).cloned())
                .unwrap_or_default();
            for s in servers {
                if view::global_id_of(&s).as_deref() == Some(g.as_str()) {
                    let e = DirEntry {
                        owner: st.name.clone(),
                        local_id: s
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        name: s
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        tenant: s
                            .get("tenant_id")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        project: p.clone(),
                        claims: claims.clone(),
                        state: DirState::Active,
                        tried: vec![st.name.clone()],
                    };
                    let coordinator = s
                        .pointer(&format!("/metadata/{COORDINATOR_KEY}"))
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    return Some((e, coordinator));
                }
            }
        }
        None
    }

    /// Concatenates a per-cloudlet list (`key`) over every alive cloudlet,
    /// in member order; errors of single cloudlets are skipped.
    pub async fn federated_concat(
        &self,
        claims: &Claims,
        p: &ProjectRef,
        path: &str,
        key: &str,
        rid: &str,
    ) -> Result<Vec<Value>, CallError> {
        let mut view = self.gossip.live_view().await;
        view.sort_by(|a, b| a.name.cmp(&b.name));
        let tok = self.token_for_claims(claims);
        let futs = view.iter().map(|st| {
            let tok = tok.clone();
            async move {
                if st.name == self.name {
                    self.cloudlet.get_json(p, Svc::Compute, path, rid).await
                } else {
                    let r = self
                        .peer_call(
                            &st.url,
                            Method::GET,
                            &format!("/p2p/v1/local{path}"),
                            &tok,
                            None,
                            rid,
                        )
                        .await?;
                    json_of(&r)
                }
            }
        });
        let mut out = vec![];
        let mut first_err = None;
        let mut any = false;
        for r in futures::future::join_all(futs).await {
            match r {
                Ok(v) => {
                    any = true;
                    if let Some(list) = v.get(key).and_then(Value::as_array) {
                        out.extend(list.iter().cloned());
                    }
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if !any {
            return Err(first_err.unwrap_or(CallError::BadResponse("no cloudlet answered".into())));
        }
        Ok(out)
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
    /// cloudlet; used for hypervisor statistics, limits and quotas.
    pub async fn federated_sum(
        &self,
        claims: &Claims,
        p: &ProjectRef,
        path: &str,
        pointer: &str,
        kind: view::SumKind,
        rid: &str,
    ) -> Result<Value, CallError> {
        let view = self.gossip.live_view().await;
        let tok = self.token_for_claims(claims);
        let futs = view.iter().map(|st| {
            let tok = tok.clone();
            async move {
                if st.name == self.name {
                    {
                        let local = self.with_local_project(p, path).await?;
                        self.cloudlet.get_json(p, Svc::Compute, &local, rid).await
                    }
                } else {
                    match self
                        .peer_call(
                            &st.url,
                            Method::GET,
                            &format!("/p2p/v1/local{path}"),
                            &tok,
                            None,
                            rid,
                        )
                        .await
                    {
                        Ok(r) => json_of(&r),
                        Err(e) => Err(e),
                    }
                }
            }
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
