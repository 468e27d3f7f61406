//! The `sim` backend: every mock OpenStack, every agent and the load
//! generator in this process on a **virtual clock**, with no socket.
//!
//! It runs the same mock, agent and loadgen code as the embedded backend;
//! what changes is underneath:
//!
//! - HTTP goes through one [`os_client::InProcessTransport`] that routes by
//!   URI authority (`cloudlet-3-mock`, `cloudlet-3-agent`, `standard-mock`)
//!   to each member's axum router;
//! - gossip goes through [`agent::gossip_sim::SimGossipNet`], which delivers
//!   every chitchat message after [`GOSSIP_ONE_WAY_DELAY`];
//! - time is tokio's paused clock on a current-thread runtime
//!   ([`runtime`]): it advances only when every task waits, straight to the
//!   next timer, so a level lasting 600 model seconds takes as long as the
//!   work in it, and the host's speed never shapes a result;
//! - randomness comes from generators seeded from the run's seed (mocks,
//!   agents' placement and gossip, loadgen), so the same command with the
//!   same seed writes the same results.
//!
//! Work that costs a real server time is given a model cost: the mock's
//! control plane is the cp-model (as in every backend), and each agent
//! serves requests with [`AGENT_SERVICE_TIME_US`] per request on
//! [`AGENT_SERVICE_WORKERS`] workers (see `agent::service_time`).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::embedded::{agent_config, member_name, mock_config, TestbedError, TestbedSpec};
use crate::topology::Kind;

/// What one request costs an agent, model microseconds: the agent's own
/// benchmark (`cargo bench -p agent --bench agent_overhead`, docs/benchmarks.md
/// "agent") measured 0.122 ms p50 added to a proxied `GET /servers/{id}`
/// (token check, directory lookup, one more hop, JSON rewrite).
pub const AGENT_SERVICE_TIME_US: u64 = 122;

/// Requests an agent serves at once: one core's worth (the benchmark's
/// figure is a single request's latency, so more workers would be a guess
/// in the agent's favour).
pub const AGENT_SERVICE_WORKERS: u32 = 1;

/// One-way delay of every gossip message (a LAN round trip is ~0.5 ms).
pub const GOSSIP_ONE_WAY_DELAY: Duration = Duration::from_micros(250);

/// Gossip interval in model ms: what the embedded backend runs at its
/// default time scale (0.25): 100 wall ms up to 64 members, then in
/// proportion to N, i.e. 400 model ms and up.
pub fn gossip_interval_model_ms(members: u32) -> u64 {
    4 * crate::embedded::auto_gossip_interval_ms(members)
}

/// The runtime every sim run needs: one thread, clock paused (auto-advance),
/// and the project clock's date restarted on it.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    rt.block_on(async { cp_model::clock::restart_utc() });
    Ok(rt)
}

fn mock_authority(kind: Kind, i: u32) -> String {
    format!("{}-mock", member_name(kind, i))
}

fn agent_authority(i: u32) -> String {
    format!("{}-agent", member_name(Kind::P2p, i))
}

/// Gossip address of member `i` on the simulated network: 10.0.0.0/8.
fn gossip_addr(i: u32) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::from(0x0A00_0001u32 + i).into(), 7946)
}

/// A running virtual-time testbed.
pub struct SimTestbed {
    pub spec: TestbedSpec,
    transport: os_client::InProcessTransport,
    net: agent::gossip_sim::SimGossipNet,
    /// Authorities of the live mocks.
    mocks: Vec<Option<String>>,
    agents: Vec<Option<agent::AgentHandle>>,
}

impl SimTestbed {
    pub async fn start(spec: TestbedSpec) -> Result<Self, TestbedError> {
        let transport = os_client::InProcessTransport::new();
        // No byte count: learning a message's encoded length means encoding
        // (and zstd-compressing) it, and no result reads it.
        let net = agent::gossip_sim::SimGossipNet::new(GOSSIP_ONE_WAY_DELAY).without_byte_count();
        let mut tb = Self {
            spec,
            transport,
            net,
            mocks: Vec::new(),
            agents: Vec::new(),
        };
        match tb.spec.kind {
            Kind::Standard | Kind::Cells => {
                let a = tb.start_mock(0, tb.spec.members, tb.spec.seed)?;
                tb.mocks.push(Some(a));
            }
            // The sharded control: the cloudlets alone, no agent.
            Kind::Sharded => {
                for i in 0..tb.spec.members {
                    let a = tb.start_mock(i, 1, member_seed(tb.spec.seed, i))?;
                    tb.mocks.push(Some(a));
                }
            }
            Kind::P2p => tb.start_p2p().await?,
        }
        Ok(tb)
    }

    fn start_mock(&self, i: u32, computes: u32, seed: u64) -> Result<String, TestbedError> {
        let kind = self.spec.kind;
        let name = member_name(kind, i);
        let cfg = mock_config(&self.spec, name.clone(), computes, seed);
        let router = mock_openstack::router(cfg).map_err(|source| TestbedError::Mock {
            name: name.clone(),
            source,
        })?;
        let authority = mock_authority(kind, i);
        self.transport.insert(authority.clone(), router);
        Ok(authority)
    }

