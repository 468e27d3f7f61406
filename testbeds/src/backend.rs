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

    pub async fn shutdown(self) {
        match self {
            Testbed::Sim(t) => t.shutdown().await,
            Testbed::Embedded(t) => t.shutdown().await,
            Testbed::Docker(t) => t.shutdown().await,
        }
    }
}
