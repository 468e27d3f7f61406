//! A testbed made of containers.
//!
//! Each mock OpenStack and each agent is one container of the locally built
//! image `p2pstack-node:local`. In the default [`NetLayout::Shared`] they
//! all run in one network namespace (a holder container's, the only one on
//! the run's bridge network) on ports of their own and reach each other
//! over loopback; in [`NetLayout::Bridge`] each has an address on the
//! run's bridge network and they reach each other by container name
//! (Docker's embedded DNS, resolved in-process by the static binaries).
//! Either way the host reaches them only through API ports published on
//! 127.0.0.1, and gossip (UDP) is never published.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use testcontainers::bollard::models::{HostConfig, PortBinding};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::cleanup::{self, CleanupError, RunGuard, RUN_LABEL};
use super::images::{IMAGE_NAME, IMAGE_TAG};
use crate::embedded::{agent_config, member_name, TestbedSpec};
use crate::topology::Kind;

/// Port every API listens on inside its container.
pub const API_PORT: u16 = 8080;
/// Port of the agents' gossip inside their containers.
pub const GOSSIP_PORT: u16 = 7946;
/// How long one container may take to print "listening on".
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the agents may take to all see each other.
const CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("no Docker engine is reachable (is the daemon running?)")]
    NoEngine,
    #[error("image {0} is missing; build it with `testbed images`")]
    NoImage(String),
    #[error("cannot start container {name}: {message}")]
    Start { name: String, message: String },
    #[error("the testbed did not become ready: {0}")]
    NotReady(String),
    #[error(
        "a P2P testbed of {cloudlets} cloudlets on one Docker network needs about {need} kernel \
         neighbour (ARP) entries (every agent gossips with every other), more than \
         net.ipv4.neigh.default.gc_thresh3 = {limit}: traffic would stall with \"neighbor table \
         overflow\" (bridge layout). Use the shared layout ({NET_LAYOUT_ENV}=shared, \
         the default), at most {max} cloudlets, or raise the limit as root: \
         sysctl -w net.ipv4.neigh.default.gc_thresh2={need} net.ipv4.neigh.default.gc_thresh3={suggest}"
    )]
    NeighbourTable {
        cloudlets: u32,
        need: u64,
        limit: u64,
        max: u32,
        suggest: u64,
    },
    #[error(
        "the shared network layout has ports for at most {max} cloudlets ({cloudlets} asked); \
         use {NET_LAYOUT_ENV}=bridge or fewer cloudlets"
    )]
    TooManyForShared { cloudlets: u32, max: u32 },
    #[error("{NET_LAYOUT_ENV}={0:?} is not a network layout (shared or bridge)")]
    BadLayout(String),
    #[error(transparent)]
    Cleanup(#[from] CleanupError),
}

/// How the containers of a run are networked (docs/testbeds.md, "Network
/// layout"). The kernel's neighbour (ARP) table is one table for all
/// network namespaces, limited by `net.ipv4.neigh.default.gc_thresh3`
/// (1,024 by default); the layouts differ in how many entries they need.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NetLayout {
    /// One network namespace for the whole run. A holder container sits on
    /// the run's bridge network and publishes every API port on 127.0.0.1;
    /// every mock and agent joins its namespace (`--network
    /// container:<holder>`) and listens on ports of its own, so they reach
    /// each other over loopback (no neighbour entries) and the host reaches
    /// them through the holder (two entries, whatever N).
    #[default]
    Shared,
    /// Every container on the run's bridge network with an address of its
    /// own: a P2P testbed needs about N² + 5N neighbour entries, more than
    /// the default limit from 30 cloudlets on.
    Bridge,
}

/// Environment variable that selects the layout (`shared`, the default, or
/// `bridge`).
pub const NET_LAYOUT_ENV: &str = "P2PSTACK_DOCKER_NET";

impl NetLayout {
    /// The layout named by [`NET_LAYOUT_ENV`], or the default.
    pub fn from_env() -> Result<Self, DockerError> {
        match std::env::var(NET_LAYOUT_ENV) {
            Ok(v) if !v.trim().is_empty() => v.parse(),
            _ => Ok(Self::default()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NetLayout::Shared => "shared",
            NetLayout::Bridge => "bridge",
        }
    }
}

impl std::str::FromStr for NetLayout {
    type Err = DockerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "shared" => Ok(NetLayout::Shared),
            "bridge" => Ok(NetLayout::Bridge),
            _ => Err(DockerError::BadLayout(s.to_string())),
        }
    }
}

impl std::fmt::Display for NetLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// First port of the shared layout; member `i` has three from
/// `SHARED_PORT_BASE + 3i`: its mock's API, its agent's API, its agent's
/// gossip.
const SHARED_PORT_BASE: u32 = 10_000;
/// Ports stay below Linux's ephemeral range (32768–60999), which outgoing
/// connections of the namespace use.
const SHARED_PORT_END: u32 = 32_768;
/// Port of the holder's own listener (it needs a process that stays up).
const SHARED_HOLDER_PORT: u16 = 9_999;

