//! The reference P2P agent: many cloudlets presented as one OpenStack.
//!
//! One agent runs beside each cloudlet (a small, self-sufficient
//! OpenStack). Agents form a gossip overlay with no central component and
//! together present the whole federation through the ordinary OpenStack
//! API. See docs/agent.md.
//!
//! Pure domain logic (no I/O): [`placement`], [`idroute`], [`token`], [`cyclon`],
//! [`listing`], [`view`], [`state`]. I/O: [`cloudlet`] (the own cloudlet,
//! through `os_client::Transport`), [`gossip`] (chitchat), `core` and
//! `api` (the HTTP face and the agent-to-agent API).

#![forbid(unsafe_code)]

mod api;
pub mod cloudlet;
pub mod config;
pub mod conn;
mod core;
pub mod cyclon;
pub mod cyclon_node;
pub mod error;
pub mod gossip;
pub mod gossip_auth;
pub mod gossip_sim;
pub mod guard;
pub mod http_client;
pub mod idroute;
pub mod input;
pub mod listing;
pub mod metrics;
pub mod peer_sig;
pub mod placement;
pub mod policy;
pub mod protocol;
pub mod server_json;
pub mod service_time;
pub mod state;
pub mod token;
pub mod view;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use config::AgentConfig;
pub use error::{AgentError, CallError};

use crate::core::Core;
use crate::gossip::{Gossip, GossipConfig};
use crate::state::CloudletState;

/// A running agent.
pub struct AgentHandle {
    base_url: String,
    gossip_addr: SocketAddr,
    core: Arc<Core>,
    router: axum::Router,
    server: Option<JoinHandle<()>>,
    poller: JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl AgentHandle {
    /// `http://host:port` of the agent's OpenStack face.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Keystone URL to give clients (`<base>/identity`).
    pub fn auth_url(&self) -> String {
        format!("{}/identity", self.base_url)
    }

    pub fn gossip_addr(&self) -> SocketAddr {
        self.gossip_addr
    }

    /// Members the overlay believes alive (self included).
    pub fn members_alive(&self) -> usize {
        self.core.gossip.members_alive()
    }

    /// Entries of the agent's CYCLON view and its size `c` (`None` with
    /// full membership).
    pub fn partial_view(&self) -> Option<(usize, usize)> {
        self.core.gossip.partial_view()
    }

    /// Whether this agent holds a peer's record of boot `gid`, as its
    /// backup, in state ACTIVE (for tests that need the ERROR case of a
    /// take-over exactly).
    pub fn holds_active_record(&self, gid: &str) -> bool {
        let Ok(gid) = uuid::Uuid::parse_str(gid) else {
            return false;
        };
        self.core.replicas.lock().is_ok_and(|h| {
            h.get(&gid)
                .is_some_and(|r| r.rec.state == protocol::ReplicaState::Active)
        })
    }

    /// How many deletes for certain this agent holds for peers as their
    /// backup (superseded or abandoned instances not yet confirmed gone).
    pub fn delete_records_held(&self) -> usize {
        self.core.pending.lock().map_or(0, |p| p.held.len())
    }

    /// The CYCLON overlay's traffic counters (`None` with full membership).
    pub fn overlay_stats(&self) -> Option<cyclon_node::OverlayStats> {
        self.core.gossip.overlay_stats()
    }

    /// The agent that holds this agent's boot records (its backup) now.
    pub async fn backup(&self) -> Option<String> {
        self.core.backup().await
    }

    /// The agent's router (for in-process wiring or benchmarks).
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// Stops accepting, leaves the overlay, and waits for the tasks.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        self.core.halt();
        self.poller.abort();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.core.gossip.abort();
    }

    /// Kills the agent at once: open connections are dropped, new ones
    /// refused, gossip and background work (boot watchers, pending
    /// deletes) stop (peers then declare it dead).
    pub fn abort(&self) {
        self.core.halt();
        if let Some(server) = &self.server {
            server.abort();
        }
        self.poller.abort();
        self.core.gossip.abort();
    }
}

/// Dropping the handle kills the agent (as [`AgentHandle::abort`]).
impl Drop for AgentHandle {
    fn drop(&mut self) {
        self.abort();
    }
}

