//! The deployment's mutable state (tokens, servers, keypairs, server groups,
//! capacity) and the operations the handlers and the lifecycle driver call.
//! Locks are never held across an `.await`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use chrono::{DateTime, Utc};
use http::HeaderMap;
use os_wire::Service;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

use crate::capacity::{Capacity, Resources};
use crate::config::MockConfig;
use crate::defaults::{self, Flavor, Network};
use crate::driver::EngineLink;
use crate::error::ApiResult;
use crate::lifecycle::{Action, Event, Lifecycle, VmState};
use crate::servers_store::Servers;

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
    /// Set by the `lock` action: who locked it (nova's `locked_by`).
    pub locked_by: Option<LockedBy>,
    /// Shared by the servers of one create request (`r-xxxxxxxx`).
    pub reservation_id: String,
}

/// nova's `instance.locked_by`: the owner's project, or an admin of
/// another project (then only an admin may unlock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockedBy {
    Owner,
    Admin,
}

impl Server {
    /// A server just accepted by the API (BUILD/scheduling) with what a
    /// bare request gets: cirros, no networks or addresses, no metadata or
    /// key, no security group, zone `nova`, no config drive. Callers set
    /// what their request said.
    pub fn accepted(
        id: String,
        seq: u64,
        name: String,
        owner: (&'static str, &'static str),
        flavor: &'static Flavor,
        now: DateTime<Utc>,
    ) -> Server {
        Server {
            id,
            seq,
            name,
            project_id: owner.0,
            user_id: owner.1,
            flavor,
            image_id: defaults::IMAGE_ID.into(),
            networks: vec![],
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
            locked_by: None,
            reservation_id: String::new(),
        }
    }

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
    /// nova's integer id (shown by `keypair show`).
    pub id: u64,
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

/// One host aggregate (`os-aggregates`).
#[derive(Debug, Clone)]
pub struct Aggregate {
    pub id: u64,
    pub name: String,
    pub availability_zone: Option<String>,
    pub hosts: Vec<String>,
    pub metadata: Map<String, Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Everything behind the main lock.
pub struct Inner {
    /// Servers with their creation-order, usage and tombstone indexes.
    pub servers: Servers,
    pub seq: u64,
    pub capacity: Capacity,
    pub rng: ChaCha8Rng,
    pub keypairs: BTreeMap<(String, String), Keypair>,
    pub groups: BTreeMap<String, ServerGroup>,
    pub aggregates: BTreeMap<u64, Aggregate>,
    /// The last keypair id given.
    pub next_keypair: u64,
    /// The last aggregate id given (nova's are integers from 1).
    pub next_aggregate: u64,
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

    /// Per-project usage: (instances, cores, ram_mb), from running totals.
    pub fn usage(&self, project: &str) -> (i64, i64, i64) {
        let u = self.servers.usage(project);
        (u.instances, u.cores, u.ram_mb)
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
    /// Open HTTP connections.
    pub connections: AtomicU64,
    /// Connections answered 503 because the connection cap was reached.
    pub connections_refused: AtomicU64,
    /// `accept()` failures (e.g. out of file descriptors).
    pub accept_failures: AtomicU64,
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
            connections: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            accept_failures: AtomicU64::new(0),
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
    /// Built as a header value straight away (no `String`, no formatter).
    pub fn request_id(&self) -> http::HeaderValue {
        let n = self.rid_counter.fetch_add(1, Ordering::Relaxed);
        let u = uuid::Builder::from_random_bytes(
            ((u128::from(self.rid_prefix) << 64) | u128::from(n)).to_be_bytes(),
        )
        .into_uuid();
        let mut buf = [0u8; 4 + uuid::fmt::Hyphenated::LENGTH];
        buf[..4].copy_from_slice(b"req-");
        u.hyphenated().encode_lower(&mut buf[4..]);
        // Only ASCII letters, digits and '-': always a valid header value.
        http::HeaderValue::from_bytes(&buf).unwrap_or(http::HeaderValue::from_static("req-"))
    }
}

pub struct State {
    pub cfg: MockConfig,
    pub providers: Vec<Provider>,
    tokens: RwLock<HashMap<String, Arc<Token>>>,
    inner: Mutex<Inner>,
    /// The cp-model engine task (API stage, lifecycles, capacity) and the
    /// model clock.
    pub engine: EngineLink,
    pub metrics: Metrics,
    token_issues: AtomicU64,
}

impl State {
    /// The state of a deployment whose engine task is reached through
    /// `engine` (see `driver::build`).
    pub fn new(cfg: MockConfig, engine: EngineLink) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut capacity = Capacity::uniform(
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
        // The hypervisors carry the engine's node names (cells name theirs).
        for (node, i) in capacity.nodes.iter_mut().zip(1..) {
            node.hostname = cfg.host_name(i);
        }
        let mut inner = Inner {
            servers: Servers::default(),
            seq: 0,
            capacity,
            rng: ChaCha8Rng::seed_from_u64(rng.next_u64()),
            keypairs: BTreeMap::new(),
            groups: BTreeMap::new(),
            aggregates: BTreeMap::new(),
            next_keypair: 0,
            next_aggregate: 0,
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
            engine,
            metrics: Metrics::default(),
            token_issues: AtomicU64::new(0),
        }
    }

