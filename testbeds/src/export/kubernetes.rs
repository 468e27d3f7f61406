//! Kubernetes manifests of one testbed, from `k8s-openapi`'s typed objects
//! (valid by construction for API 1.33 and later), as multi-document YAML
//! for `kubectl apply -f`.
//!
//! - a Secret with the cluster key (P2P; drawn from the OS random source
//!   for each export, see `compare::random_secret`);
//! - a headless Service and a StatefulSet: pod `cloudlet-<k>` (k from 0)
//!   runs the cloudlet's mock and its agent side by side, found by peers as
//!   `cloudlet-<k>.cloudlet`; every agent joins through the first three
//!   pods' DNS names. The standard testbed is a StatefulSet `standard` of
//!   one pod, its mock holding the N compute nodes;
//! - a PersistentVolumeClaim for the results and the load generator as a
//!   suspended Job: unsuspend it once the StatefulSet is ready.
//!
//! One pod template serves every cloudlet, so per-pod values come from the
//! downward API: the member name is the pod's name and the RNG seed is the
//! pod's ordinal (`apps.kubernetes.io/pod-index`), not the Docker and
//! embedded backends' `seed + i·0x9E3779B9` (a pod cannot compute it).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, Secret,
    SecretKeySelector, Service, ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use super::{
    agent_request_mib, loadgen_args, mock_request_mib, validate, Export, ExportError, RESULTS_DIR,
};
use crate::docker::testbed::{agent_args_at, mock_args, seed_members, API_PORT, GOSSIP_PORT};
use crate::topology::Kind;

/// The mock's port inside a P2P pod (the agent has API_PORT).
pub const MOCK_PORT_IN_POD: u16 = 8081;
/// Name of the Secret and its key.
pub const SECRET_NAME: &str = "p2pstack-cluster-secret";
pub const SECRET_KEY: &str = "cluster-secret";
/// The load generator's Job and its results claim.
pub const LOADGEN: &str = "loadgen";
pub const RESULTS_CLAIM: &str = "loadgen-results";
/// UID of `nobody`, as in the image (`USER 65534:65534`).
const NOBODY: i64 = 65534;

/// The StatefulSet's (and headless Service's) name for `kind`.
pub fn set_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Standard | Kind::Cells => "standard",
        Kind::Sharded | Kind::P2p => "cloudlet",
    }
}

/// DNS name of pod `k` (from 0) inside the namespace.
pub fn pod_host(kind: Kind, k: u32) -> String {
    let set = set_name(kind);
    format!("{set}-{k}.{set}")
}

/// Every object of the export, in the order `kubectl apply` should see them.
#[derive(Debug, Clone)]
pub struct Manifests {
    pub secret: Option<Secret>,
    pub service: Service,
    pub stateful_set: StatefulSet,
    pub claim: PersistentVolumeClaim,
    pub job: Job,
}

fn labels(component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "p2pstack".to_string()),
        (
            "app.kubernetes.io/component".to_string(),
            component.to_string(),
        ),
    ])
}

fn meta(name: &str, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        labels: Some(labels(component)),
        ..Default::default()
    }
}

fn memory(mib: u64) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([(
            "memory".to_string(),
            Quantity(format!("{mib}Mi")),
        )])),
        ..Default::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn plain_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        ..Default::default()
    }
}

/// Replaces the value after `flag` in `args`.
fn set_flag(args: &mut [String], flag: &str, value: &str) {
    if let Some(i) = args.iter().position(|a| a == flag) {
        if let Some(v) = args.get_mut(i + 1) {
            *v = value.to_string();
        }
    }
}