/// Starts an agent with authenticated UDP gossip ([`gossip_auth`]): only
/// holders of the cluster secret join. Refuses to start without a secret.
pub async fn start(
    config: AgentConfig,
    transport: os_client::SharedTransport,
) -> Result<AgentHandle, AgentError> {
    let gossip = gossip_auth::AuthUdpTransport::new(&config.cluster_secret, &config.cluster_id)
        .map_err(|e| AgentError::Config(e.to_string()))?;
    let handle = start_with_gossip(config, transport, &gossip).await?;
    let _ = handle.core.metrics.gossip_rejected.set(gossip.rejected());
    Ok(handle)
}

/// Resolves `host:port` (or parses `ip:port`) with a pure-Rust resolver
/// (`/etc/hosts`, then the DNS servers of `/etc/resolv.conf`).
pub async fn resolve(host_port: &str) -> Option<SocketAddr> {
    if let Ok(a) = host_port.parse::<SocketAddr>() {
        return Some(a);
    }
    let (host, port) = host_port.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let resolver = hickory_resolver::TokioResolver::builder_tokio()
        .ok()?
        .build();
    let ips = resolver.lookup_ip(host).await.ok()?;
    // Prefer IPv4 (listeners are usually bound on IPv4 addresses).
    let ip = ips
        .iter()
        .find(|ip| ip.is_ipv4())
        .or_else(|| ips.iter().next())?;
    Some(SocketAddr::new(ip, port))
}

async fn resolve_with_retry(host_port: &str, limit: Duration) -> Option<SocketAddr> {
    let t0 = cp_model::clock::now();
    loop {
        if let Some(a) = resolve(host_port).await {
            return Some(a);
        }
        if cp_model::clock::now().saturating_duration_since(t0) > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn concrete_gossip_addr(listen: &str) -> Result<SocketAddr, AgentError> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|e| AgentError::Config(format!("gossip_listen {listen:?}: {e}")))?;
    if addr.port() != 0 {
        return Ok(addr);
    }
    // chitchat advertises the address it is given: pick a free port first.
    let s = std::net::UdpSocket::bind(addr).map_err(|source| AgentError::Bind {
        addr: listen.to_string(),
        source,
    })?;
    s.local_addr().map_err(|source| AgentError::Bind {
        addr: listen.to_string(),
        source,
    })
}

