//! The deployment's mutable state (tokens, servers, keypairs, server groups,
//! capacity) and the operations the handlers and the lifecycle driver call.
//! Locks are never held across an `.await`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use http::HeaderMap;
use os_wire::Service;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

use crate::capacity::{Capacity, Resources};
use crate::config::MockConfig;
use crate::defaults::{self, Flavor, Network};
use crate::error::{ApiErr, ApiResult};
use crate::lifecycle::{Event, FixedDelays, Lifecycle, StageTimes};

/// One issued Keystone token.
#[derive(Debug, Clone)]
pub struct Token {
    pub user: &'static defaults::User,
    /// Project scope, or `None` (unscoped or domain-scoped).
    pub project: Option<(&'static str, &'static str)>,
    pub domain_scoped: bool,
    pub roles: Vec<&'static str>,
    pub methods: Vec<String>,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub audit_id: String,
}

impl Token {
    pub fn is_admin(&self) -> bool {
        self.roles.contains(&"admin")
    }
}

/// Who is calling, from a validated token.
#[derive(Debug, Clone)]
pub struct AuthCtx {
    pub user_id: &'static str,
    pub project_id: Option<&'static str>,
    pub is_admin: bool,
}

impl AuthCtx {
    /// The project to charge and scope to ("" when the token has none, which
    /// matches nothing).
    pub fn project(&self) -> &'static str {
        self.project_id.unwrap_or("")
    }
}

/// One fixed IP of a server.
#[derive(Debug, Clone)]
pub struct Address {
    pub network: &'static Network,
    pub ip: String,
    pub mac: String,
    pub port_id: String,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub id: String,
    /// Creation order; lists sort by it (newest first, like nova).
    pub seq: u64,
    pub name: String,
    pub project_id: &'static str,
    pub user_id: &'static str,
    pub flavor: &'static Flavor,
    /// Empty when booted from a volume.
    pub image_id: String,
    /// Networks to attach at the networking stage.
    pub networks: Vec<&'static Network>,
    pub addresses: Vec<Address>,
    pub metadata: Map<String, Value>,
    pub key_name: Option<String>,
    pub security_groups: Vec<String>,
    pub availability_zone: String,
    pub config_drive: String,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub launched_at: Option<DateTime<Utc>>,
    pub fault_at: Option<DateTime<Utc>>,
    pub lc: Lifecycle,
    /// nova's `hostId`, computed once when the host is chosen.
    pub host_id: String,
}