    async fn start_agent(&self, i: u32, seed: u64) -> Result<agent::AgentHandle, TestbedError> {
        let name = member_name(Kind::P2p, i);
        let seeds = if i == 0 {
            Vec::new()
        } else {
            vec![gossip_addr(0).to_string()]
        };
        let auth = format!("http://{}/identity", mock_authority(Kind::P2p, i));
        let mut cfg = agent_config(&self.spec, &name, auth, seeds, seed);
        cfg.gossip_listen = gossip_addr(i).to_string();
        cfg.gossip_interval_ms = self.spec.gossip_interval_ms.unwrap_or_else(|| {
            gossip_interval_model_ms(crate::embedded::interval_members(
                self.spec.members,
                self.spec.overlay,
            ))
        });
        cfg.service_time_us = AGENT_SERVICE_TIME_US;
        cfg.service_workers = AGENT_SERVICE_WORKERS;
        let authority = agent_authority(i);
        let transport: os_client::SharedTransport = Arc::new(self.transport.clone());
        let handle =
            agent::start_in_process(cfg, transport, &self.net, &format!("http://{authority}"))
                .await
                .map_err(|source| TestbedError::Agent { name, source })?;
        self.transport.insert(authority, handle.router());
        Ok(handle)
    }

    async fn start_p2p(&mut self) -> Result<(), TestbedError> {
        let n = self.spec.members;
        // Every mock first (they only spawn their engine), then the seed
        // agent, then all the others side by side, as the embedded backend
        // does: each agent's first capacity poll costs its mock model time,
        // so one after another the start lasted N polls of model time while
        // the agents already up gossiped: overlay work grew as N².
        for i in 0..n {
            let seed = member_seed(self.spec.seed, i);
            let a = self.start_mock(i, 1, seed)?;
            self.mocks.push(Some(a));
        }
        let mut started = Vec::with_capacity(n as usize);
        if n > 0 {
            started.push(self.start_agent(0, member_seed(self.spec.seed, 0)).await);
            // join_all keeps the members' order and polls them in a fixed
            // order, so the start stays deterministic.
            let rest = (1..n).map(|i| self.start_agent(i, member_seed(self.spec.seed, i)));
            started.extend(futures::future::join_all(rest).await);
        }
        let mut failure = None;
        for h in started {
            match h {
                Ok(h) => self.agents.push(Some(h)),
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        if let Some(e) = failure {
            self.shutdown_members();
            return Err(e);
        }
        // O(log N) gossip rounds spread a member; allow generously more.
        let interval = self.spec.gossip_interval_ms.unwrap_or_else(|| {
            gossip_interval_model_ms(crate::embedded::interval_members(n, self.spec.overlay))
        });
        let limit = Duration::from_secs(30) + Duration::from_millis(interval.saturating_mul(60));
        if let Err(e) = self.wait_converged(limit).await {
            self.shutdown_members();
            return Err(e);
        }
        Ok(())
    }

    /// Waits (virtual time) until every live agent counts every live member.
    pub async fn wait_converged(&self, limit: Duration) -> Result<(), TestbedError> {
        crate::embedded::wait_agents_converged(&self.agents, limit).await
    }

    /// Auth URLs users should talk to: the one deployment, every cloudlet
    /// (sharded) or every agent (P2P).
    pub fn entries(&self) -> Vec<String> {
        if self.spec.kind.has_agents() {
            self.agents.iter().flatten().map(|a| a.auth_url()).collect()
        } else {
            self.mocks
                .iter()
                .flatten()
                .map(|a| format!("http://{a}/identity"))
                .collect()
        }
    }

    /// The in-process transport every client of this testbed must use.
    pub fn transport(&self) -> os_client::SharedTransport {
        Arc::new(self.transport.clone())
    }

    /// Stops member `i` at once (its mock, its agent and its gossip), as a
    /// lost cloudlet: calls to it fail as refused connections.
    pub fn kill(&mut self, i: u32) {
        let idx = i as usize;
        self.kill_agent(i);
        if let Some(slot) = self.mocks.get_mut(idx) {
            if let Some(a) = slot.take() {
                self.transport.remove(&a);
            }
        }
    }

    /// Stops member `i`'s agent and its gossip only; its cloudlet keeps
    /// running and stays reachable (by the other agents, directly).
    pub fn kill_agent(&mut self, i: u32) {
        if let Some(slot) = self.agents.get_mut(i as usize) {
            if let Some(a) = slot.take() {
                self.transport.remove(&agent_authority(i));
                self.net.close(gossip_addr(i));
                a.abort();
            }
        }
    }

    /// Each member's cloudlet (mock) auth URL, `None` once stopped.
    pub fn cloudlet_auth_urls(&self) -> Vec<Option<String>> {
        self.mocks
            .iter()
            .map(|m| m.as_ref().map(|a| format!("http://{a}/identity")))
            .collect()
    }

    fn shutdown_members(&mut self) {
        for (i, a) in self.agents.iter_mut().enumerate() {
            if let Some(a) = a.take() {
                self.transport.remove(&agent_authority(i as u32));
                a.abort();
            }
        }
        for m in self.mocks.iter_mut() {
            if let Some(a) = m.take() {
                self.transport.remove(&a);
            }
        }
    }

    /// Stops everything (agents first). Dropping the routers ends each
    /// mock's engine task.
    pub async fn shutdown(mut self) {
        self.shutdown_members();
        tokio::task::yield_now().await;
    }

    /// Messages the simulated gossip network carried (and lost); bytes are
    /// not counted on a testbed (0).
    pub fn gossip_stats(&self) -> agent::gossip_sim::SimNetStats {
        self.net.stats()
    }
}

/// Each member draws from its own stream of the run's seed (as in the
/// embedded backend).
pub fn member_seed(seed: u64, i: u32) -> u64 {
    seed.wrapping_add(u64::from(i) * 0x9E37_79B9)
}
