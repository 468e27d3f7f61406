//! The embedded backend: every mock OpenStack and every agent of a testbed
//! runs in this process, each on its own loopback port.
//!
//! Nothing here knows about the experiment; it starts, describes, disturbs
//! and stops a testbed.

use std::time::Duration;

use crate::topology::{Kind, Sizing};

/// What to start.
#[derive(Debug, Clone)]
pub struct TestbedSpec {
    pub kind: Kind,
    /// Compute nodes (standard, cells) or cloudlets (sharded, P2P).
    pub members: u32,
    /// Cells of a cells deployment (`None`: [`crate::topology::cells_for`]).
    pub cells: Option<u32>,
    pub sizing: Sizing,
    /// cp-model profile name or path.
    pub profile: String,
    /// Wall seconds per model second.
    pub time_scale: f64,
    pub seed: u64,
    /// Agent retry bound (P2P only).
    pub retries: u32,
    /// Shared secret of the agents' cluster.
    pub cluster_secret: String,
    /// Agents' gossip interval in **model** ms; `None` picks
    /// [`auto_gossip_interval_ms`] (wall ms) for the testbed's size.
    pub gossip_interval_ms: Option<u64>,
    /// The agents' membership overlay (P2P only).
    pub overlay: agent::config::Overlay,
}

impl TestbedSpec {
    /// The validated time scale.
    pub fn scale(&self) -> Result<cp_model::TimeScale, cp_model::ModelError> {
        cp_model::TimeScale::new(self.time_scale)
    }

    /// Cells of the deployment: K for cells, 1 (one controller) otherwise.
    pub fn resolved_cells(&self) -> u32 {
        match self.kind {
            Kind::Cells => crate::topology::cells_for(self.members, self.cells),
            _ => 1,
        }
    }

    /// Gossip interval in model ms (at least 10 wall ms).
    pub fn gossip_interval_ms(&self) -> u64 {
        let model = self.gossip_interval_ms.unwrap_or_else(|| {
            (auto_gossip_interval_ms(interval_members(self.members, self.overlay)) as f64
                / self.time_scale)
                .round() as u64
        });
        let floor = (10.0 / self.time_scale).ceil() as u64;
        model.max(floor)
    }

    /// Gossip interval in wall ms.
    pub fn gossip_interval_wall_ms(&self) -> u64 {
        self.scale()
            .map(|s| s.wall_ms(self.gossip_interval_ms() as f64 / 1000.0, 10))
            .unwrap_or(100)
    }
}

/// Gossip interval for a testbed of `members` agents: 100 ms up to 64
/// members, then growing in proportion to N. Each round every agent sends
/// its full digest (O(N)) to three peers, so the cost of the whole overlay
/// per interval is O(N²); stretching the interval with N keeps the host's
/// share linear in N while convergence (O(log N) rounds) stays within
/// seconds. Gossip is not part of the model, so this changes no model time.
pub fn auto_gossip_interval_ms(members: u32) -> u64 {
    (100 * u64::from(members) / 64).max(100)
}

/// The overlay a testbed of `members` agents runs when none is asked for:
/// full membership up to 256, CYCLON above. Measured (docs/benchmarks.md,
/// "testbed up (embedded): how far N goes"): full membership holds every
/// peer in every agent (N² records; 1.3 GiB at 512, 1,000 not ready within
/// 124 s), CYCLON's memory per agent is flat (1,000 ready in 15-17 s, 574
/// MiB); at small N full membership excludes the dead twice as fast and
/// adopts dead coordinators' boots (docs/agent.md).
pub fn default_overlay(members: u32) -> agent::config::Overlay {
    if members <= 256 {
        agent::config::Overlay::Full
    } else {
        agent::config::Overlay::Cyclon
    }
}

