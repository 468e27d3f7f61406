//! `testbed export` round-trips: what is written parses back (as YAML and
//! as the typed objects), with the expected kinds, counts, names and
//! environment, and no default or literal cluster secret where it should
//! not be.

use std::collections::BTreeSet;
use std::process::Command;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, Service};
use serde::Deserialize;
use testbeds::embedded::TestbedSpec;
use testbeds::export::swarm::{self, Stack};
use testbeds::export::{kubernetes, Export, Format};
use testbeds::topology::{self, Kind};

fn spec(kind: Kind, members: u32) -> TestbedSpec {
    TestbedSpec {
        kind,
        members,
        cells: None,
        sizing: topology::for_profile(members, "devstack", topology::M1_TINY).expect("profile"),
        profile: "devstack".into(),
        time_scale: 0.5,
        seed: 7,
        retries: 2,
        cluster_secret: testbeds::compare::random_secret(),
        gossip_interval_ms: None,
        overlay: Default::default(),
    }
}

fn export(kind: Kind, members: u32) -> Export {
    Export::new(spec(kind, members), vec![8, 32])
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).map(String::as_str)
}

fn all_flags<'a>(args: &'a [String], name: &str) -> Vec<&'a str> {
    args.windows(2)
        .filter(|w| w[0] == name)
        .map(|w| w[1].as_str())
        .collect()
}

#[test]
fn swarm_p2p_round_trips() {
    let e = export(Kind::P2p, 5);
    let text = e.render(Format::Swarm).expect("render");
    assert!(
        !text.contains(&e.spec.cluster_secret),
        "the stack file must not hold the cluster secret"
    );
    let s: Stack = serde_yaml::from_str(&text).expect("parses back");
    assert_eq!(s, swarm::stack(&e).expect("stack"), "lossless round trip");
    assert_eq!(s.version, "3.8");
    // 5 mocks, 5 agents, the load generator.
    assert_eq!(s.services.len(), 11, "{:?}", s.services.keys());
    for i in 1..=5 {
        for role in ["os", "agent"] {
            let name = format!("cloudlet-{i}-{role}");
            let svc = s.services.get(&name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(svc.image, "p2pstack-node:local");
            assert_eq!(svc.networks, vec![swarm::NETWORK.to_string()]);
            assert_eq!(svc.deploy.endpoint_mode, "dnsrr");
            assert_eq!(svc.deploy.replicas, 1);
        }
        let agent = &s.services[&format!("cloudlet-{i}-agent")];
        assert_eq!(agent.command[0], "/p2p-agent");
        assert_eq!(
            flag(&agent.command, "--name"),
            Some(&*format!("cloudlet-{i}"))
        );
        assert_eq!(
            flag(&agent.command, "--cloudlet-auth-url"),
            Some(&*format!("http://cloudlet-{i}-os:8080/identity"))
        );
        assert_eq!(
            flag(&agent.command, "--gossip-advertise"),
            Some(&*format!("cloudlet-{i}-agent:7946"))
        );
        // Seeds: the first three agents, never itself.
        let seeds = all_flags(&agent.command, "--seed-peer");
        assert!(!seeds.is_empty() && seeds.len() <= 3, "{seeds:?}");
        assert!(!seeds.contains(&&*format!("cloudlet-{i}-agent:7946")));
        assert!(seeds.iter().all(|p| p.ends_with("-agent:7946")));
        assert_eq!(
            agent
                .environment
                .get("P2P_CLUSTER_SECRET_FILE")
                .map(String::as_str),
            Some("/run/secrets/p2p_cluster_secret")
        );
        assert!(!agent.environment.contains_key("P2P_CLUSTER_SECRET"));
        assert_eq!(agent.secrets, vec![swarm::SECRET_KEY.to_string()]);
        let mock = &s.services[&format!("cloudlet-{i}-os")];
        assert_eq!(mock.command[0], "/mock-openstack");
        assert_eq!(flag(&mock.command, "--computes"), Some("1"));
        assert_eq!(flag(&mock.command, "--time-scale"), Some("0.5"));
    }
    // Seeds as on the embedded and Docker backends: seed + i * 0x9E3779B9.
    let second = &s.services["cloudlet-2-os"].command;
    assert_eq!(
        flag(second, "--seed"),
        Some(&*(7 + 0x9E37_79B9u64).to_string())
    );
    let lg = &s.services[swarm::LOADGEN];
    assert_eq!(lg.command[0], "/loadgen");
    assert_eq!(lg.deploy.restart_policy.condition, "none");
    assert_eq!(lg.deploy.replicas, 0, "started once the cloudlets are up");
    assert_eq!(lg.volumes, vec!["results:/results".to_string()]);
    assert_eq!(flag(&lg.command, "--levels"), Some("8,32"));
    assert_eq!(flag(&lg.command, "--out"), Some("/results/p2p.json"));
    assert_eq!(all_flags(&lg.command, "--entry").len(), 5);
    assert_eq!(s.networks[swarm::NETWORK].driver, "overlay");
    assert!(s.volumes.contains_key(swarm::RESULTS_VOLUME));
    let secret = &s.secrets[swarm::SECRET_KEY];
    assert!(secret.external);
    assert_eq!(secret.name, swarm::CLUSTER_SECRET_NAME);
}

#[test]
fn swarm_standard_round_trips() {
    let e = export(Kind::Standard, 6);
    let text = e.render(Format::Swarm).expect("render");
    let s: Stack = serde_yaml::from_str(&text).expect("parses back");
    let names: BTreeSet<&str> = s.services.keys().map(String::as_str).collect();
    assert_eq!(names, BTreeSet::from(["standard-os", "loadgen"]));
    let mock = &s.services["standard-os"].command;
    assert_eq!(
        flag(mock, "--computes"),
        Some("6"),
        "the monolith holds N nodes"
    );
    assert_eq!(flag(mock, "--name"), Some("standard"));
    let lg = &s.services["loadgen"].command;
    assert_eq!(
        all_flags(lg, "--entry"),
        vec!["http://standard-os:8080/identity"]
    );
    assert_eq!(flag(lg, "--label"), Some("standard"));
    assert!(s.secrets.is_empty(), "no agents, no cluster secret");
}

/// Every document of a multi-document YAML text, as (kind, value).
fn docs(text: &str) -> Vec<(String, serde_yaml::Value)> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde_yaml::Value::deserialize(d).expect("a YAML document"))
        .filter(|v| !v.is_null())
        .map(|v| {
            let kind = v["kind"].as_str().expect("kind").to_string();
            (kind, v)
        })
        .collect()
}

