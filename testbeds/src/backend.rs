//! One handle over every backend, so the experiment does not care where
//! the testbed runs.

use std::sync::Arc;
use std::time::Duration;

use crate::docker::DockerTestbed;
use crate::embedded::{EmbeddedTestbed, TestbedSpec};
use crate::sim::SimTestbed;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Every mock, agent and the load generator in this process on a
    /// virtual clock, no sockets (deterministic; needs `sim::runtime`).
    Sim,
    /// Every mock and agent in this process on loopback ports, real time.
    Embedded,
    /// Real containers on the local Docker engine.
    Docker,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sim => "sim",
            Backend::Embedded => "embedded",
            Backend::Docker => "docker",
        }
    }

    /// Whether the backend runs on virtual time.
    pub fn is_virtual(self) -> bool {
        self == Backend::Sim
    }
}

pub enum Testbed {
    Sim(SimTestbed),
    Embedded(EmbeddedTestbed),
    Docker(DockerTestbed),
}

impl Testbed {
    pub async fn start(backend: Backend, spec: TestbedSpec) -> anyhow::Result<Self> {
        Ok(match backend {
            Backend::Sim => Testbed::Sim(SimTestbed::start(spec).await?),
            Backend::Embedded => Testbed::Embedded(EmbeddedTestbed::start(spec).await?),
            Backend::Docker => Testbed::Docker(DockerTestbed::start(spec).await?),
        })
    }

    pub fn spec(&self) -> &TestbedSpec {
        match self {
            Testbed::Sim(t) => &t.spec,
            Testbed::Embedded(t) => &t.spec,
            Testbed::Docker(t) => &t.spec,
        }
    }

    pub fn entries(&self) -> Vec<String> {
        match self {
            Testbed::Sim(t) => t.entries(),
            Testbed::Embedded(t) => t.entries(),
            Testbed::Docker(t) => t.entries(),
        }
    }

    /// The HTTP transport a client of this testbed uses: in-process for
    /// `sim`, real sockets otherwise (`timeout` bounds each request).
    pub fn client_transport(
        &self,
        timeout: Duration,
    ) -> Result<os_client::SharedTransport, os_client::TransportError> {
        match self {
            Testbed::Sim(t) => Ok(t.transport()),
            _ => Ok(Arc::new(os_client::ReqwestTransport::new(timeout)?)),
        }
    }

    /// Stops member `i` at once, as a lost cloudlet.
    pub async fn kill(&mut self, i: u32) {
        match self {
            Testbed::Sim(t) => t.kill(i),
            Testbed::Embedded(t) => t.kill(i),
            Testbed::Docker(t) => t.kill(i).await,
        }
    }

    /// Stops member `i`'s agent only (P2P): its cloudlet keeps running.
    pub async fn kill_agent(&mut self, i: u32) -> anyhow::Result<()> {
        match self {
            Testbed::Sim(t) => t.kill_agent(i),
            Testbed::Embedded(t) => t.kill_agent(i),
            Testbed::Docker(_) => {
                anyhow::bail!("the docker backend cannot stop an agent alone yet (agent-loss runs on sim and embedded)")
            }
        }
        Ok(())
    }

    /// Each member's cloudlet auth URL as reachable from this process
    /// (`None` once stopped): the chaos checks ask every cloudlet directly.
    pub fn cloudlet_auth_urls(&self) -> anyhow::Result<Vec<Option<String>>> {
        match self {
            Testbed::Sim(t) => Ok(t.cloudlet_auth_urls()),
            Testbed::Embedded(t) => Ok(t.cloudlet_auth_urls()),
            Testbed::Docker(_) => anyhow::bail!(
                "the docker backend does not expose its cloudlets to the chaos checks yet (they run on sim and embedded)"
            ),
        }
    }

    pub async fn shutdown(self) {
        match self {
            Testbed::Sim(t) => t.shutdown().await,
            Testbed::Embedded(t) => t.shutdown().await,
            Testbed::Docker(t) => t.shutdown().await,
        }
    }
}