/// The most members the shared layout has ports for (7,589).
pub fn shared_max_members() -> u32 {
    (SHARED_PORT_END - SHARED_PORT_BASE) / 3
}

/// Ports of member `i` in the shared layout: (mock API, agent API, agent
/// gossip); `None` past [`shared_max_members`].
pub fn shared_ports(i: u32) -> Option<(u16, u16, u16)> {
    if i >= shared_max_members() {
        return None;
    }
    let base = SHARED_PORT_BASE + 3 * i;
    Some((
        u16::try_from(base).ok()?,
        u16::try_from(base + 1).ok()?,
        u16::try_from(base + 2).ok()?,
    ))
}

/// Kernel neighbour entries a testbed needs, all network namespaces
/// together (the table and its limits are shared): each agent holds its
/// N-1 peers, its mock and the gateway; each mock its agent and the
/// gateway; the host bridge every container.
pub fn neighbour_entries(kind: Kind, members: u32) -> u64 {
    neighbour_entries_in(NetLayout::Bridge, kind, members)
}

/// [`neighbour_entries`] for a layout: the shared one needs the holder's
/// entry for the gateway and the host bridge's for the holder, whatever the
/// testbed.
pub fn neighbour_entries_in(layout: NetLayout, kind: Kind, members: u32) -> u64 {
    if layout == NetLayout::Shared {
        return 2;
    }
    let n = u64::from(members);
    match kind {
        Kind::Standard | Kind::Cells => 4,
        // Each mock: the gateway; the host bridge: every mock.
        Kind::Sharded => 2 * n + 2,
        Kind::P2p => n * (n + 1) + 2 * n + 2 * n,
    }
}

const GC_THRESH2: &str = "/proc/sys/net/ipv4/neigh/default/gc_thresh2";
const GC_THRESH3: &str = "/proc/sys/net/ipv4/neigh/default/gc_thresh3";

fn read_sysctl(path: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
}

/// Makes room in the kernel's neighbour table
/// (`net.ipv4.neigh.default.gc_thresh3`) for the testbed, or refuses it.
/// Seen on this machine at 64 cloudlets with the default 1,024:
/// `arp_cache: neighbor table overflow!` and every published port stalls.
/// When this process may write the sysctls (root, as Docker itself needs
/// for its networking), the limits are raised, never lowered, and the
/// change is printed with the command that undoes it; otherwise the
/// testbed is refused with the command to run.
fn make_room_in_neighbour_table(spec: &TestbedSpec) -> Result<(), DockerError> {
    let Some(limit) = read_sysctl(GC_THRESH3) else {
        return Ok(());
    };
    let need = neighbour_entries(spec.kind, spec.members);
    if need <= limit {
        return Ok(());
    }
    let suggest = need.saturating_mul(2).next_power_of_two();
    let old2 = read_sysctl(GC_THRESH2).unwrap_or(512);
    // thresh3 first: the kernel keeps thresh2 ≤ thresh3 meaningful.
    if std::fs::write(GC_THRESH3, suggest.to_string()).is_ok()
        && std::fs::write(GC_THRESH2, need.max(old2).to_string()).is_ok()
    {
        eprintln!(
            "testbed: raised the kernel neighbour table for {} cloudlets (about {need} ARP entries): \
             net.ipv4.neigh.default.gc_thresh2 {old2} -> {}, gc_thresh3 {limit} -> {suggest}. \
             To restore: sysctl -w net.ipv4.neigh.default.gc_thresh2={old2} \
             net.ipv4.neigh.default.gc_thresh3={limit}",
            spec.members,
            need.max(old2)
        );
        return Ok(());
    }
    let max = (1..=spec.members)
        .take_while(|&n| neighbour_entries(spec.kind, n) <= limit)
        .last()
        .unwrap_or(1);
    Err(DockerError::NeighbourTable {
        cloudlets: spec.members,
        need,
        limit,
        max,
        suggest,
    })
}

struct Member {
    name: String,
    mock: Option<ContainerAsync<GenericImage>>,
    agent: Option<ContainerAsync<GenericImage>>,
    /// Auth URL on the host (`http://127.0.0.1:<published port>/identity`).
    auth_url: String,
    host_port: u16,
    /// The mock's own published port on 127.0.0.1.
    mock_host_port: u16,
}

/// A running testbed of containers. Dropping it removes every container
/// and the network (see [`super::cleanup`]); [`DockerTestbed::shutdown`]
/// does the same without blocking.
pub struct DockerTestbed {
    pub spec: TestbedSpec,
    /// Value of the `p2pstack.run` label on every container and network.
    pub run_id: String,
    /// Name of the run's private network.
    pub network: String,
    /// How the containers are networked.
    pub layout: NetLayout,
    // Field order matters: containers drop (and are removed) before the
    // guard sweeps what is left and removes the network.
    members: Vec<Member>,
    /// The shared layout's namespace holder (after the members: it goes last).
    holder: Option<Box<ContainerAsync<GenericImage>>>,
    guard: RunGuard,
}