/// Starts an agent whose gossip goes over `gossip_transport` (e.g.
/// chitchat's in-memory `ChannelTransport` in tests).
pub async fn start_with_gossip(
    config: AgentConfig,
    transport: os_client::SharedTransport,
    gossip_transport: &dyn chitchat::transport::Transport,
) -> Result<AgentHandle, AgentError> {
    let config = checked(config)?;
    let listener = TcpListener::bind(&config.listen)
        .await
        .map_err(|source| AgentError::Bind {
            addr: config.listen.clone(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| AgentError::Bind {
        addr: config.listen.clone(),
        source,
    })?;
    let self_url = config
        .peer_url
        .clone()
        .or_else(|| config.public_url.clone())
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("http://{local}"));
    launch(
        config,
        transport,
        gossip_transport,
        self_url,
        Some(listener),
    )
    .await
}

/// Starts an agent with no socket at all (the `sim` backend): its HTTP face
/// is [`AgentHandle::router`], to be served in-process (e.g. through
/// `os_client::InProcessTransport` under the authority of `base_url`), and
/// its gossip goes over `gossip_transport` (e.g. [`gossip_sim::SimGossipNet`]).
/// `config.gossip_listen` must be a concrete `ip:port` (an address on that
/// network, not a port to pick).
pub async fn start_in_process(
    config: AgentConfig,
    transport: os_client::SharedTransport,
    gossip_transport: &dyn chitchat::transport::Transport,
    base_url: &str,
) -> Result<AgentHandle, AgentError> {
    let config = checked(config)?;
    let self_url = base_url.trim_end_matches('/').to_string();
    launch(config, transport, gossip_transport, self_url, None).await
}

/// Validates the configuration and converts its durations (model time)
/// into the wall time the agent's timers run on.
fn checked(config: AgentConfig) -> Result<AgentConfig, AgentError> {
    if config.name.is_empty() {
        return Err(AgentError::Config("name must not be empty".into()));
    }
    gossip_auth::check_secret(&config.cluster_secret)
        .map_err(|e| AgentError::Config(e.to_string()))?;
    config.to_wall()
}

async fn launch(
    config: AgentConfig,
    transport: os_client::SharedTransport,
    gossip_transport: &dyn chitchat::transport::Transport,
    self_url: String,
    listener: Option<TcpListener>,
) -> Result<AgentHandle, AgentError> {
    let advertised = match &config.gossip_advertise {
        Some(a) => Some(
            resolve_with_retry(a, Duration::from_secs(10))
                .await
                .ok_or_else(|| {
                    AgentError::Config(format!("gossip_advertise {a:?} does not resolve"))
                })?,
        ),
        None => None,
    };
    // IP seeds go to chitchat; named seeds are resolved here (pure-Rust
    // resolver: static binaries cannot use the system's) until they answer.
    let (ip_seeds, named_seeds): (Vec<String>, Vec<String>) = config
        .seed_peers
        .iter()
        .cloned()
        .partition(|s| s.parse::<SocketAddr>().is_ok());
    let cloudlet = cloudlet::CloudletClient::new(&config, transport.clone());
    let mut initial = CloudletState {
        name: config.name.clone(),
        url: self_url.clone(),
        cloudlet_auth_url: Some(config.cloudlet_auth_url.clone()),
        ..Default::default()
    };
    // First capacity poll before joining, so peers see real figures.
    if let Ok(cap) = cloudlet.capacity().await {
        apply_capacity(&mut initial, &cap, true);
    }
    // A port picked by `concrete_gossip_addr` can be taken by another
    // socket before chitchat binds it (agents starting side by side): pick
    // again a few times when the port was ours to choose.
    let mut attempt = 0;
    let (gossip, gossip_addr) = loop {
        attempt += 1;
        let gossip_listen = concrete_gossip_addr(&config.gossip_listen)?;
        let gossip_addr = advertised.unwrap_or(gossip_listen);
        let gcfg = GossipConfig {
            node_id: config.name.clone(),
            addr: gossip_addr,
            listen: gossip_listen,
            seeds: ip_seeds.clone(),
            cluster_id: config.cluster_id.clone(),
            interval: Duration::from_millis(config.gossip_interval_ms.max(10)),
            phi_threshold: config.phi_threshold,
            rng_seed: config.seed.map(|s| s ^ 0x0601_5519),
            overlay: config.overlay_kind()?,
        };
        match Gossip::spawn(&gcfg, &initial, gossip_transport).await {
            Ok(g) => break (g, gossip_addr),
            Err(e) if attempt < 5 && listener.is_some() && config.gossip_listen.ends_with(":0") => {
                warn!(error = %e, "gossip port taken meanwhile; picking another");
            }
            Err(e) => return Err(e),
        }
    };
    let seed = config.seed.unwrap_or_else(rand::random);
    let core = Arc::new(Core {
        name: config.name.clone(),
        self_url: self_url.clone(),
        secret: config.cluster_secret.as_bytes().to_vec(),
        tokens: Default::default(),
        peer_key: peer_sig::PeerKey::derive(config.cluster_secret.as_bytes()),
        peer_verifier: Mutex::new(peer_sig::Verifier::new(peer_sig::PeerKey::derive(
            config.cluster_secret.as_bytes(),
        ))),
        cloudlet,
        gossip,
        metrics: Default::default(),
        directory: Mutex::new(std::collections::BTreeMap::new()),
        suspects: Mutex::new(HashMap::new()),
        last_seen: Mutex::new(HashMap::new()),
        names: Mutex::new(HashMap::new()),
        rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
        request_ids: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed ^ 0x5EED_0F1D)),
        recent: Mutex::new(HashMap::new()),
        doomed: Mutex::new(std::collections::HashSet::new()),
        direct_clients: Mutex::new(HashMap::new()),
        halt: watch::channel(false).0,
        watches: Default::default(),
        replicas: Mutex::new(std::collections::BTreeMap::new()),
        status_feed: Default::default(),
        sent_records: Mutex::new(std::collections::BTreeMap::new()),
        lost: Mutex::new(HashMap::new()),
        pending: Default::default(),
        cfg: config,
    });
    core.start_background();
    let service = service_time::ServiceTime::new(
        Duration::from_micros(core.cfg.service_time_us),
        core.cfg.service_workers,
    );
    let router = service_time::wrap(api::router(core.clone()), service);
    let (stop, stop_rx) = watch::channel(false);
    let server = listener.map(|l| {
        tokio::spawn(conn::serve(
            l,
            router.clone(),
            stop_rx,
            conn::ConnLimits {
                max_connections: match core.cfg.max_connections {
                    0 => conn::ConnLimits::default().max_connections,
                    n => n,
                },
                ..Default::default()
            },
            core.metrics.conns.clone(),
        ))
    });
    let poller = tokio::spawn(poll_capacity(core.clone(), initial, named_seeds));
    info!(agent = %core.name, url = %self_url, gossip = %gossip_addr, "agent started");
    Ok(AgentHandle {
        base_url: self_url,
        gossip_addr,
        core,
        router,
        server,
        poller,
        stop,
    })
}

