//! `testbed export`: the testbed the Docker backend starts, written out for
//! an engine that spans many machines: a Docker Swarm stack ([`swarm`]) or
//! Kubernetes manifests ([`kubernetes`]).
//!
//! Both are built from the same [`TestbedSpec`] and the same command lines
//! as the Docker backend (`docker::testbed::{mock_args, agent_args_at}`):
//! sizing, timers and seeds are not written a second time here. See
//! docs/testbeds.md, "Beyond one machine".

pub mod kubernetes;
pub mod swarm;

use crate::docker::images::{IMAGE_NAME, IMAGE_TAG};
use crate::docker::testbed::API_PORT;
use crate::embedded::{member_name, TestbedSpec};
use crate::topology::Kind;

/// Which engine to write for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A Compose v3.8 file for `docker stack deploy -c FILE NAME`.
    Swarm,
    /// Multi-document YAML for `kubectl apply -f FILE`.
    Kubernetes,
}

/// What to export.
#[derive(Debug, Clone)]
pub struct Export {
    /// The testbed, exactly as the embedded and Docker backends take it.
    pub spec: TestbedSpec,
    /// Concurrency levels the load generator runs (one burst each).
    pub levels: Vec<u32>,
    /// The image every container runs (`testbed images` builds it).
    pub image: String,
}

impl Export {
    pub fn new(spec: TestbedSpec, levels: Vec<u32>) -> Self {
        Self {
            spec,
            levels,
            image: format!("{IMAGE_NAME}:{IMAGE_TAG}"),
        }
    }

    /// Renders the export as YAML text.
    pub fn render(&self, format: Format) -> Result<String, ExportError> {
        match format {
            Format::Swarm => swarm::render(self),
            Format::Kubernetes => kubernetes::render(self),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("a testbed needs at least one compute node or cloudlet")]
    Empty,
    #[error("at least one load level is needed")]
    NoLevels,
    #[error("{0}")]
    Unsupported(String),
    #[error("cannot write YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

pub(crate) fn validate(e: &Export) -> Result<(), ExportError> {
    if e.spec.members == 0 {
        return Err(ExportError::Empty);
    }
    if e.levels.is_empty() {
        return Err(ExportError::NoLevels);
    }
    Ok(())
}

/// Where the load generator writes its results inside its container.
pub const RESULTS_DIR: &str = "/results";

/// The results file of a run of `kind`.
pub fn results_file(kind: Kind) -> String {
    format!("{RESULTS_DIR}/{}.json", kind.label())
}

/// Memory one mock or agent container used, averaged over the 48 P2P
/// containers of the 24-cloudlet Docker run under its 2,048-boot level
/// (582 MiB / 48; docs/benchmarks.md, "Docker backend": "a P2P container
/// averages ~12 MiB").
pub const MEASURED_CONTAINER_MIB: u64 = 12;
/// What each agent adds per peer it knows: ~4.8 KiB per (agent, peer) pair
/// (docs/benchmarks.md, the fit under "Largest N ready within 30 s").
pub const MEASURED_PEER_VIEW_BYTES: u64 = 4_915;

/// Memory request of one mock container, MiB.
pub fn mock_request_mib() -> u64 {
    MEASURED_CONTAINER_MIB
}

/// Memory request of one agent among `members`, MiB: the measured
/// container plus its full membership view.
pub fn agent_request_mib(members: u32) -> u64 {
    let view = MEASURED_PEER_VIEW_BYTES.saturating_mul(u64::from(members));
    MEASURED_CONTAINER_MIB + view.div_ceil(1024 * 1024)
}

/// The load generator's command line: one boot burst per level against
/// the testbed's entry points (the monolith, or every agent), with the
/// mock's DevStack `admin` account (the mock's own user, not the cluster
/// secret), results to [`results_file`].
pub fn loadgen_args(e: &Export, entries: &[String]) -> Vec<String> {
    let levels: Vec<String> = e.levels.iter().map(u32::to_string).collect();
    let mut args = vec![
        "/loadgen".to_string(),
        "boot-burst".into(),
        "--levels".into(),
        levels.join(","),
        "--auth-url".into(),
        entries.first().cloned().unwrap_or_default(),
        "--username".into(),
        "admin".into(),
        "--password".into(),
        "secret".into(),
        "--project-name".into(),
        "admin".into(),
        "--user-domain-name".into(),
        "Default".into(),
        "--project-domain-name".into(),
        "Default".into(),
        "--time-scale".into(),
        e.spec.time_scale.to_string(),
        "--seed".into(),
        e.spec.seed.to_string(),
        "--label".into(),
        e.spec.kind.label().into(),
        "--out".into(),
        results_file(e.spec.kind),
        "--quiet".into(),
    ];
    for entry in entries {
        args.push("--entry".into());
        args.push(entry.clone());
    }
    args
}

/// `http://<host>:API_PORT/identity`.
pub(crate) fn auth_url(host: &str) -> String {
    format!("http://{host}:{API_PORT}/identity")
}

/// Service / host name of member `i`'s mock (`-os`) or agent (`-agent`)
/// on an engine with one service per container.
pub(crate) fn service_name(kind: Kind, i: u32, role: &str) -> String {
    format!("{}-{role}", member_name(kind, i))
}