/// Publishes `ports` (container side) on 127.0.0.1 only (random host
/// ports), never on all interfaces.
fn publish_on_loopback(ports: Vec<u16>) -> impl Fn(&mut HostConfig) + Send + Sync + 'static {
    move |hc: &mut HostConfig| {
        hc.publish_all_ports = Some(false);
        let bindings = ports
            .iter()
            .map(|p| {
                (
                    format!("{p}/tcp"),
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".to_string()),
                        host_port: Some(String::new()),
                    }]),
                )
            })
            .collect();
        hc.port_bindings = Some(bindings);
    }
}

/// A container of the run: the image, its name, label, log level and
/// readiness line; networking is added by the layout.
fn base_request(cname: &str, run_id: &str) -> testcontainers::ContainerRequest<GenericImage> {
    GenericImage::new(IMAGE_NAME, IMAGE_TAG)
        .with_wait_for(WaitFor::message_on_stdout("listening on"))
        .with_container_name(cname)
        .with_label(RUN_LABEL, run_id)
        .with_env_var("RUST_LOG", "warn")
        .with_startup_timeout(STARTUP_TIMEOUT)
}

/// Bridge layout: a container on the run's network, its API port published
/// on 127.0.0.1; gossip stays inside the network.
fn node_request(
    cname: &str,
    network: &str,
    run_id: &str,
) -> testcontainers::ContainerRequest<GenericImage> {
    GenericImage::new(IMAGE_NAME, IMAGE_TAG)
        .with_exposed_port(API_PORT.tcp())
        .with_wait_for(WaitFor::message_on_stdout("listening on"))
        .with_network(network)
        .with_container_name(cname)
        .with_hostname(cname)
        .with_label(RUN_LABEL, run_id)
        .with_env_var("RUST_LOG", "warn")
        .with_startup_timeout(STARTUP_TIMEOUT)
        .with_host_config_modifier(publish_on_loopback(vec![API_PORT]))
}

/// Shared layout: a container in the holder's network namespace (no
/// address, ports or host name of its own).
fn joined_request(
    cname: &str,
    holder: &str,
    run_id: &str,
) -> testcontainers::ContainerRequest<GenericImage> {
    let mode = format!("container:{holder}");
    base_request(cname, run_id).with_host_config_modifier(move |hc: &mut HostConfig| {
        hc.network_mode = Some(mode.clone());
        hc.publish_all_ports = Some(false);
        hc.port_bindings = None;
    })
}

/// Container ports the shared layout's holder publishes: every mock's API
/// and, for P2P, every agent's.
fn shared_published_ports(spec: &TestbedSpec) -> Vec<u16> {
    let (mocks, _) = spec.kind.deployments(spec.members);
    let mut ports = Vec::new();
    for i in 0..mocks {
        if let Some((m, a, _)) = shared_ports(i) {
            ports.push(m);
            if spec.kind == Kind::P2p {
                ports.push(a);
            }
        }
    }
    ports
}

/// Replaces the value after `flag` in a command line.
fn set_flag(args: &mut [String], flag: &str, value: String) {
    if let Some(k) = args.iter().position(|a| a == flag) {
        if let Some(v) = args.get_mut(k + 1) {
            *v = value;
        }
    }
}

/// Container name of member `i`'s mock (`-os`) or agent (`-agent`).
pub(crate) fn cname(run_id: &str, kind: Kind, i: u32, role: &str) -> String {
    format!("{run_id}-{}-{role}", member_name(kind, i))
}

/// Seed of member `i`, the same stream as in the embedded backend.
pub(crate) fn member_seed(spec: &TestbedSpec, i: u32) -> u64 {
    spec.seed.wrapping_add(u64::from(i) * 0x9E37_79B9)
}

/// The mock's command line (API on `0.0.0.0:API_PORT`), for any engine.
pub(crate) fn mock_args(spec: &TestbedSpec, name: &str, computes: u32, seed: u64) -> Vec<String> {
    vec![
        "/mock-openstack".to_string(),
        "--listen".into(),
        format!("0.0.0.0:{API_PORT}"),
        "--name".into(),
        name.to_string(),
        "--computes".into(),
        computes.to_string(),
        "--cells".into(),
        spec.resolved_cells().to_string(),
        "--region".into(),
        crate::embedded::member_region(spec.kind, crate::embedded::member_index(name)),
        "--compute-vcpus".into(),
        spec.sizing.node.vcpus.to_string(),
        "--compute-ram-mb".into(),
        spec.sizing.node.ram_mb.to_string(),
        "--compute-disk-gb".into(),
        spec.sizing.node.disk_gb.to_string(),
        "--cpu-allocation-ratio".into(),
        spec.sizing.node.cpu_allocation_ratio.to_string(),
        "--ram-allocation-ratio".into(),
        spec.sizing.node.ram_allocation_ratio.to_string(),
        "--disk-allocation-ratio".into(),
        spec.sizing.node.disk_allocation_ratio.to_string(),
        "--quota-instances".into(),
        spec.sizing.quota_instances.to_string(),
        "--quota-cores".into(),
        spec.sizing.quota_cores.min(i64::MAX as u64).to_string(),
        "--quota-ram-mb".into(),
        spec.sizing.quota_ram_mb.min(i64::MAX as u64).to_string(),
        "--profile".into(),
        spec.profile.clone(),
        "--time-scale".into(),
        spec.time_scale.to_string(),
        "--seed".into(),
        seed.to_string(),
    ]
}