fn typed<T: serde::de::DeserializeOwned>(v: &serde_yaml::Value) -> T {
    serde_yaml::from_value(v.clone()).expect("parses as the typed object")
}

#[test]
fn kubernetes_p2p_round_trips() {
    let e = export(Kind::P2p, 5);
    let text = e.render(Format::Kubernetes).expect("render");
    let d = docs(&text);
    let kinds: Vec<&str> = d.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "Secret",
            "Service",
            "StatefulSet",
            "PersistentVolumeClaim",
            "Job"
        ]
    );
    let secret: Secret = typed(&d[0].1);
    let key = &secret.string_data.as_ref().expect("stringData")[kubernetes::SECRET_KEY];
    assert_eq!(key, &e.spec.cluster_secret);
    assert_eq!(key.len(), 64, "32 random bytes, hex");
    assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(key, "secret");

    let svc: Service = typed(&d[1].1);
    let ss: StatefulSet = typed(&d[2].1);
    let _claim: PersistentVolumeClaim = typed(&d[3].1);
    let job: Job = typed(&d[4].1);
    let svc_spec = svc.spec.expect("service spec");
    assert_eq!(svc_spec.cluster_ip.as_deref(), Some("None"), "headless");
    assert_eq!(svc.metadata.name.as_deref(), Some("cloudlet"));
    let ss_spec = ss.spec.expect("statefulset spec");
    assert_eq!(ss_spec.replicas, Some(5));
    assert_eq!(ss_spec.service_name.as_deref(), Some("cloudlet"));
    assert_eq!(
        svc_spec.selector,
        ss_spec.template.metadata.and_then(|m| m.labels)
    );
    let pod = ss_spec.template.spec.expect("pod spec");
    let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["os", "agent"]);
    let agent = &pod.containers[1];
    let args = agent.args.clone().expect("args");
    assert_eq!(
        agent.command.as_deref(),
        Some(&["/p2p-agent".to_string()][..])
    );
    assert_eq!(
        all_flags(&args, "--seed-peer"),
        vec![
            "cloudlet-0.cloudlet:7946",
            "cloudlet-1.cloudlet:7946",
            "cloudlet-2.cloudlet:7946"
        ],
        "seeds found by DNS"
    );
    assert_eq!(
        flag(&args, "--cloudlet-auth-url"),
        Some("http://127.0.0.1:8081/identity")
    );
    assert_eq!(
        flag(&args, "--peer-url"),
        Some("http://$(POD_NAME).cloudlet:8080")
    );
    let env = agent.env.clone().expect("env");
    let env_names: Vec<&str> = env.iter().map(|v| v.name.as_str()).collect();
    // Variables used in args must be defined (before use) in env.
    assert_eq!(&env_names[..2], &["POD_NAME", "POD_INDEX"]);
    let secret_env = env
        .iter()
        .find(|v| v.name == "P2P_CLUSTER_SECRET")
        .expect("cluster secret env");
    assert!(secret_env.value.is_none(), "from the Secret, not a literal");
    let sel = secret_env
        .value_from
        .as_ref()
        .and_then(|f| f.secret_key_ref.as_ref())
        .expect("secretKeyRef");
    assert_eq!(sel.name, kubernetes::SECRET_NAME);
    let mem = |c: &k8s_openapi::api::core::v1::Container| {
        c.resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .expect("requests")["memory"]
            .0
            .clone()
    };
    assert_eq!(mem(&pod.containers[0]), "12Mi");
    assert_eq!(mem(agent), "13Mi", "12 MiB measured + 5 × 4.8 KiB of view");
    let os_args = pod.containers[0].args.clone().expect("mock args");
    assert_eq!(flag(&os_args, "--listen"), Some("0.0.0.0:8081"));
    assert_eq!(flag(&os_args, "--seed"), Some("$(POD_INDEX)"));

    let job_spec = job.spec.expect("job spec");
    assert_eq!(job_spec.suspend, Some(true));
    let lg = &job_spec.template.spec.expect("job pod").containers[0];
    let lg_args = lg.args.clone().expect("loadgen args");
    assert_eq!(
        all_flags(&lg_args, "--entry"),
        (0..5)
            .map(|k| format!("http://cloudlet-{k}.cloudlet:8080/identity"))
            .collect::<Vec<_>>()
    );
    assert_eq!(flag(&lg_args, "--out"), Some("/results/p2p.json"));
}

