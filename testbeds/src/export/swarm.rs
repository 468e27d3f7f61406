//! A Docker Swarm stack (Compose file format 3.8, what `docker stack
//! deploy -c` reads) of one testbed.
//!
//! One service per mock and per agent, with the Docker backend's names
//! (`cloudlet-1-os`, `cloudlet-1-agent`, …, or `standard-os`): every
//! agent's command line differs (its name, seed peers, RNG seed), which one
//! replicated service cannot express, and stable names are what the agents
//! gossip to. Services resolve each other by name on the stack's overlay
//! network (`endpoint_mode: dnsrr`: the name is the task's own address, as
//! a container name is on the Docker backend). The cluster secret is an
//! external Docker secret ([`CLUSTER_SECRET_NAME`]) that the user (or
//! `testbed run --engine swarm`, see [`crate::swarm`]) creates from a random
//! source before deploying; the file
//! never holds it. The load generator is a one-shot service (restart
//! condition `none`) deployed with 0 replicas and scaled to 1 once the
//! cloudlets are up; it writes its results to the `results` volume.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    agent_request_mib, auth_url, loadgen_args, mock_request_mib, service_name, validate, Export,
    ExportError, RESULTS_DIR,
};
use crate::docker::testbed::{agent_args_at, member_seed, mock_args, seed_members};
use crate::embedded::member_name;
use crate::topology::Kind;

/// The overlay network of the stack.
pub const NETWORK: &str = "p2pstack";
/// The volume the load generator writes its results to.
pub const RESULTS_VOLUME: &str = "results";
/// The load generator's service.
pub const LOADGEN: &str = "loadgen";
/// Key of the cluster secret in the file.
pub const SECRET_KEY: &str = "p2p_cluster_secret";
/// Name of the external Docker secret holding the cluster secret.
pub const CLUSTER_SECRET_NAME: &str = "p2pstack-cluster-secret";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stack {
    pub version: String,
    pub services: BTreeMap<String, Service>,
    pub networks: BTreeMap<String, Network>,
    #[serde(default)]
    pub volumes: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    pub secrets: BTreeMap<String, Secret>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub image: String,
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    pub networks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    pub deploy: Deploy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deploy {
    pub mode: String,
    pub replicas: u32,
    pub endpoint_mode: String,
    pub restart_policy: RestartPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartPolicy {
    pub condition: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    pub reservations: Reservation,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub memory: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub driver: String,
    pub attachable: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    pub external: bool,
    pub name: String,
}

/// Label on every service: which member it belongs to.
pub const MEMBER_LABEL: &str = "p2pstack.member";

fn node_service(e: &Export, command: Vec<String>, member: String, memory_mib: u64) -> Service {
    Service {
        image: e.image.clone(),
        command,
        user: None,
        environment: BTreeMap::from([("RUST_LOG".to_string(), "warn".to_string())]),
        networks: vec![NETWORK.to_string()],
        secrets: Vec::new(),
        volumes: Vec::new(),
        deploy: Deploy {
            mode: "replicated".into(),
            replicas: 1,
            endpoint_mode: "dnsrr".into(),
            // A member that crashes while starting (e.g. a peer's name not
            // yet in DNS) gets a few more tries; the run's report shows
            // what a restart during a level cost.
            restart_policy: RestartPolicy {
                condition: "on-failure".into(),
                max_attempts: Some(3),
            },
            resources: Some(Resources {
                reservations: Reservation {
                    memory: format!("{memory_mib}M"),
                },
            }),
            labels: BTreeMap::from([(MEMBER_LABEL.to_string(), member)]),
        },
    }
}

/// The stack as typed data.
pub fn stack(e: &Export) -> Result<Stack, ExportError> {
    validate(e)?;
    let spec = &e.spec;
    let mut services = BTreeMap::new();
    let (mocks, computes) = spec.kind.deployments(spec.members);
    for i in 0..mocks {
        let name = member_name(spec.kind, i);
        services.insert(
            service_name(spec.kind, i, "os"),
            node_service(
                e,
                mock_args(spec, &name, computes, member_seed(spec, i)),
                name,
                mock_request_mib(),
            ),
        );
    }
    let role = if spec.kind.has_agents() {
        "agent"
    } else {
        "os"
    };
    let entries: Vec<String> = (0..mocks)
        .map(|i| auth_url(&service_name(spec.kind, i, role)))
        .collect();
    let mut secrets = BTreeMap::new();
    if spec.kind == Kind::P2p {
        for i in 0..spec.members {
            let name = member_name(spec.kind, i);
            let seeds: Vec<String> = seed_members(spec)
                .filter(|&s| s != i)
                .map(|s| service_name(spec.kind, s, "agent"))
                .collect();
            let args = agent_args_at(
                spec,
                &name,
                &service_name(spec.kind, i, "agent"),
                &auth_url(&service_name(spec.kind, i, "os")),
                &seeds,
                Some(member_seed(spec, i).to_string()),
            );
            let mut svc = node_service(e, args, name, agent_request_mib(spec.members));
            svc.secrets.push(SECRET_KEY.to_string());
            svc.environment.insert(
                "P2P_CLUSTER_SECRET_FILE".into(),
                format!("/run/secrets/{SECRET_KEY}"),
            );
            services.insert(service_name(spec.kind, i, "agent"), svc);
        }
        secrets.insert(
            SECRET_KEY.to_string(),
            Secret {
                external: true,
                name: CLUSTER_SECRET_NAME.to_string(),
            },
        );
    }
    let mut lg = node_service(
        e,
        loadgen_args(e, &entries),
        LOADGEN.to_string(),
        super::MEASURED_CONTAINER_MIB,
    );
    // A fresh named volume is root's; the load generator holds no secret
    // and listens on nothing.
    lg.user = Some("0:0".into());
    lg.volumes.push(format!("{RESULTS_VOLUME}:{RESULTS_DIR}"));
    lg.deploy.replicas = 0;
    lg.deploy.resources = None;
    lg.deploy.restart_policy = RestartPolicy {
        condition: "none".into(),
        max_attempts: None,
    };
    services.insert(LOADGEN.to_string(), lg);
    Ok(Stack {
        version: "3.8".into(),
        services,
        networks: BTreeMap::from([(
            NETWORK.to_string(),
            Network {
                driver: "overlay".into(),
                attachable: true,
            },
        )]),
        volumes: BTreeMap::from([(RESULTS_VOLUME.to_string(), BTreeMap::new())]),
        secrets,
    })
}

/// The stack as a Compose file.
pub fn render(e: &Export) -> Result<String, ExportError> {
    let s = stack(e)?;
    Ok(format!(
        "# p2pstack {} testbed, {} members: docker stack deploy -c FILE p2pstack\n\
         # (see docs/testbeds.md, \"Beyond one machine\")\n{}",
        e.spec.kind.label(),
        e.spec.members,
        serde_yaml::to_string(&s)?
    ))
}
