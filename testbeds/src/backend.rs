//! One handle over both backends, so the experiment does not care where
//! the testbed runs.

use crate::docker::DockerTestbed;
use crate::embedded::{EmbeddedTestbed, TestbedSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Every mock and agent in this process on loopback ports.
    Embedded,
    /// Real containers on the local Docker engine.
    Docker,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Docker => "docker",
        }
    }
}

pub enum Testbed {
    Embedded(EmbeddedTestbed),
    Docker(DockerTestbed),
}

impl Testbed {
    pub async fn start(backend: Backend, spec: TestbedSpec) -> anyhow::Result<Self> {
        Ok(match backend {
            Backend::Embedded => Testbed::Embedded(EmbeddedTestbed::start(spec).await?),
            Backend::Docker => Testbed::Docker(DockerTestbed::start(spec).await?),
        })
    }

    pub fn spec(&self) -> &TestbedSpec {
        match self {
            Testbed::Embedded(t) => &t.spec,
            Testbed::Docker(t) => &t.spec,
        }
    }

    pub fn entries(&self) -> Vec<String> {
        match self {
            Testbed::Embedded(t) => t.entries(),
            Testbed::Docker(t) => t.entries(),
        }
    }

    /// Stops member `i` at once, as a lost cloudlet.
    pub async fn kill(&mut self, i: u32) {
        match self {
            Testbed::Embedded(t) => t.kill(i),
            Testbed::Docker(t) => t.kill(i).await,
        }
    }

    pub async fn shutdown(self) {
        match self {
            Testbed::Embedded(t) => t.shutdown().await,
            Testbed::Docker(t) => t.shutdown().await,
        }
    }
}