/// The N the default gossip interval is sized for: N with full membership;
/// with CYCLON at most 64, since each agent's work per round (one shuffle
/// of `l` descriptors) does not grow with N.
pub fn interval_members(members: u32, overlay: agent::config::Overlay) -> u32 {
    match overlay {
        agent::config::Overlay::Full => members,
        agent::config::Overlay::Cyclon => members.min(64),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    #[error("invalid time scale: {0}")]
    TimeScale(#[from] cp_model::ModelError),
    #[error("cannot start mock OpenStack {name}: {source}")]
    Mock {
        name: String,
        source: mock_openstack::MockError,
    },
    #[error("cannot start agent {name}: {source}")]
    Agent {
        name: String,
        source: agent::AgentError,
    },
    #[error("cannot create the HTTP transport: {0}")]
    Transport(#[from] os_client::TransportError),
    #[error("a start-up task failed: {0}")]
    Task(String),
    #[error("the agents did not all see each other within {0:?} ({1} of {2} members alive)")]
    Convergence(Duration, usize, usize),
}

/// A running testbed.
pub struct EmbeddedTestbed {
    pub spec: TestbedSpec,
    mocks: Vec<Option<mock_openstack::MockHandle>>,
    agents: Vec<Option<agent::AgentHandle>>,
}

/// Starts cloudlet `i`: its mock, then its agent joining through `seeds`.
async fn start_member(
    spec: &TestbedSpec,
    i: u32,
    seeds: Vec<String>,
    transport: os_client::SharedTransport,
) -> Result<(mock_openstack::MockHandle, agent::AgentHandle), TestbedError> {
    let name = member_name(Kind::P2p, i);
    // Each cloudlet draws from its own stream of the run's seed.
    let seed = spec.seed.wrapping_add(u64::from(i) * 0x9E37_79B9);
    let mock = mock_openstack::start(mock_config(spec, name.clone(), 1, seed))
        .await
        .map_err(|source| TestbedError::Mock {
            name: name.clone(),
            source,
        })?;
    let cfg = agent_config(spec, &name, mock.auth_url(), seeds, seed);
    match agent::start(cfg, transport).await {
        Ok(agent) => Ok((mock, agent)),
        Err(source) => {
            mock.shutdown().await;
            Err(TestbedError::Agent { name, source })
        }
    }
}

/// Name of member `i` (from 0): `cloudlet-1`, … or `standard` / `cells`
/// for the one deployment.
pub fn member_name(kind: Kind, i: u32) -> String {
    match kind {
        Kind::Standard => "standard".to_string(),
        Kind::Cells => "cells".to_string(),
        Kind::Sharded | Kind::P2p => format!("cloudlet-{}", i + 1),
    }
}

/// Region of member `i`: independent regions for the sharded control (a
/// client picks one), `RegionOne` otherwise (P2P agents present one cloud).
pub fn member_region(kind: Kind, i: u32) -> String {
    match kind {
        Kind::Sharded => format!("Region{}", i + 1),
        _ => "RegionOne".to_string(),
    }
}

pub(crate) fn mock_config(
    spec: &TestbedSpec,
    name: String,
    computes: u32,
    seed: u64,
) -> mock_openstack::MockConfig {
    mock_openstack::MockConfig {
        region: member_region(spec.kind, member_index(&name)),
        name,
        listen: "127.0.0.1:0".to_string(),
        computes,
        cells: spec.resolved_cells(),
        compute_vcpus: spec.sizing.node.vcpus,
        compute_ram_mb: spec.sizing.node.ram_mb,
        compute_disk_gb: spec.sizing.node.disk_gb,
        cpu_allocation_ratio: spec.sizing.node.cpu_allocation_ratio,
        ram_allocation_ratio: spec.sizing.node.ram_allocation_ratio,
        disk_allocation_ratio: spec.sizing.node.disk_allocation_ratio,
        quota_instances: i64::from(spec.sizing.quota_instances),
        quota_cores: i64::try_from(spec.sizing.quota_cores).unwrap_or(i64::MAX),
        quota_ram_mb: i64::try_from(spec.sizing.quota_ram_mb).unwrap_or(i64::MAX),
        profile: spec.profile.clone(),
        time_scale: spec.time_scale,
        seed,
        ..Default::default()
    }
}

/// The agent of one cloudlet. Its timers are set in model time with the
/// testbed's time scale (the agent converts them once, like the mock), so
/// what the agent does to its cloudlet (boot polls, capacity reads) and how
/// long it waits follow the model clock in every backend.
pub fn agent_config(
    spec: &TestbedSpec,
    name: &str,
    cloudlet_auth_url: String,
    seed_peers: Vec<String>,
    seed: u64,
) -> agent::AgentConfig {
    agent::AgentConfig {
        name: name.to_string(),
        listen: "127.0.0.1:0".to_string(),
        gossip_listen: "127.0.0.1:0".to_string(),
        cloudlet_auth_url,
        seed_peers,
        cluster_secret: spec.cluster_secret.clone(),
        retries: spec.retries,
        seed: Some(seed),
        time_scale: spec.time_scale,
        // A coordinator polls a boot every 2 model s (Rally's interval).
        boot_poll_ms: secs_to_ms(AGENT_BOOT_POLL_S),
        // Capacity is read every report_interval (10 model s, nova's default).
        capacity_interval_ms: secs_to_ms(AGENT_CAPACITY_INTERVAL_S),
        // On real sockets the interval keeps the view a few seconds old
        // and the overlay's host cost linear in N (see
        // `auto_gossip_interval_ms`).
        gossip_interval_ms: spec.gossip_interval_ms(),
        owner_unreachable_ms: secs_to_ms(AGENT_OWNER_UNREACHABLE_S),
        boot_watch_secs: AGENT_BOOT_WATCH_S as u64,
        request_timeout_ms: secs_to_ms(AGENT_REQUEST_TIMEOUT_S),
        overlay: spec.overlay,
        ..Default::default()
    }
}

/// Index of member `name` (`cloudlet-3` → 2; 0 for a single deployment).
pub(crate) fn member_index(name: &str) -> u32 {
    name.strip_prefix("cloudlet-")
        .and_then(|i| i.parse::<u32>().ok())
        .map_or(0, |i| i.saturating_sub(1))
}

pub const AGENT_BOOT_POLL_S: f64 = 2.0;
pub const AGENT_CAPACITY_INTERVAL_S: f64 = 10.0;
pub const AGENT_BOOT_WATCH_S: f64 = 900.0;
pub const AGENT_OWNER_UNREACHABLE_S: f64 = 30.0;
/// Above the cloudlet API's own 60 s timeout (openstack-2017 profile), so
/// that the cloudlet's 504 reaches the agent rather than its own timeout.
pub const AGENT_REQUEST_TIMEOUT_S: f64 = 120.0;

fn secs_to_ms(s: f64) -> u64 {
    (s * 1000.0).round() as u64
}

impl EmbeddedTestbed {
    /// Starts the testbed and, for P2P, waits until every agent knows every
    /// other (so that the first level does not measure the overlay warming up).
    pub async fn start(spec: TestbedSpec) -> Result<Self, TestbedError> {
        match spec.kind {
            Kind::Standard | Kind::Cells => {
                let name = member_name(spec.kind, 0);
                let cfg = mock_config(&spec, name.clone(), spec.members, spec.seed);
                let mock = mock_openstack::start(cfg)
                    .await
                    .map_err(|source| TestbedError::Mock { name, source })?;
                Ok(Self {
                    spec,
                    mocks: vec![Some(mock)],
                    agents: Vec::new(),
                })
            }
            Kind::Sharded => Self::start_sharded(spec).await,
            Kind::P2p => Self::start_p2p(spec).await,
        }
    }

    /// N cloudlets without agents (the sharded control).
    async fn start_sharded(spec: TestbedSpec) -> Result<Self, TestbedError> {
        let mut mocks = Vec::with_capacity(spec.members as usize);
        for i in 0..spec.members {
            let name = member_name(spec.kind, i);
            let seed = spec.seed.wrapping_add(u64::from(i) * 0x9E37_79B9);
            match mock_openstack::start(mock_config(&spec, name.clone(), 1, seed)).await {
                Ok(m) => mocks.push(Some(m)),
                Err(source) => {
                    for m in mocks.into_iter().flatten() {
                        m.shutdown().await;
                    }
                    return Err(TestbedError::Mock { name, source });
                }
            }
        }
        Ok(Self {
            spec,
            mocks,
            agents: Vec::new(),
        })
    }

    async fn start_p2p(spec: TestbedSpec) -> Result<Self, TestbedError> {
        let transport: os_client::SharedTransport =
            std::sync::Arc::new(os_client::ReqwestTransport::new(Duration::from_secs(30))?);
        // Members start concurrently: each agent's first capacity poll
        // costs its mock model time (token + hypervisor stats), which done
        // one after another made start-up grow by ~0.1 s a member. The
        // first member is the seed everybody else joins through.
        let mut mocks = Vec::with_capacity(spec.members as usize);
        let mut agents: Vec<Option<agent::AgentHandle>> = Vec::with_capacity(spec.members as usize);
        let first = start_member(&spec, 0, Vec::new(), transport.clone()).await?;
        let seeds = vec![first.1.gossip_addr().to_string()];
        mocks.push(Some(first.0));
        agents.push(Some(first.1));
        let mut rest = tokio::task::JoinSet::new();
        let spec_arc = std::sync::Arc::new(spec.clone());
        for i in 1..spec.members {
            let (spec, seeds, transport) = (spec_arc.clone(), seeds.clone(), transport.clone());
            rest.spawn(async move { (i, start_member(&spec, i, seeds, transport).await) });
        }
        let mut started = Vec::with_capacity(spec.members as usize);
        let mut failure = None;
        while let Some(joined) = rest.join_next().await {
            match joined {
                Ok((i, Ok(member))) => started.push((i, member)),
                Ok((_, Err(e))) => failure = failure.or(Some(e)),
                Err(e) => {
                    failure = failure.or(Some(TestbedError::Task(e.to_string())));
                }
            }
        }
        started.sort_by_key(|(i, _)| *i);
        for (_, (mock, agent)) in started {
            mocks.push(Some(mock));
            agents.push(Some(agent));
        }
        let tb = Self {
            spec,
            mocks,
            agents,
        };
        if let Some(e) = failure {
            tb.shutdown().await;
            return Err(e);
        }
        // O(log N) rounds spread a member; allow generously more.
        let limit = Duration::from_secs(30)
            + Duration::from_millis(tb.spec.gossip_interval_wall_ms().saturating_mul(60));
        tb.wait_converged(limit).await?;
        Ok(tb)
    }

    /// Waits until every live agent counts every live member as alive.
    pub async fn wait_converged(&self, limit: Duration) -> Result<(), TestbedError> {
        wait_agents_converged(&self.agents, limit).await
    }

    /// Auth URLs users should talk to: the monolith, or every agent.
    pub fn entries(&self) -> Vec<String> {
        if self.spec.kind.has_agents() {
            self.agents.iter().flatten().map(|a| a.auth_url()).collect()
        } else {
            self.mocks.iter().flatten().map(|m| m.auth_url()).collect()
        }
    }

    /// Stops member `i` at once (its mock and its agent), as a lost cloudlet.
    pub fn kill(&mut self, i: u32) {
        let i = i as usize;
        if let Some(Some(a)) = self.agents.get(i) {
            a.abort();
        }
        if let Some(Some(m)) = self.mocks.get(i) {
            m.abort();
        }
        if let Some(slot) = self.agents.get_mut(i) {
            *slot = None;
        }
        if let Some(slot) = self.mocks.get_mut(i) {
            *slot = None;
        }
    }

    /// Stops member `i`'s agent only (P2P); its cloudlet keeps running.
    pub fn kill_agent(&mut self, i: u32) {
        if let Some(slot) = self.agents.get_mut(i as usize) {
            if let Some(a) = slot.take() {
                a.abort();
            }
        }
    }

    /// Each member's cloudlet (mock) auth URL, `None` once stopped.
    pub fn cloudlet_auth_urls(&self) -> Vec<Option<String>> {
        self.mocks
            .iter()
            .map(|m| m.as_ref().map(|m| m.auth_url()))
            .collect()
    }

    pub fn alive(&self) -> usize {
        if self.spec.kind.has_agents() {
            self.agents.iter().flatten().count()
        } else {
            self.mocks.iter().flatten().count()
        }
    }

    /// Stops everything, agents first so that none forwards to a stopped
    /// mock. Members stop side by side: one after another, hundreds of
    /// agents still gossiping among themselves made teardown take minutes.
    pub async fn shutdown(self) {
        let mut stopping = tokio::task::JoinSet::new();
        for a in self.agents.into_iter().flatten() {
            stopping.spawn(a.shutdown());
        }
        while stopping.join_next().await.is_some() {}
        for m in self.mocks.into_iter().flatten() {
            stopping.spawn(m.shutdown());
        }
        while stopping.join_next().await.is_some() {}
    }
}

/// Waits (on the project clock: virtual on `sim`) until every live agent of
/// `agents` counts every live member as alive (full membership), or holds
/// a partial view at least half full (CYCLON: nobody knows everyone; when
/// c ≥ N−1 shuffles drop duplicates and views settle below N−1, measured
/// 12 of 15 at N = 16).
pub(crate) async fn wait_agents_converged(
    agents: &[Option<agent::AgentHandle>],
    limit: Duration,
) -> Result<(), TestbedError> {
    let n = agents.iter().flatten().count();
    let want = |a: &agent::AgentHandle| match a.partial_view() {
        Some((_, c)) => c.min(n.saturating_sub(1)).div_ceil(2),
        None => n,
    };
    let have = |a: &agent::AgentHandle| match a.partial_view() {
        Some((len, _)) => len,
        None => a.members_alive(),
    };
    let expected = agents.iter().flatten().map(want).max().unwrap_or(n);
    let deadline = cp_model::clock::now() + limit;
    loop {
        let least = agents.iter().flatten().map(have).min().unwrap_or(expected);
        if least >= expected {
            return Ok(());
        }
        if cp_model::clock::now() >= deadline {
            return Err(TestbedError::Convergence(limit, least, expected));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