#[test]
fn kubernetes_standard_round_trips() {
    let e = export(Kind::Standard, 6);
    let text = e.render(Format::Kubernetes).expect("render");
    let d = docs(&text);
    let kinds: Vec<&str> = d.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["Service", "StatefulSet", "PersistentVolumeClaim", "Job"],
        "no agents, no cluster secret"
    );
    let ss: StatefulSet = typed(&d[1].1);
    let spec = ss.spec.expect("spec");
    assert_eq!(spec.replicas, Some(1));
    let pod = spec.template.spec.expect("pod");
    assert_eq!(pod.containers.len(), 1);
    let args = pod.containers[0].args.clone().expect("args");
    assert_eq!(flag(&args, "--computes"), Some("6"));
    let job: Job = typed(&d[3].1);
    let lg = &job
        .spec
        .expect("job")
        .template
        .spec
        .expect("pod")
        .containers[0];
    assert_eq!(
        all_flags(lg.args.as_deref().expect("args"), "--entry"),
        vec!["http://standard-0.standard:8080/identity"]
    );
}

#[test]
fn empty_testbed_or_no_levels_is_refused() {
    let mut e = export(Kind::P2p, 1);
    e.spec.members = 0;
    assert!(e.render(Format::Swarm).is_err());
    let mut e = export(Kind::P2p, 2);
    e.levels.clear();
    assert!(e.render(Format::Kubernetes).is_err());
}

/// The binary: both formats, stdout and --out, a fresh secret per export.
#[test]
fn the_command_writes_both_formats_with_a_fresh_secret_each_time() {
    let bin = env!("CARGO_BIN_EXE_testbed");
    let run = |format: &str| {
        let out = Command::new(bin)
            .args([
                "export",
                "--format",
                format,
                "--kind",
                "p2p",
                "--cloudlets",
                "3",
            ])
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let key = |text: &str| -> String {
        let d = docs(text);
        let s: Secret = typed(&d[0].1);
        s.string_data.expect("data")[kubernetes::SECRET_KEY].clone()
    };
    let (a, b) = (run("kubernetes"), run("kubernetes"));
    assert_ne!(key(&a), key(&b), "one secret per export, from the OS");
    let s: Stack = serde_yaml::from_str(&run("swarm")).expect("stack");
    assert_eq!(s.services.len(), 7);

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("k.yaml");
    let out = Command::new(bin)
        .args([
            "export",
            "--format",
            "kubernetes",
            "--kind",
            "standard",
            "--cloudlets",
            "2",
        ])
        .arg("--out")
        .arg(&path)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let text = std::fs::read_to_string(&path).expect("written");
    assert_eq!(docs(&text).len(), 4);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
    assert_eq!(mode & 0o077, 0, "owner-only: it may hold the cluster key");

    let bad = Command::new(bin)
        .args([
            "export",
            "--format",
            "swarm",
            "--kind",
            "p2p",
            "--cloudlets",
            "0",
        ])
        .output()
        .expect("runs");
    assert!(!bad.status.success());
}
