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
    /// Compute nodes (standard) or cloudlets (P2P).
    pub members: u32,
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
}

#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
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
    #[error("the agents did not all see each other within {0:?} ({1} of {2} members alive)")]
    Convergence(Duration, usize, usize),
}

/// A running testbed.
pub struct EmbeddedTestbed {
    pub spec: TestbedSpec,
    mocks: Vec<Option<mock_openstack::MockHandle>>,
    agents: Vec<Option<agent::AgentHandle>>,
}

/// Name of member `i` (from 0): `cloudlet-1`, … or `standard` for the monolith.
pub fn member_name(kind: Kind, i: u32) -> String {
    match kind {
        Kind::Standard => "standard".to_string(),
        Kind::P2p => format!("cloudlet-{}", i + 1),
    }
}

fn mock_config(
    spec: &TestbedSpec,
    name: String,
    computes: u32,
    seed: u64,
) -> mock_openstack::MockConfig {
    mock_openstack::MockConfig {
        name,
        listen: "127.0.0.1:0".to_string(),
        computes,
        compute_vcpus: spec.sizing.node.vcpus,
        compute_ram_mb: spec.sizing.node.ram_mb,
        compute_disk_gb: spec.sizing.node.disk_gb,
        quota_instances: i64::from(spec.sizing.quota_instances),
        quota_cores: i64::try_from(spec.sizing.quota_cores).unwrap_or(i64::MAX),
        quota_ram_mb: i64::try_from(spec.sizing.quota_ram_mb).unwrap_or(i64::MAX),
        profile: spec.profile.clone(),
        time_scale: spec.time_scale,
        seed,
        ..Default::default()
    }
}

/// Model seconds → wall milliseconds at the testbed's time scale, never
/// below `floor_ms` (so a tiny scale cannot turn a timer into a busy loop).
fn model_ms(spec: &TestbedSpec, model_s: f64, floor_ms: u64) -> u64 {
    ((model_s * spec.time_scale * 1000.0).round() as u64).max(floor_ms)
}

/// The agent of one cloudlet. Its timers are set in model seconds and
/// scaled like the mock's, because what the agent does to its cloudlet
/// (boot polls, capacity reads) is load the model accounts for.
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
        // A coordinator polls a boot every 2 model s (Rally's interval).
        boot_poll_ms: model_ms(spec, AGENT_BOOT_POLL_S, 10),
        // Capacity is read every report_interval (10 model s, nova's default).
        capacity_interval_ms: model_ms(spec, AGENT_CAPACITY_INTERVAL_S, 20),
        // Gossip is not modelled; it runs at a fixed wall rate that keeps
        // the view at most a few model seconds old at the usual scales.
        gossip_interval_ms: 100,
        boot_watch_secs: ((AGENT_BOOT_WATCH_S * spec.time_scale).ceil() as u64).max(5),
        ..Default::default()
    }
}

pub const AGENT_BOOT_POLL_S: f64 = 2.0;
pub const AGENT_CAPACITY_INTERVAL_S: f64 = 10.0;
pub const AGENT_BOOT_WATCH_S: f64 = 900.0;

impl EmbeddedTestbed {
    /// Starts the testbed and, for P2P, waits until every agent knows every
    /// other (so that the first level does not measure the overlay warming up).
    pub async fn start(spec: TestbedSpec) -> Result<Self, TestbedError> {
        match spec.kind {
            Kind::Standard => {
                let name = member_name(Kind::Standard, 0);
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
            Kind::P2p => Self::start_p2p(spec).await,
        }
    }

    async fn start_p2p(spec: TestbedSpec) -> Result<Self, TestbedError> {
        let transport: os_client::SharedTransport =
            std::sync::Arc::new(os_client::ReqwestTransport::new(Duration::from_secs(30))?);
        let mut mocks = Vec::with_capacity(spec.members as usize);
        let mut agents: Vec<Option<agent::AgentHandle>> = Vec::with_capacity(spec.members as usize);
        let mut seeds: Vec<String> = Vec::new();
        for i in 0..spec.members {
            let name = member_name(Kind::P2p, i);
            // Each cloudlet draws from its own stream of the run's seed.
            let seed = spec.seed.wrapping_add(u64::from(i) * 0x9E37_79B9);
            let mock = mock_openstack::start(mock_config(&spec, name.clone(), 1, seed))
                .await
                .map_err(|source| TestbedError::Mock {
                    name: name.clone(),
                    source,
                })?;
            let cfg = agent_config(&spec, &name, mock.auth_url(), seeds.clone(), seed);
            let handle = agent::start(cfg, transport.clone())
                .await
                .map_err(|source| TestbedError::Agent { name, source })?;
            // A few well-known seeds are enough for gossip to spread.
            if seeds.len() < 3 {
                seeds.push(handle.gossip_addr().to_string());
            }
            mocks.push(Some(mock));
            agents.push(Some(handle));
        }
        let tb = Self {
            spec,
            mocks,
            agents,
        };
        tb.wait_converged(Duration::from_secs(30)).await?;
        Ok(tb)
    }

    /// Waits until every live agent counts every live member as alive.
    pub async fn wait_converged(&self, limit: Duration) -> Result<(), TestbedError> {
        let expected = self.agents.iter().flatten().count();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let least = self
                .agents
                .iter()
                .flatten()
                .map(|a| a.members_alive())
                .min()
                .unwrap_or(expected);
            if least >= expected {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(TestbedError::Convergence(limit, least, expected));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Auth URLs users should talk to: the monolith, or every agent.
    pub fn entries(&self) -> Vec<String> {
        match self.spec.kind {
            Kind::Standard => self.mocks.iter().flatten().map(|m| m.auth_url()).collect(),
            Kind::P2p => self.agents.iter().flatten().map(|a| a.auth_url()).collect(),
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

    pub fn alive(&self) -> usize {
        match self.spec.kind {
            Kind::Standard => self.mocks.iter().flatten().count(),
            Kind::P2p => self.agents.iter().flatten().count(),
        }
    }

    /// Stops everything, agents first so that none forwards to a stopped mock.
    pub async fn shutdown(self) {
        for a in self.agents.into_iter().flatten() {
            a.shutdown().await;
        }
        for m in self.mocks.into_iter().flatten() {
            m.shutdown().await;
        }
    }
}