/// Indices of the well-known seed agents (the first three, as in embedded).
pub(crate) fn seed_members(spec: &TestbedSpec) -> std::ops::Range<u32> {
    0..spec.members.min(3)
}

/// The agent's command line: the same timers as the embedded backend
/// ([`agent_config`]), addresses by container name.
fn agent_args(spec: &TestbedSpec, run_id: &str, i: u32) -> Vec<String> {
    let me = cname(run_id, spec.kind, i, "agent");
    let os = cname(run_id, spec.kind, i, "os");
    let seeds: Vec<String> = seed_members(spec)
        .filter(|&s| s != i)
        .map(|s| cname(run_id, spec.kind, s, "agent"))
        .collect();
    agent_args_at(
        spec,
        &member_name(spec.kind, i),
        &me,
        &format!("http://{os}:{API_PORT}/identity"),
        &seeds,
        Some(member_seed(spec, i).to_string()),
    )
}

/// The agent's command line in the shared layout: everything on
/// 127.0.0.1, each member on its own ports ([`shared_ports`]).
fn agent_args_shared(spec: &TestbedSpec, i: u32) -> Option<Vec<String>> {
    let (mock, api, gossip) = shared_ports(i)?;
    let seeds = seed_members(spec)
        .filter(|&s| s != i)
        .filter_map(|s| shared_ports(s).map(|(_, _, g)| format!("127.0.0.1:{g}")))
        .collect();
    Some(agent_args_with(
        spec,
        &member_name(spec.kind, i),
        &AgentAddrs {
            // 0.0.0.0: the published ports arrive on the holder's address.
            api_listen: format!("0.0.0.0:{api}"),
            gossip_listen: format!("127.0.0.1:{gossip}"),
            peer_url: format!("http://127.0.0.1:{api}"),
            gossip_advertise: format!("127.0.0.1:{gossip}"),
            os_auth_url: format!("http://127.0.0.1:{mock}/identity"),
            seeds,
        },
        Some(member_seed(spec, i).to_string()),
    ))
}

/// The agent's command line for any engine: `me` is the host name peers
/// reach it by, `os_auth_url` its mock's Keystone URL, `seeds` the seed
/// agents' host names; `rng_seed` is passed as given (a number, or an
/// engine's variable).
pub(crate) fn agent_args_at(
    spec: &TestbedSpec,
    name: &str,
    me: &str,
    os_auth_url: &str,
    seeds: &[String],
    rng_seed: Option<String>,
) -> Vec<String> {
    let seeds: Vec<String> = seeds.iter().map(|s| format!("{s}:{GOSSIP_PORT}")).collect();
    agent_args_with(
        spec,
        name,
        &AgentAddrs {
            api_listen: format!("0.0.0.0:{API_PORT}"),
            gossip_listen: format!("0.0.0.0:{GOSSIP_PORT}"),
            peer_url: format!("http://{me}:{API_PORT}"),
            gossip_advertise: format!("{me}:{GOSSIP_PORT}"),
            os_auth_url: os_auth_url.to_string(),
            seeds,
        },
        rng_seed,
    )
}

/// Where one agent listens and how the others reach it.
pub(crate) struct AgentAddrs {
    pub api_listen: String,
    pub gossip_listen: String,
    /// `http://host:port` peers call.
    pub peer_url: String,
    /// `host:port` of its gossip for the peers.
    pub gossip_advertise: String,
    pub os_auth_url: String,
    /// `host:port` of the seed agents' gossip.
    pub seeds: Vec<String>,
}