impl Server {
    pub fn resources(&self) -> Resources {
        Resources {
            vcpus: self.flavor.vcpus,
            ram_mb: self.flavor.ram_mb,
            disk_gb: self.flavor.disk_gb,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Keypair {
    pub name: String,
    pub public_key: String,
    pub fingerprint: String,
    pub user_id: &'static str,
    pub created: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct ServerGroup {
    pub id: String,
    pub name: String,
    pub policies: Vec<String>,
    pub project_id: &'static str,
    pub user_id: &'static str,
}

/// Everything behind the main lock.
pub struct Inner {
    pub servers: HashMap<String, Server>,
    /// seq of deleted servers, so a deleted marker still paginates.
    pub tombstones: HashMap<String, u64>,
    pub seq: u64,
    pub capacity: Capacity,
    pub rng: ChaCha8Rng,
    pub keypairs: BTreeMap<(String, String), Keypair>,
    pub groups: BTreeMap<String, ServerGroup>,
    pub next_ip: u32,
    pub boots_active: u64,
    pub boots_error: u64,
    pub deletes_done: u64,
}

impl Inner {
    pub fn new_uuid(&mut self) -> String {
        let mut b = [0u8; 16];
        self.rng.fill_bytes(&mut b);
        uuid::Builder::from_random_bytes(b).into_uuid().to_string()
    }

    fn new_mac(&mut self) -> String {
        let mut b = [0u8; 3];
        self.rng.fill_bytes(&mut b);
        format!("fa:16:3e:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
    }

    /// Per-project usage: (instances, cores, ram_mb).
    pub fn usage(&self, project: &str) -> (i64, i64, i64) {
        self.servers
            .values()
            .filter(|s| s.project_id == project)
            .fold((0, 0, 0), |(i, c, r), s| {
                (i + 1, c + s.flavor.vcpus as i64, r + s.flavor.ram_mb as i64)
            })
    }
}

/// One resource provider per compute node (placement).
#[derive(Debug, Clone)]
pub struct Provider {
    pub uuid: String,
    pub hostname: String,
}

/// Services in `/metrics` labels, in counter-array order.
pub const SERVICE_LABELS: [&str; 6] = [
    "identity",
    "compute",
    "image",
    "network",
    "placement",
    "control",
];

/// Lock-free request counters for `/metrics`: one per (service, status).
pub struct Metrics {
    requests: Box<[AtomicU64]>,
    pub in_flight: AtomicU64,
    rid_prefix: u64,
    rid_counter: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: (0..SERVICE_LABELS.len() * 600)
                .map(|_| AtomicU64::new(0))
                .collect(),
            in_flight: AtomicU64::new(0),
            rid_prefix: uuid::Uuid::new_v4().as_u64_pair().0,
            rid_counter: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub fn count(&self, service: usize, status: u16) {
        let i = service.min(SERVICE_LABELS.len() - 1) * 600 + usize::from(status.min(599));
        if let Some(c) = self.requests.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Non-zero counters as (service label, status, count).
    pub fn snapshot(&self) -> Vec<(&'static str, u16, u64)> {
        self.requests
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let n = c.load(Ordering::Relaxed);
                (n > 0).then(|| (SERVICE_LABELS[i / 600], (i % 600) as u16, n))
            })
            .collect()
    }

    /// A unique `req-<uuid>` without a syscall per request.
    pub fn request_id(&self) -> String {
        let n = self.rid_counter.fetch_add(1, Ordering::Relaxed);
        let u = uuid::Builder::from_random_bytes(
            ((u128::from(self.rid_prefix) << 64) | u128::from(n)).to_be_bytes(),
        )
        .into_uuid();
        format!("req-{u}")
    }
}

pub struct State {
    pub cfg: MockConfig,
    pub providers: Vec<Provider>,
    tokens: RwLock<HashMap<String, Arc<Token>>>,
    inner: Mutex<Inner>,
    pub times: Arc<dyn StageTimes>,
    pub metrics: Metrics,
    token_issues: AtomicU64,
}

impl State {
    pub fn new(cfg: MockConfig) -> Self {
        let times = Arc::new(FixedDelays {
            boot_s: cfg.boot_delay_s,
            delete_s: cfg.delete_delay_s,
        });
        Self::with_times(cfg, times)
    }

    /// Seam: a state whose stage durations come from another model.
    pub fn with_times(cfg: MockConfig, times: Arc<dyn StageTimes>) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let capacity = Capacity::uniform(
            &cfg.name,
            cfg.computes,
            Resources {
                vcpus: u64::from(cfg.compute_vcpus),
                ram_mb: cfg.compute_ram_mb,
                disk_gb: cfg.compute_disk_gb,
            },
            (
                cfg.cpu_allocation_ratio,
                cfg.ram_allocation_ratio,
                cfg.disk_allocation_ratio,
            ),
        );
        let mut inner = Inner {
            servers: HashMap::new(),
            tombstones: HashMap::new(),
            seq: 0,
            capacity,
            rng: ChaCha8Rng::seed_from_u64(rng.next_u64()),
            keypairs: BTreeMap::new(),
            groups: BTreeMap::new(),
            next_ip: 10,
            boots_active: 0,
            boots_error: 0,
            deletes_done: 0,
        };
        let providers = inner
            .capacity
            .nodes
            .clone()
            .into_iter()
            .map(|n| Provider {
                uuid: inner.new_uuid(),
                hostname: n.hostname,
            })
            .collect();
        Self {
            cfg,
            providers,
            tokens: RwLock::new(HashMap::new()),
            inner: Mutex::new(inner),
            times,
            metrics: Metrics::default(),
            token_issues: AtomicU64::new(0),
        }
    }

    /// The main lock; a panic elsewhere never poisons the mock for good.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wall-clock duration of `model_s` model seconds.
    pub fn wall(&self, model_s: f64) -> Duration {
        let s = model_s * self.cfg.time_scale;
        if s.is_finite() && s > 0.0 {
            Duration::from_secs_f64(s.min(1e9))
        } else {
            Duration::ZERO
        }
    }

    /// Base URL for links and the catalog: `public_url`, else the Host header.
    pub fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(u) = &self.cfg.public_url {
            return u.trim_end_matches('/').to_string();
        }
        let host = headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty() && !h.contains(['/', ' ', '"']))
            .unwrap_or("localhost");
        format!("http://{host}")
    }

    // ---- tokens -------------------------------------------------------

    pub fn store_token(&self, token: Token) -> String {
        let id = format!("gAAAAA{}", uuid::Uuid::new_v4().simple());
        let mut map = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        // Drop expired tokens every 1024 issues so a long run does not grow
        // forever.
        if self.token_issues.fetch_add(1, Ordering::Relaxed) & 1023 == 1023 {
            let now = Utc::now();
            map.retain(|_, t| t.expires_at > now);
        }
        map.insert(id.clone(), Arc::new(token));
        id
    }

    pub fn token(&self, id: &str) -> Option<Arc<Token>> {
        let map = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        map.get(id).filter(|t| t.expires_at > Utc::now()).cloned()
    }

    pub fn revoke_token(&self, id: &str) -> bool {
        let mut map = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        map.remove(id).is_some()
    }

    /// Validates `X-Auth-Token`; 401 in `service`'s envelope otherwise.
    pub fn authenticate(&self, headers: &HeaderMap, service: Service) -> ApiResult<AuthCtx> {
        let t = headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .and_then(|id| self.token(id))
            .ok_or(ApiErr(os_wire::ApiError::unauthorized(service)))?;
        Ok(AuthCtx {
            user_id: t.user.id,
            project_id: t.project.map(|p| p.0),
            is_admin: t.is_admin(),
        })
    }

    // ---- servers --------------------------------------------------------

    /// Inserts accepted servers (BUILD/scheduling) and returns their ids.
    pub fn insert_servers(&self, mut protos: Vec<Server>) -> Vec<String> {
        let mut g = self.lock();
        let mut ids = Vec::with_capacity(protos.len());
        for s in protos.iter_mut() {
            g.seq += 1;
            s.seq = g.seq;
            s.id = g.new_uuid();
            ids.push(s.id.clone());
        }
        for s in protos {
            g.servers.insert(s.id.clone(), s);
        }
        ids
    }

    /// Applies one build stage, placing by the mock's own books; returns
    /// whether the build goes on.
    pub fn advance_build(&self, id: &str, stage: BuildStage) -> bool {
        self.advance_build_with(id, stage, Placement::Books)
    }

    /// Applies one build stage; at [`BuildStage::Schedule`], `placement`
    /// says who picks the host (seam: the cp-model engine decides and the
    /// mock's books follow). Returns whether the build goes on.
    pub fn advance_build_with(
        &self,
        id: &str,
        stage: BuildStage,
        placement: Placement<'_>,
    ) -> bool {
        let mut g = self.lock();
        let g = &mut *g;
        let Some(s) = g.servers.get_mut(id) else {
            return false;
        };
        if s.lc.is_deleting() {
            return false;
        }
        let now = Utc::now();
        let event = match stage {
            BuildStage::Schedule => {
                let chosen = match placement {
                    Placement::Books => g.capacity.claim(s.resources()),
                    Placement::Host(h) => {
                        g.capacity.claim_on(h, s.resources()).then(|| h.to_string())
                    }
                    Placement::NoValidHost => None,
                };
                match chosen {
                    Some(host) => Event::Scheduled { host },
                    None => Event::NoValidHost,
                }
            }
            BuildStage::Network => Event::Networked,
            BuildStage::Spawn => Event::Spawned,
        };
        let no_host = event == Event::NoValidHost;
        if let Err(e) = s.lc.apply(event) {
            tracing::debug!(server = id, error = %e, "build step skipped");
            return false;
        }
        s.updated = now;
        match stage {
            BuildStage::Schedule if no_host => {
                s.fault_at = Some(now);
                g.boots_error += 1;
                return false;
            }
            BuildStage::Network => {
                for net in s.networks.clone() {
                    let n = g.next_ip;
                    g.next_ip = g.next_ip.wrapping_add(1);
                    let ip = if net.external {
                        format!("172.24.4.{}", 2 + n % 250)
                    } else {
                        format!("10.0.{}.{}", (n / 250) % 256, 2 + n % 250)
                    };
                    let mac = g.new_mac();
                    let port_id = g.new_uuid();
                    if let Some(s) = g.servers.get_mut(id) {
                        s.addresses.push(Address {
                            network: net,
                            ip,
                            mac,
                            port_id,
                        });
                    }
                }
            }
            BuildStage::Spawn => {
                s.launched_at = Some(now);
                g.boots_active += 1;
            }
            BuildStage::Schedule => {
                if let Some(h) = &s.lc.host {
                    s.host_id = host_id(s.project_id, h);
                }
            }
        }
        true
    }

    /// Moves a server to task_state `deleting`. `false` if it is unknown.
    pub fn request_delete(&self, id: &str) -> bool {
        let mut g = self.lock();
        match g.servers.get_mut(id) {
            Some(s) => {
                // Already deleting: accepted again, like nova.
                let _ = s.lc.apply(Event::DeleteRequested);
                s.updated = Utc::now();
                true
            }
            None => false,
        }
    }

    /// Removes a server and returns its claim.
    pub fn finish_delete(&self, id: &str) {
        let mut g = self.lock();
        if let Some(s) = g.servers.remove(id) {
            if let Some(h) = &s.lc.host {
                g.capacity.release(h, s.resources());
            }
            g.tombstones.insert(s.id, s.seq);
            g.deletes_done += 1;
        }
    }
}

/// nova's hostId: sha224(project_id + host) in hex.
pub fn host_id(project: &str, host: &str) -> String {
    use sha2::Digest;
    use std::fmt::Write as _;
    let d = sha2::Sha224::digest(format!("{project}{host}").as_bytes());
    let mut out = String::with_capacity(56);
    for b in d {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Who picks the host when a build is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement<'a> {
    /// The mock's own capacity books (most free RAM first).
    Books,
    /// A host chosen elsewhere (the cp-model engine); unknown → no valid host.
    Host(&'a str),
    /// The scheduler found nothing: ERROR "No valid host was found."
    NoValidHost,
}

/// The three timed build stages (their ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildStage {
    Schedule,
    Network,
    Spawn,
}

/// Returns the query's value for `key` (first occurrence).
pub fn q<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Parses a raw query string into pairs (never fails).
pub fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|r| {
        url::form_urlencoded::parse(r.as_bytes())
            .into_owned()
            .collect()
    })
    .unwrap_or_default()
}