fn apply_capacity(st: &mut CloudletState, cap: &cloudlet::Capacity, healthy: bool) {
    st.free_vcpus = cap.free_vcpus;
    st.free_ram_mb = cap.free_ram_mb;
    st.free_disk_gb = cap.free_disk_gb;
    st.total_vcpus = cap.total_vcpus;
    st.builds_in_flight = cap.builds_in_flight;
    st.healthy = healthy;
    st.updated_ms = cp_model::clock::unix_millis();
}

/// Publishes the cloudlet's capacity to the overlay at a fixed interval.
/// Also keeps knocking at seeds given by name until the overlay has peers.
async fn poll_capacity(core: Arc<Core>, mut st: CloudletState, named_seeds: Vec<String>) {
    let every = Duration::from_millis(core.cfg.capacity_interval_ms.max(10));
    let mut was_healthy = st.healthy;
    let mut rounds = 0u64;
    let mut last_published = st.clone();
    let mut unchanged_polls = 0u32;
    loop {
        tokio::time::sleep(every).await;
        // Seeds by name: every round while alone, then every ~30 rounds.
        if !named_seeds.is_empty() && (core.gossip.members_alive() <= 1 || rounds == 0) {
            for s in &named_seeds {
                if let Some(addr) = resolve(s).await {
                    core.gossip.gossip_with(addr);
                }
            }
        }
        rounds = (rounds + 1) % 30;
        match core.cloudlet.capacity().await {
            Ok(cap) => {
                apply_capacity(&mut st, &cap, true);
                if !was_healthy {
                    info!(agent = %core.name, "cloudlet reachable");
                }
                was_healthy = true;
            }
            Err(e) => {
                st.healthy = false;
                st.updated_ms = cp_model::clock::unix_millis();
                if was_healthy {
                    warn!(agent = %core.name, error = %e, "cloudlet capacity poll failed; leaving placement");
                }
                was_healthy = false;
            }
        }
        // An unchanged report is not re-gossiped: every new version of a
        // key costs every peer a delta, which at idle is the overlay's
        // largest cost. The timestamp alone is refreshed now and then so
        // that peers still prune their record of recent placements.
        // Refused connections or accept failures since the last poll, or
        // connections near the cap: peers stop sending boots here.
        st.saturated = core.metrics.conns.pressure();
        if needs_publish(&last_published, &st, unchanged_polls) {
            core.gossip.publish(&st).await;
            last_published = st.clone();
            unchanged_polls = 0;
        } else {
            unchanged_polls += 1;
        }
    }
}

/// Unchanged capacity reports re-published once in this many polls.
const REFRESH_EVERY_POLLS: u32 = 6;

fn needs_publish(last: &CloudletState, now: &CloudletState, unchanged_polls: u32) -> bool {
    let same = CloudletState {
        updated_ms: last.updated_ms,
        ..now.clone()
    } == *last;
    !same || unchanged_polls + 1 >= REFRESH_EVERY_POLLS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(free: i64, at: i64) -> CloudletState {
        CloudletState {
            name: "c1".into(),
            free_vcpus: free,
            healthy: true,
            updated_ms: at,
            ..Default::default()
        }
    }

    #[test]
    fn only_changes_and_periodic_refreshes_are_gossiped() {
        let last = state(8, 1_000);
        // A new timestamp alone is not news…
        assert!(!needs_publish(&last, &state(8, 2_000), 0));
        // …until the refresh is due, so peers can prune recent placements.
        assert!(needs_publish(
            &last,
            &state(8, 2_000),
            REFRESH_EVERY_POLLS - 1
        ));
        // A change of capacity or health is published at once.
        assert!(needs_publish(&last, &state(7, 2_000), 0));
        let mut sick = state(8, 2_000);
        sick.healthy = false;
        assert!(needs_publish(&last, &sick, 0));
    }
}