/// The agent's command line from explicit addresses.
pub(crate) fn agent_args_with(
    spec: &TestbedSpec,
    name: &str,
    addrs: &AgentAddrs,
    rng_seed: Option<String>,
) -> Vec<String> {
    let model_cfg = agent_config(
        spec,
        name,
        addrs.os_auth_url.clone(),
        addrs.seeds.clone(),
        0,
    );
    // The flags below are wall time (the agent binary's default scale).
    let cfg = model_cfg.to_wall().unwrap_or(model_cfg);
    let mut args = vec![
        "/p2p-agent".to_string(),
        "--name".into(),
        cfg.name.clone(),
        "--listen".into(),
        addrs.api_listen.clone(),
        // Peers call the peer URL; users get a catalog built from their
        // Host (127.0.0.1:<published port>).
        "--peer-url".into(),
        addrs.peer_url.clone(),
        "--cloudlet-auth-url".into(),
        cfg.cloudlet_auth_url.clone(),
        "--gossip-listen".into(),
        addrs.gossip_listen.clone(),
        "--gossip-advertise".into(),
        addrs.gossip_advertise.clone(),
        "--retries".into(),
        cfg.retries.to_string(),
        "--boot-poll-ms".into(),
        cfg.boot_poll_ms.to_string(),
        "--capacity-interval-ms".into(),
        cfg.capacity_interval_ms.to_string(),
        "--gossip-interval-ms".into(),
        cfg.gossip_interval_ms.to_string(),
        "--boot-watch-secs".into(),
        cfg.boot_watch_secs.to_string(),
        "--owner-unreachable-ms".into(),
        cfg.owner_unreachable_ms.to_string(),
        // The embedded backend's transport bound (30 s).
        "--request-timeout-ms".into(),
        "30000".into(),
    ];
    if let Some(seed) = rng_seed {
        args.push("--rng-seed".into());
        args.push(seed);
    }
    if cfg.overlay != agent::config::Overlay::Full {
        args.push("--overlay".into());
        args.push(cfg.overlay.to_string());
    }
    for s in &cfg.seed_peers {
        args.push("--seed-peer".into());
        args.push(s.clone());
    }
    args
}

/// A run id unique on this machine: pid + a per-process counter.
fn new_run_id() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    format!(
        "p2pstack-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `GET path` on 127.0.0.1:`port` (HTTP/1.0, the whole body). Only ever
/// talks to the loopback port Docker published, never to a container IP.
async fn get_local(port: u16, path: &str) -> Option<String> {
    let io = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(5), io)
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| body.to_string())
        .or_else(|| head.starts_with("HTTP/1.0 200").then(|| body.to_string()))
}

/// `p2p_members_alive` of the agent behind `port`.
/// What every agent's `p2p_members_alive` must reach for `n` live agents.
fn converged_count(spec: &TestbedSpec, n: usize) -> usize {
    match spec.overlay {
        agent::config::Overlay::Full => n,
        agent::config::Overlay::Cyclon => {
            let c = agent::AgentConfig::default().cyclon_view_size;
            c.min(n.saturating_sub(1)).div_ceil(2)
        }
    }
}

async fn members_alive(port: u16) -> Option<usize> {
    let text = get_local(port, "/metrics").await?;
    text.lines()
        .find(|l| l.starts_with("p2p_members_alive"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as usize)
}

/// Starts every request of `reqs` at once; `(index, container)` of those
/// that started, and the first error.
async fn start_all(
    reqs: Vec<(u32, String, testcontainers::ContainerRequest<GenericImage>)>,
) -> (
    Vec<(u32, ContainerAsync<GenericImage>)>,
    Option<DockerError>,
) {
    let mut set = tokio::task::JoinSet::new();
    for (i, name, req) in reqs {
        set.spawn(async move {
            let r = req.start().await.map_err(|e| DockerError::Start {
                name,
                message: e.to_string(),
            });
            (i, r)
        });
    }
    let mut started = Vec::new();
    let mut first_err = None;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((i, Ok(c))) => started.push((i, c)),
            Ok((_, Err(e))) => first_err = first_err.or(Some(e)),
            Err(e) => first_err = first_err.or(Some(DockerError::NotReady(e.to_string()))),
        }
    }
    started.sort_by_key(|(i, _)| *i);
    (started, first_err)
}

impl DockerTestbed {
    /// Starts the testbed in the layout of [`NET_LAYOUT_ENV`] (shared by
    /// default) and, for P2P, waits until the agents have converged. On any
    /// error, whatever was started is removed.
    pub async fn start(spec: TestbedSpec) -> Result<Self, DockerError> {
        Self::start_with(spec, NetLayout::from_env()?).await
    }

    /// [`DockerTestbed::start`] in a given layout.
    pub async fn start_with(spec: TestbedSpec, layout: NetLayout) -> Result<Self, DockerError> {
        if !super::docker_available() {
            return Err(DockerError::NoEngine);
        }
        match layout {
            NetLayout::Bridge => make_room_in_neighbour_table(&spec)?,
            NetLayout::Shared => {
                let (mocks, _) = spec.kind.deployments(spec.members);
                if mocks > shared_max_members() {
                    return Err(DockerError::TooManyForShared {
                        cloudlets: mocks,
                        max: shared_max_members(),
                    });
                }
            }
        }
        let docker = cleanup::connect()
            .await
            .map_err(|_| DockerError::NoEngine)?;
        let image = format!("{IMAGE_NAME}:{IMAGE_TAG}");
        if docker.inspect_image(&image).await.is_err() {
            return Err(DockerError::NoImage(image));
        }
        let run_id = new_run_id();
        let network = format!("{run_id}-net");
        // From here on, the guard removes the run on any early return.
        let guard = RunGuard::new(run_id.clone(), network.clone());
        cleanup::create_network(&docker, &run_id, &network).await?;
        let mut tb = Self {
            spec: spec.clone(),
            run_id,
            network,
            layout,
            members: Vec::new(),
            holder: None,
            guard,
        };
        match layout {
            NetLayout::Bridge => tb.start_bridge().await?,
            NetLayout::Shared => tb.start_shared().await?,
        }
        if spec.kind == Kind::P2p {
            tb.wait_converged(CONVERGENCE_TIMEOUT).await?;
        }
        Ok(tb)
    }