/// OpenStack booleans in queries: "False", "false", "0", "no" are false.
pub fn truthy(v: &str) -> bool {
    !matches!(
        v.to_ascii_lowercase().as_str(),
        "false" | "0" | "no" | "off" | "f" | "n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::TaskState;

    fn state_with_server() -> (State, String) {
        let st = State::new(MockConfig {
            computes: 2,
            ..MockConfig::default()
        });
        let id = {
            let mut g = st.lock();
            let id = g.new_uuid();
            let now = Utc::now();
            let server = Server {
                id: id.clone(),
                seq: 1,
                name: "s".into(),
                project_id: defaults::DEMO_PROJECT_ID,
                user_id: defaults::DEMO_USER_ID,
                flavor: &defaults::FLAVORS[0],
                image_id: defaults::IMAGE_ID.into(),
                networks: defaults::NETWORKS.iter().take(1).collect(),
                addresses: vec![],
                metadata: Map::new(),
                key_name: None,
                security_groups: vec![],
                availability_zone: "nova".into(),
                config_drive: String::new(),
                created: now,
                updated: now,
                launched_at: None,
                fault_at: None,
                lc: Lifecycle::new(),
                host_id: String::new(),
            };
            g.servers.insert(id.clone(), server);
            id
        };
        (st, id)
    }

    #[test]
    fn outside_placement_is_followed_and_released_on_delete() {
        let (st, id) = state_with_server();
        assert!(st.advance_build_with(
            &id,
            BuildStage::Schedule,
            Placement::Host("devstack-compute-2")
        ));
        assert_eq!(st.lock().capacity.nodes[1].used.vcpus, 1);
        assert!(st.advance_build(&id, BuildStage::Network));
        assert_eq!(st.lock().servers[&id].addresses.len(), 1);
        assert!(st.advance_build(&id, BuildStage::Spawn));
        assert_eq!(st.lock().servers[&id].lc.status(), "ACTIVE");
        assert_eq!(st.lock().servers[&id].host_id.len(), 56);
        assert!(st.request_delete(&id));
        assert_eq!(
            st.lock().servers[&id].lc.task_state,
            Some(TaskState::Deleting)
        );
        st.finish_delete(&id);
        assert!(st.lock().servers.is_empty());
        assert_eq!(st.lock().capacity.used().vcpus, 0);
        assert!(st.lock().tombstones.contains_key(&id));
    }

    #[test]
    fn no_valid_host_stops_the_build_with_a_fault() {
        let (st, id) = state_with_server();
        assert!(!st.advance_build_with(&id, BuildStage::Schedule, Placement::NoValidHost));
        let g = st.lock();
        let s = &g.servers[&id];
        assert_eq!(s.lc.status(), "ERROR");
        assert!(s.fault_at.is_some());
        assert_eq!(g.boots_error, 1);
    }

    #[test]
    fn build_steps_after_delete_are_ignored() {
        let (st, id) = state_with_server();
        assert!(st.request_delete(&id));
        assert!(!st.advance_build(&id, BuildStage::Schedule));
        assert_eq!(st.lock().capacity.used().vcpus, 0);
        assert!(!st.advance_build("unknown", BuildStage::Schedule));
    }

    #[test]
    fn query_helpers() {
        let q = parse_query(Some("a=1&b=x%20y&a=2"));
        assert_eq!(super::q(&q, "a"), Some("1"));
        assert_eq!(super::q(&q, "b"), Some("x y"));
        assert!(!truthy("False") && !truthy("0") && truthy("True") && truthy("1"));
    }
}