    /// The main lock; a panic elsewhere never poisons the mock for good.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The API timestamp of the current model time.
    pub fn now(&self) -> DateTime<Utc> {
        self.engine.time.now()
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
            let now = cp_model::clock::utc_now();
            map.retain(|_, t| t.expires_at > now);
        }
        map.insert(id.clone(), Arc::new(token));
        id
    }

    pub fn token(&self, id: &str) -> Option<Arc<Token>> {
        let map = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        map.get(id)
            .filter(|t| t.expires_at > cp_model::clock::utc_now())
            .cloned()
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
            .ok_or_else(|| os_wire::ApiError::unauthorized(service))?;
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
            g.servers.insert(s);
        }
        ids
    }

    /// Applies engine effects (each with the API timestamp of its exact
    /// model time) in one lock, and mirrors the engine's node usage into
    /// the capacity books when `nodes` is given (the engine is the one
    /// source of truth for usage).
    pub fn apply_engine(
        &self,
        updates: Vec<(DateTime<Utc>, String, cp_model::Effect)>,
        nodes: Option<&[cp_model::NodeLoad]>,
    ) {
        use cp_model::Effect;
        let mut g = self.lock();
        let g = &mut *g;
        for (at, id, effect) in updates {
            let event = match effect {
                Effect::Deleted { .. } => {
                    if g.servers.remove(&id).is_some() {
                        g.deletes_done += 1;
                    }
                    continue;
                }
                Effect::Scheduled { host, .. } => Event::Scheduled { host },
                Effect::TaskState {
                    task_state: cp_model::TaskState::Spawning,
                    ..
                } => Event::Networked,
                Effect::Active { .. } => Event::Spawned,
                Effect::Error { fault, host, .. } => Event::Failed { fault, host },
                _ => continue,
            };
            let Some(s) = g.servers.get_mut(&id) else {
                continue;
            };
            if let Err(e) = s.lc.apply(event.clone()) {
                tracing::debug!(server = %id, error = %e, "engine effect skipped");
                continue;
            }
            s.updated = at;
            match event {
                Event::Scheduled { host } => s.host_id = host_id(s.project_id, &host),
                Event::Spawned => {
                    s.launched_at = Some(at);
                    g.boots_active += 1;
                }
                Event::Failed { .. } => {
                    s.fault_at = Some(at);
                    if s.host_id.is_empty() {
                        if let Some(h) = &s.lc.host {
                            s.host_id = host_id(s.project_id, h);
                        }
                    }
                    g.boots_error += 1;
                }
                Event::Networked => {
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
                        if let Some(s) = g.servers.get_mut(&id) {
                            s.addresses.push(Address {
                                network: net,
                                ip,
                                mac,
                                port_id,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(nodes) = nodes {
            for (n, u) in g.capacity.nodes.iter_mut().zip(nodes) {
                n.used = Resources {
                    vcpus: u64::from(u.vcpus_used),
                    ram_mb: u.ram_mb_used,
                    disk_gb: u.disk_gb_used,
                };
                n.running_vms = u64::from(u.running_vms);
                n.up = u.up;
            }
        }
    }

    /// Lands server actions whose model time has passed (from the driver).
    pub fn finish_actions(&self, done: Vec<(DateTime<Utc>, String, Action, VmState)>) {
        let mut g = self.lock();
        for (at, id, action, from) in done {
            let Some(s) = g.servers.get_mut(&id) else {
                continue;
            };
            match s.lc.finish(action, from) {
                Ok(()) => s.updated = at,
                Err(e) => tracing::debug!(server = %id, error = %e, "action overtaken"),
            }
        }
    }

    /// Moves a server to task_state `deleting`. `false` if it is unknown.
    pub fn request_delete(&self, id: &str) -> bool {
        let mut g = self.lock();
        match g.servers.get_mut(id) {
            Some(s) => {
                // Already deleting: accepted again, like nova.
                let _ = s.lc.apply(Event::DeleteRequested);
                s.updated = self.engine.time.now();
                true
            }
            None => false,
        }
    }

    /// Removes a server the engine never knew (its usage is the engine's
    /// business otherwise).
    pub fn finish_delete(&self, id: &str) {
        let mut g = self.lock();
        if g.servers.remove(id).is_some() {
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
    use cp_model::Effect;

    fn state_with_server() -> (State, String) {
        let cfg = MockConfig {
            computes: 2,
            ..MockConfig::default()
        };
        let (link, _parts) = crate::driver::build(&cfg).expect("engine");
        let st = State::new(cfg, link);
        let id = {
            let mut g = st.lock();
            let id = g.new_uuid();
            let mut server = Server::accepted(
                id.clone(),
                1,
                "s".into(),
                (defaults::DEMO_PROJECT_ID, defaults::DEMO_USER_ID),
                &defaults::FLAVORS[0],
                Utc::now(),
            );
            server.networks = defaults::NETWORKS.iter().take(1).collect();
            g.servers.insert(server);
            id
        };
        (st, id)
    }

    fn usage(vcpus: u32, up: bool) -> cp_model::NodeLoad {
        cp_model::NodeLoad {
            vcpus_used: vcpus,
            ram_mb_used: 512 * u64::from(vcpus),
            disk_gb_used: u64::from(vcpus),
            running_vms: vcpus,
            builds_in_flight: 0,
            builds_queued: 0,
            up,
        }
    }

    #[test]
    fn engine_effects_drive_the_lifecycle_and_usage_is_mirrored() {
        let (st, id) = state_with_server();
        let t = Utc::now();
        let h = "devstack-compute-2".to_string();
        st.apply_engine(
            vec![(
                t,
                id.clone(),
                Effect::Scheduled {
                    instance: 1,
                    host: h.clone(),
                },
            )],
            Some(&[usage(0, true), usage(1, true)]),
        );
        assert_eq!(st.lock().capacity.nodes[1].used.vcpus, 1);
        st.apply_engine(
            vec![
                (
                    t,
                    id.clone(),
                    Effect::TaskState {
                        instance: 1,
                        task_state: cp_model::TaskState::Spawning,
                    },
                ),
                (
                    t,
                    id.clone(),
                    Effect::Active {
                        instance: 1,
                        host: h.clone(),
                    },
                ),
            ],
            None,
        );
        {
            let g = st.lock();
            let s = &g.servers[id.as_str()];
            assert_eq!(s.addresses.len(), 1);
            assert_eq!(s.lc.status(), "ACTIVE");
            assert_eq!(s.host_id.len(), 56);
            assert_eq!(s.launched_at, Some(t));
        }
        assert!(st.request_delete(&id));
        assert_eq!(
            st.lock().servers[id.as_str()].lc.task_state,
            Some(TaskState::Deleting)
        );
        st.apply_engine(
            vec![(t, id.clone(), Effect::Deleted { instance: 1 })],
            Some(&[usage(0, true), usage(0, false)]),
        );
        let g = st.lock();
        assert!(g.servers.is_empty());
        assert_eq!(g.capacity.used().vcpus, 0);
        assert!(!g.capacity.nodes[1].up);
        assert!(g.servers.is_tombstone(&id));
    }

    #[test]
    fn engine_error_sets_the_fault_at_its_model_time() {
        let (st, id) = state_with_server();
        let t = st.engine.time.at(12.5);
        st.apply_engine(
            vec![(
                t,
                id.clone(),
                Effect::Error {
                    instance: 1,
                    fault: "No valid host was found. There are not enough hosts available.".into(),
                    host: None,
                },
            )],
            None,
        );
        let g = st.lock();
        let s = &g.servers[id.as_str()];
        assert_eq!(s.lc.status(), "ERROR");
        assert_eq!(s.fault_at, Some(t));
        assert_eq!(g.boots_error, 1);
        assert_eq!(
            (t - st.engine.time.epoch).num_milliseconds(),
            12_500,
            "model seconds after the epoch"
        );
    }

    #[test]
    fn query_helpers() {
        let q = parse_query(Some("a=1&b=x%20y&a=2"));
        assert_eq!(super::q(&q, "a"), Some("1"));
        assert_eq!(super::q(&q, "b"), Some("x y"));
        assert!(!truthy("False") && !truthy("0") && truthy("True") && truthy("1"));
    }
}