    /// Bridge layout: every container on the run's network, found by name.
    async fn start_bridge(&mut self) -> Result<(), DockerError> {
        let (spec, run_id, network) = (&self.spec, &self.run_id, &self.network);
        let (mocks, computes) = spec.kind.deployments(spec.members);
        // Mocks first, all at once.
        let reqs = (0..mocks)
            .map(|i| {
                let c = cname(run_id, spec.kind, i, "os");
                let req = node_request(&c, network, run_id).with_cmd(mock_args(
                    spec,
                    &member_name(spec.kind, i),
                    computes,
                    member_seed(spec, i),
                ));
                (i, c, req)
            })
            .collect();
        let (started, first_err) = start_all(reqs).await;
        for (i, c) in started {
            let port = c.get_host_port_ipv4(API_PORT.tcp()).await;
            let port = port.map_err(|e| DockerError::NotReady(format!("mock {i}: {e}")));
            self.members.push(Member {
                name: member_name(spec.kind, i),
                mock: Some(c),
                agent: None,
                auth_url: String::new(),
                host_port: 0,
                mock_host_port: 0,
            });
            let port = port?;
            if let Some(m) = self.members.last_mut() {
                m.auth_url = format!("http://127.0.0.1:{port}/identity");
                m.host_port = port;
                m.mock_host_port = port;
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        if spec.kind != Kind::P2p {
            return Ok(());
        }
        let reqs = (0..spec.members)
            .map(|i| {
                let c = cname(run_id, spec.kind, i, "agent");
                let req = node_request(&c, network, run_id)
                    .with_env_var("P2P_CLUSTER_SECRET", spec.cluster_secret.clone())
                    .with_cmd(agent_args(spec, run_id, i));
                (i, c, req)
            })
            .collect();
        let (started, first_err) = start_all(reqs).await;
        for (i, c) in started {
            let port = c.get_host_port_ipv4(API_PORT.tcp()).await;
            if let Some(m) = self.members.get_mut(i as usize) {
                m.agent = Some(c);
                let port = port.map_err(|e| DockerError::NotReady(format!("agent {i}: {e}")))?;
                m.auth_url = format!("http://127.0.0.1:{port}/identity");
                m.host_port = port;
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Shared layout: the holder on the run's network publishes every API
    /// port; mocks and agents join its namespace, each on its own ports.
    async fn start_shared(&mut self) -> Result<(), DockerError> {
        let (spec, run_id, network) = (&self.spec, &self.run_id, &self.network);
        let holder_name = format!("{run_id}-ns");
        let published = shared_published_ports(spec);
        let mut image = GenericImage::new(IMAGE_NAME, IMAGE_TAG);
        for p in &published {
            image = image.with_exposed_port(p.tcp());
        }
        let req = image
            .with_wait_for(WaitFor::message_on_stdout("listening on"))
            .with_container_name(&holder_name)
            .with_label(RUN_LABEL, run_id)
            .with_env_var("RUST_LOG", "warn")
            .with_startup_timeout(STARTUP_TIMEOUT)
            .with_network(network)
            .with_hostname(&holder_name)
            .with_host_config_modifier(publish_on_loopback(published.clone()))
            .with_cmd([
                "/mock-openstack".to_string(),
                "--listen".into(),
                format!("127.0.0.1:{SHARED_HOLDER_PORT}"),
                "--name".into(),
                "netns-holder".into(),
                "--computes".into(),
                "1".into(),
            ]);
        let holder = req.start().await.map_err(|e| DockerError::Start {
            name: holder_name.clone(),
            message: e.to_string(),
        })?;
        let ports = holder
            .ports()
            .await
            .map_err(|e| DockerError::NotReady(format!("{holder_name}: {e}")));
        self.holder = Some(Box::new(holder));
        let ports = ports?;
        let host_port = |p: u16| {
            ports.map_to_host_port_ipv4(p.tcp()).ok_or_else(|| {
                DockerError::NotReady(format!("{holder_name}: port {p} is not published"))
            })
        };
        let (mocks, computes) = spec.kind.deployments(spec.members);
        let mut reqs = Vec::new();
        for i in 0..mocks {
            let (mock_port, _, _) = shared_ports(i).ok_or(DockerError::TooManyForShared {
                cloudlets: mocks,
                max: shared_max_members(),
            })?;
            let c = cname(run_id, spec.kind, i, "os");
            let mut args = mock_args(
                spec,
                &member_name(spec.kind, i),
                computes,
                member_seed(spec, i),
            );
            // 0.0.0.0: the published port arrives on the holder's address.
            set_flag(&mut args, "--listen", format!("0.0.0.0:{mock_port}"));
            let port = host_port(mock_port)?;
            self.members.push(Member {
                name: member_name(spec.kind, i),
                mock: None,
                agent: None,
                auth_url: format!("http://127.0.0.1:{port}/identity"),
                host_port: port,
                mock_host_port: port,
            });
            reqs.push((
                i,
                c.clone(),
                joined_request(&c, &holder_name, run_id).with_cmd(args),
            ));
        }
        let (started, first_err) = start_all(reqs).await;
        for (i, c) in started {
            if let Some(m) = self.members.get_mut(i as usize) {
                m.mock = Some(c);
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        if spec.kind != Kind::P2p {
            return Ok(());
        }
        let mut reqs = Vec::new();
        for i in 0..spec.members {
            let args = agent_args_shared(spec, i).ok_or(DockerError::TooManyForShared {
                cloudlets: spec.members,
                max: shared_max_members(),
            })?;
            let c = cname(run_id, spec.kind, i, "agent");
            let req = joined_request(&c, &holder_name, run_id)
                .with_env_var("P2P_CLUSTER_SECRET", spec.cluster_secret.clone())
                .with_cmd(args);
            reqs.push((i, c, req));
        }
        let (started, first_err) = start_all(reqs).await;
        for (i, c) in started {
            let agent_port = shared_ports(i).map(|(_, a, _)| a);
            let port = agent_port.map(host_port).transpose()?;
            if let (Some(m), Some(port)) = (self.members.get_mut(i as usize), port) {
                m.agent = Some(c);
                m.auth_url = format!("http://127.0.0.1:{port}/identity");
                m.host_port = port;
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Waits until every live agent counts every live member alive (full
    /// membership), or holds a partial view at least half full (CYCLON:
    /// nobody knows everyone, and `p2p_members_alive` is the live view; the
    /// embedded backend's rule, `wait_agents_converged`).
    pub async fn wait_converged(&self, limit: Duration) -> Result<(), DockerError> {
        let ports: Vec<u16> = self
            .members
            .iter()
            .filter(|m| m.agent.is_some())
            .map(|m| m.host_port)
            .collect();
        let expected = converged_count(&self.spec, ports.len());
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let mut least = usize::MAX;
            for &p in &ports {
                least = least.min(members_alive(p).await.unwrap_or(0));
            }
            if least >= expected {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DockerError::NotReady(format!(
                    "the agents did not all see each other within {limit:?} ({least} of {expected} members alive)"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Auth URLs on the host: the monolith, or every live agent.
    pub fn entries(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.mock.is_some())
            .map(|m| m.auth_url.clone())
            .collect()
    }

    /// Member names (`cloudlet-1` …, or `standard`), live ones only.
    pub fn live_members(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.mock.is_some())
            .map(|m| m.name.clone())
            .collect()
    }

    /// `http://127.0.0.1:<published port>` of member `i`'s mock itself
    /// (its fault API, an admin's audit), while it runs.
    pub async fn mock_url(&self, i: u32) -> Option<String> {
        let m = self.members.get(i as usize)?;
        m.mock.as_ref()?;
        Some(format!("http://127.0.0.1:{}", m.mock_host_port))
    }

    /// Kills member `i`'s containers at once (SIGKILL and removal, no
    /// grace), as a lost cloudlet.
    pub async fn kill(&mut self, i: u32) {
        if let Some(m) = self.members.get_mut(i as usize) {
            let (a, o) = (m.agent.take(), m.mock.take());
            let rm = |c: Option<ContainerAsync<GenericImage>>| async move {
                if let Some(c) = c {
                    let _ = c.rm().await;
                }
            };
            tokio::join!(rm(a), rm(o));
        }
    }

    /// Removes every container and the network.
    pub async fn shutdown(mut self) {
        if cleanup::interrupted() {
            // Ctrl-C/SIGTERM: the signal watcher is sweeping this run and
            // exits the process; removing twice would only race with it.
            std::future::pending::<()>().await;
        }
        let mut set = tokio::task::JoinSet::new();
        for m in std::mem::take(&mut self.members) {
            for c in [m.agent, m.mock].into_iter().flatten() {
                set.spawn(async move {
                    let _ = c.rm().await;
                });
            }
        }
        while set.join_next().await.is_some() {}
        if let Some(h) = self.holder.take() {
            let _ = h.rm().await;
        }
        match cleanup::sweep(&self.run_id, &self.network).await {
            Ok(_) => self.guard.disarm(),
            Err(e) => {
                tracing::warn!(run = %self.run_id, error = %e, "docker cleanup failed; retrying on drop")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbour_estimate_matches_what_this_machine_showed() {
        // 8 cloudlets ran fine; 64 overflowed the default limit of 1024.
        assert_eq!(neighbour_entries(Kind::P2p, 8), 104);
        assert!(neighbour_entries(Kind::P2p, 29) <= 1024);
        assert!(neighbour_entries(Kind::P2p, 64) > 1024);
        assert!(neighbour_entries(Kind::Standard, 1000) <= 1024);
    }

    /// A P2P spec of `members` cloudlets (devstack, time scale 0.5).
    fn p2p_spec(members: u32) -> TestbedSpec {
        TestbedSpec {
            kind: Kind::P2p,
            members,
            cells: None,
            sizing: crate::topology::for_profile(members, "devstack", crate::topology::M1_TINY)
                .expect("builtin profile"),
            profile: "devstack".into(),
            time_scale: 0.5,
            seed: 3,
            retries: 1,
            cluster_secret: "s".into(),
            gossip_interval_ms: None,
            overlay: agent::config::Overlay::Full,
        }
    }

    #[test]
    fn cyclon_agents_are_converged_with_half_a_view_full_membership_with_everyone() {
        let mut spec = p2p_spec(64);
        assert_eq!(converged_count(&spec, 64), 64);
        spec.overlay = agent::config::Overlay::Cyclon;
        // A view of c = 20 holds at most 20 of the 63 others: half of it.
        assert_eq!(converged_count(&spec, 64), 10);
        // Fewer others than c: half of the others.
        assert_eq!(converged_count(&spec, 8), 4);
    }

    #[test]
    fn agent_flags_carry_the_embedded_timers() {
        let spec = p2p_spec(4);
        let args = agent_args(&spec, "run", 0).join(" ");
        assert!(args.contains("--boot-poll-ms 1000"), "{args}");
        assert!(args.contains("--capacity-interval-ms 5000"), "{args}");
        assert!(args.contains("--boot-watch-secs 450"), "{args}");
        assert!(args.contains("--owner-unreachable-ms 15000"), "{args}");
        assert!(
            args.contains("--peer-url http://run-cloudlet-1-agent:8080"),
            "{args}"
        );
        assert!(
            args.contains("--seed-peer run-cloudlet-2-agent:7946"),
            "{args}"
        );
        assert!(!args.contains("--seed-peer run-cloudlet-1-agent"), "{args}");
    }

    #[test]
    fn shared_layout_needs_two_neighbour_entries_whatever_n() {
        assert_eq!(neighbour_entries_in(NetLayout::Shared, Kind::P2p, 64), 2);
        assert_eq!(neighbour_entries_in(NetLayout::Shared, Kind::P2p, 1000), 2);
        assert_eq!(
            neighbour_entries_in(NetLayout::Bridge, Kind::P2p, 64),
            neighbour_entries(Kind::P2p, 64)
        );
        assert_eq!(NetLayout::default(), NetLayout::Shared);
        assert_eq!("bridge".parse::<NetLayout>().ok(), Some(NetLayout::Bridge));
        assert_eq!(
            " Shared ".parse::<NetLayout>().ok(),
            Some(NetLayout::Shared)
        );
        assert!("ipvlan".parse::<NetLayout>().is_err());
    }

    #[test]
    fn shared_ports_are_distinct_and_below_the_ephemeral_range() {
        let max = shared_max_members();
        assert_eq!(max, 7589);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..max {
            let (m, a, g) = shared_ports(i).expect("in range");
            for p in [m, a, g] {
                assert!(p >= 10_000 && u32::from(p) < 32_768, "port {p}");
                assert!(seen.insert(p), "port {p} used twice");
            }
            assert_ne!(m, SHARED_HOLDER_PORT);
        }
        assert_eq!(shared_ports(max), None);
    }

    #[test]
    fn shared_agents_talk_over_loopback_on_their_own_ports() {
        let spec = p2p_spec(4);
        let args = agent_args_shared(&spec, 1).expect("args").join(" ");
        let (mock, api, gossip) = shared_ports(1).expect("ports");
        assert!(args.contains(&format!("--listen 0.0.0.0:{api}")), "{args}");
        assert!(
            args.contains(&format!("--peer-url http://127.0.0.1:{api}")),
            "{args}"
        );
        assert!(
            args.contains(&format!("--gossip-advertise 127.0.0.1:{gossip}")),
            "{args}"
        );
        assert!(
            args.contains(&format!(
                "--cloudlet-auth-url http://127.0.0.1:{mock}/identity"
            )),
            "{args}"
        );
        // Seeds: members 0 and 2 (not itself).
        let (_, _, g0) = shared_ports(0).expect("ports");
        let (_, _, g2) = shared_ports(2).expect("ports");
        assert!(
            args.contains(&format!("--seed-peer 127.0.0.1:{g0}")),
            "{args}"
        );
        assert!(
            args.contains(&format!("--seed-peer 127.0.0.1:{g2}")),
            "{args}"
        );
        assert!(
            !args.contains(&format!("--seed-peer 127.0.0.1:{gossip}")),
            "{args}"
        );
        // The holder publishes every mock's and every agent's API port.
        let published = shared_published_ports(&spec);
        assert_eq!(published.len(), 8);
        assert!(published.contains(&mock) && published.contains(&api));
        assert!(!published.contains(&gossip));
    }
}