fn container(name: &str, image: &str, args: Vec<String>, port: u16, mib: u64) -> Container {
    let (command, rest) = match args.split_first() {
        Some((c, rest)) => (vec![c.clone()], rest.to_vec()),
        None => (Vec::new(), Vec::new()),
    };
    Container {
        name: name.to_string(),
        image: Some(image.to_string()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(command),
        args: Some(rest),
        ports: Some(vec![ContainerPort {
            container_port: i32::from(port),
            name: Some(format!("{name}-api")),
            ..Default::default()
        }]),
        env: Some(vec![plain_env("RUST_LOG", "warn")]),
        resources: Some(memory(mib)),
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(i32::from(port)),
                ..Default::default()
            }),
            period_seconds: Some(2),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod_containers(e: &Export) -> Vec<Container> {
    let spec = &e.spec;
    match spec.kind {
        Kind::Standard | Kind::Cells | Kind::Sharded => vec![container(
            "os",
            &e.image,
            mock_args(spec, "standard", spec.members, spec.seed),
            API_PORT,
            mock_request_mib(),
        )],
        Kind::P2p => {
            let mut mock = mock_args(spec, "$(POD_NAME)", 1, 0);
            set_flag(
                &mut mock,
                "--listen",
                &format!("0.0.0.0:{MOCK_PORT_IN_POD}"),
            );
            set_flag(&mut mock, "--seed", "$(POD_INDEX)");
            let mut os = container("os", &e.image, mock, MOCK_PORT_IN_POD, mock_request_mib());
            let seeds: Vec<String> = seed_members(spec).map(|k| pod_host(spec.kind, k)).collect();
            let agent_args = agent_args_at(
                spec,
                "$(POD_NAME)",
                &format!("$(POD_NAME).{}", set_name(spec.kind)),
                &format!("http://127.0.0.1:{MOCK_PORT_IN_POD}/identity"),
                &seeds,
                Some("$(POD_INDEX)".into()),
            );
            let mut agent = container(
                "agent",
                &e.image,
                agent_args,
                API_PORT,
                agent_request_mib(spec.members),
            );
            let downward = [
                field_env("POD_NAME", "metadata.name"),
                field_env(
                    "POD_INDEX",
                    "metadata.labels['apps.kubernetes.io/pod-index']",
                ),
            ];
            for c in [&mut os, &mut agent] {
                // $(VAR) in args expands only variables defined before use.
                let mut env = downward.to_vec();
                env.extend(c.env.take().unwrap_or_default());
                c.env = Some(env);
            }
            if let Some(env) = agent.env.as_mut() {
                env.push(EnvVar {
                    name: "P2P_CLUSTER_SECRET".into(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: SECRET_NAME.into(),
                            key: SECRET_KEY.into(),
                            optional: Some(false),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
            }
            if let Some(ports) = agent.ports.as_mut() {
                ports.push(ContainerPort {
                    container_port: i32::from(GOSSIP_PORT),
                    name: Some("gossip".into()),
                    protocol: Some("UDP".into()),
                    ..Default::default()
                });
            }
            agent.readiness_probe = Some(Probe {
                http_get: Some(HTTPGetAction {
                    path: Some("/metrics".into()),
                    port: IntOrString::Int(i32::from(API_PORT)),
                    ..Default::default()
                }),
                period_seconds: Some(2),
                ..Default::default()
            });
            vec![os, agent]
        }
    }
}

/// The export as typed objects.
pub fn manifests(e: &Export) -> Result<Manifests, ExportError> {
    validate(e)?;
    let spec = &e.spec;
    if matches!(spec.kind, Kind::Cells | Kind::Sharded) {
        return Err(ExportError::Unsupported(format!(
            "the Kubernetes export has standard and p2p only, not {}; use the swarm export",
            spec.kind.label()
        )));
    }
    let set = set_name(spec.kind);
    let pods = spec.kind.deployments(spec.members).0;
    let secret = (spec.kind == Kind::P2p).then(|| Secret {
        metadata: meta(SECRET_NAME, "cluster-secret"),
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([(
            SECRET_KEY.to_string(),
            spec.cluster_secret.clone(),
        )])),
        ..Default::default()
    });
    let service = Service {
        metadata: meta(set, set),
        spec: Some(ServiceSpec {
            // Headless: one DNS record per pod, `<pod>.<set>`.
            cluster_ip: Some("None".into()),
            // Peers must find a seed before it counts as ready.
            publish_not_ready_addresses: Some(true),
            selector: Some(labels(set)),
            ports: Some(vec![ServicePort {
                name: Some("api".into()),
                port: i32::from(API_PORT),
                target_port: Some(IntOrString::Int(i32::from(API_PORT))),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let stateful_set = StatefulSet {
        metadata: meta(set, set),
        spec: Some(StatefulSetSpec {
            service_name: Some(set.to_string()),
            replicas: Some(i32::try_from(pods).unwrap_or(i32::MAX)),
            // All pods at once, as the other backends start their members.
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(labels(set)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(set)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: pod_containers(e),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(NOBODY),
                        run_as_group: Some(NOBODY),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    let claim = PersistentVolumeClaim {
        metadata: meta(RESULTS_CLAIM, LOADGEN),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity("1Gi".into()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let entries: Vec<String> = (0..pods)
        .map(|k| super::auth_url(&pod_host(spec.kind, k)))
        .collect();
    let mut lg = container(
        LOADGEN,
        &e.image,
        loadgen_args(e, &entries),
        API_PORT,
        super::MEASURED_CONTAINER_MIB,
    );
    lg.ports = None;
    lg.readiness_probe = None;
    lg.volume_mounts = Some(vec![VolumeMount {
        name: "results".into(),
        mount_path: RESULTS_DIR.into(),
        ..Default::default()
    }]);
    let job = Job {
        metadata: meta(LOADGEN, LOADGEN),
        spec: Some(JobSpec {
            // Started by hand once the StatefulSet is ready.
            suspend: Some(true),
            // One run: a failed level is a result, not something to retry.
            backoff_limit: Some(0),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(LOADGEN)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![lg],
                    restart_policy: Some("Never".into()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(NOBODY),
                        run_as_group: Some(NOBODY),
                        // The claim is writable by the pod's group.
                        fs_group: Some(NOBODY),
                        ..Default::default()
                    }),
                    volumes: Some(vec![Volume {
                        name: "results".into(),
                        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                            claim_name: RESULTS_CLAIM.into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(Manifests {
        secret,
        service,
        stateful_set,
        claim,
        job,
    })
}

fn doc<T: Serialize>(out: &mut String, o: &T) -> Result<(), ExportError> {
    out.push_str("---\n");
    out.push_str(&serde_yaml::to_string(o)?);
    Ok(())
}

/// The export as multi-document YAML.
pub fn render(e: &Export) -> Result<String, ExportError> {
    let m = manifests(e)?;
    let mut out = format!(
        "# p2pstack {} testbed, {} members: kubectl apply -f FILE, then\n\
         # kubectl rollout status statefulset/{} and\n\
         # kubectl patch job/{LOADGEN} -p '{{\"spec\":{{\"suspend\":false}}}}'\n\
         # (see docs/testbeds.md, \"Beyond one machine\")\n",
        e.spec.kind.label(),
        e.spec.members,
        set_name(e.spec.kind),
    );
    if let Some(s) = &m.secret {
        doc(&mut out, s)?;
    }
    doc(&mut out, &m.service)?;
    doc(&mut out, &m.stateful_set)?;
    doc(&mut out, &m.claim)?;
    doc(&mut out, &m.job)?;
    Ok(out)
}
