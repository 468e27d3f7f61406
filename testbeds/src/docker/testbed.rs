//! A testbed made of containers.

use std::time::Duration;

use testcontainers::bollard::models::{HostConfig, PortBinding};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use super::images::{IMAGE_NAME, IMAGE_TAG};
use crate::embedded::{member_name, TestbedSpec};
use crate::topology::Kind;

/// Port every API listens on inside its container.
const API_PORT: u16 = 8080;
/// Port of the agents' gossip inside their containers.
const GOSSIP_PORT: u16 = 7946;

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("no Docker engine is reachable (is the daemon running?)")]
    NoEngine,
    #[error("cannot start container {name}: {message}")]
    Start { name: String, message: String },
    #[error("the testbed did not become ready: {0}")]
    NotReady(String),
}

struct Member {
    mock: Option<ContainerAsync<GenericImage>>,
    agent: Option<ContainerAsync<GenericImage>>,
    /// Auth URL on the host (127.0.0.1:<published port>).
    auth_url: String,
}

/// A running testbed of containers.
pub struct DockerTestbed {
    pub spec: TestbedSpec,
    pub network: String,
    members: Vec<Member>,
}

/// Publishes the API port on 127.0.0.1 only (a random host port), never on
/// all interfaces; gossip stays inside the private network.
fn loopback_only(hc: &mut HostConfig) {
    hc.publish_all_ports = Some(false);
    let mut bindings = std::collections::HashMap::new();
    bindings.insert(
        format!("{API_PORT}/tcp"),
        Some(vec![PortBinding {
            host_ip: Some("127.0.0.1".to_string()),
            host_port: Some(String::new()),
        }]),
    );
    hc.port_bindings = Some(bindings);
}

fn node_image(
    name: &str,
    network: &str,
    run_id: &str,
) -> testcontainers::ContainerRequest<GenericImage> {
    GenericImage::new(IMAGE_NAME, IMAGE_TAG)
        .with_exposed_port(API_PORT.tcp())
        .with_wait_for(WaitFor::message_on_stdout("listening on"))
        .with_network(network)
        .with_container_name(format!("{run_id}-{name}"))
        .with_hostname(name)
        .with_label("p2pstack.run", run_id)
        .with_startup_timeout(Duration::from_secs(60))
        .with_host_config_modifier(loopback_only)
}

impl DockerTestbed {
    pub async fn start(spec: TestbedSpec) -> Result<Self, DockerError> {
        if !super::docker_available() {
            return Err(DockerError::NoEngine);
        }
        let run_id = format!("p2pstack-{}-{}", std::process::id(), spec.seed);
        let network = format!("{run_id}-net");
        let mut tb = Self {
            spec: spec.clone(),
            network: network.clone(),
            members: Vec::new(),
        };
        let mock_members = match spec.kind {
            Kind::Standard => 1,
            Kind::P2p => spec.members,
        };
        for i in 0..mock_members {
            let name = member_name(spec.kind, i);
            let computes = if spec.kind == Kind::Standard {
                spec.members
            } else {
                1
            };
            let seed = spec.seed.wrapping_add(u64::from(i) * 0x9E37_79B9);
            let os_host = format!("{name}-os");
            let mock_args = vec![
                "/mock-openstack".to_string(),
                "--listen".into(),
                format!("0.0.0.0:{API_PORT}"),
                "--name".into(),
                name.clone(),
                "--computes".into(),
                computes.to_string(),
                "--compute-vcpus".into(),
                spec.sizing.node.vcpus.to_string(),
                "--compute-ram-mb".into(),
                spec.sizing.node.ram_mb.to_string(),
                "--compute-disk-gb".into(),
                spec.sizing.node.disk_gb.to_string(),
                "--quota-instances".into(),
                spec.sizing.quota_instances.to_string(),
                "--profile".into(),
                spec.profile.clone(),
                "--time-scale".into(),
                spec.time_scale.to_string(),
                "--seed".into(),
                seed.to_string(),
            ];
            let mock = node_image(&os_host, &network, &run_id)
                .with_cmd(mock_args)
                .start()
                .await
                .map_err(|e| DockerError::Start {
                    name: os_host.clone(),
                    message: e.to_string(),
                })?;
            let (agent, port) = if spec.kind == Kind::P2p {
                let agent_host = format!("{name}-agent");
                let mut args = vec![
                    "/p2p-agent".to_string(),
                    "--name".into(),
                    name.clone(),
                    "--listen".into(),
                    format!("0.0.0.0:{API_PORT}"),
                    "--advertise-url".into(),
                    format!("http://{agent_host}:{API_PORT}"),
                    "--cloudlet-auth-url".into(),
                    format!("http://{os_host}:{API_PORT}/identity"),
                    "--gossip-listen".into(),
                    format!("0.0.0.0:{GOSSIP_PORT}"),
                    "--gossip-advertise".into(),
                    format!("{agent_host}:{GOSSIP_PORT}"),
                    "--retries".into(),
                    spec.retries.to_string(),
                ];
                // The first three agents are the well-known seeds.
                for s in 0..spec.members.min(3) {
                    if s != i {
                        args.push("--seed-peer".into());
                        args.push(format!("{}-agent:{GOSSIP_PORT}", member_name(spec.kind, s)));
                    }
                }
                let agent = node_image(&agent_host, &network, &run_id)
                    .with_env_var("P2P_CLUSTER_SECRET", spec.cluster_secret.clone())
                    .with_cmd(args)
                    .start()
                    .await
                    .map_err(|e| DockerError::Start {
                        name: agent_host.clone(),
                        message: e.to_string(),
                    })?;
                let port = agent
                    .get_host_port_ipv4(API_PORT.tcp())
                    .await
                    .map_err(|e| DockerError::NotReady(e.to_string()))?;
                (Some(agent), port)
            } else {
                let port = mock
                    .get_host_port_ipv4(API_PORT.tcp())
                    .await
                    .map_err(|e| DockerError::NotReady(e.to_string()))?;
                (None, port)
            };
            tb.members.push(Member {
                mock: Some(mock),
                agent,
                auth_url: format!("http://127.0.0.1:{port}/identity"),
            });
        }
        Ok(tb)
    }

    /// Auth URLs on the host: the monolith, or every live agent.
    pub fn entries(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.mock.is_some())
            .map(|m| m.auth_url.clone())
            .collect()
    }

    /// Kills member `i`'s containers (SIGKILL, no grace), as a lost cloudlet.
    pub async fn kill(&mut self, i: u32) {
        if let Some(m) = self.members.get_mut(i as usize) {
            for c in [m.agent.take(), m.mock.take()].into_iter().flatten() {
                let _ = c.stop_with_timeout(Some(0)).await;
                let _ = c.rm().await;
            }
        }
    }

    /// Removes every container; the network goes with the last one.
    pub async fn shutdown(self) {
        for m in self.members {
            for c in [m.agent, m.mock].into_iter().flatten() {
                let _ = c.rm().await;
            }
        }
    }
}
