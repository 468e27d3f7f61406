//! `testbed run --engine swarm` for real: the exported stacks of 8
//! cloudlets (and the standard testbed of 8 nodes) deployed on the local
//! engine, their load generators run, the report rendered, and then no
//! service, container, network, volume, secret or swarm membership of the
//! run left behind.
//!
//! Without a Docker engine the test is skipped with a message, unless
//! `CI=true`, where it fails (as `docker_backend`).

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use testbeds::docker;
use testbeds::swarm::{self, SwarmRun};

fn docker_lines(args: &[&str]) -> BTreeSet<String> {
    let out = Command::new("docker").args(args).output().expect("docker");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Names of everything a run could leave behind.
fn engine_state() -> (String, BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let state = swarm::swarm_state().expect("docker info");
    let networks = docker_lines(&["network", "ls", "--format", "{{.Name}}"]);
    let volumes = docker_lines(&["volume", "ls", "--format", "{{.Name}}"]);
    let stack_things: BTreeSet<String> = [
        docker_lines(&["ps", "-a", "--format", "{{.Names}}"]),
        docker_lines(&["service", "ls", "--format", "{{.Name}}"]),
        docker_lines(&["secret", "ls", "--format", "{{.Name}}"]),
    ]
    .into_iter()
    .flatten()
    .filter(|n| n.contains("p2pstack-"))
    .collect();
    (state, networks, volumes, stack_things)
}

#[test]
fn swarm_run_of_8_cloudlets_reports_and_leaves_nothing() {
    if !docker::docker_available() || swarm::swarm_state().is_err() {
        let ci = std::env::var("CI").map(|v| v == "true").unwrap_or(false);
        assert!(
            !ci,
            "CI=true but no Docker engine is reachable: the Swarm test cannot run"
        );
        eprintln!("SKIPPED swarm: no Docker engine reachable (set CI=true to make this fail)");
        return;
    }
    // The image with the project's own static binaries, as `testbed images`.
    let source = docker::images::default_source_dir();
    let bin_dir = docker::static_build(&source).expect("static build");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(docker::build_image(&bin_dir))
        .expect("image build");

    let before = engine_state();
    let out = tempfile::tempdir().expect("tempdir");
    let cfg = SwarmRun {
        cloudlets: 8,
        levels: vec![8],
        profile: "devstack".into(),
        time_scale: 0.2,
        seed: 3,
        retries: 2,
        out: out.path().to_path_buf(),
        ready_timeout: Duration::from_secs(90),
        run_timeout: Duration::from_secs(120),
    };
    let result = swarm::run(&cfg);
    let after = engine_state();
    // Cleanup is checked whatever the run's outcome.
    assert_eq!(
        after.0, before.0,
        "swarm membership must be as before the run"
    );
    // Other tests' runs may come and go meanwhile: nothing new may stay.
    let mut new_networks: Vec<_> = after.1.difference(&before.1).collect();
    // Docker 20.10 may keep a stale endpoint on the docker_gwbridge that
    // `swarm init` created, refusing its removal until the daemon restarts
    // (docs/testbeds.md); tolerated only with nothing attached to it.
    if new_networks.iter().any(|n| *n == "docker_gwbridge") {
        let attached = docker_lines(&[
            "network",
            "inspect",
            "docker_gwbridge",
            "--format",
            "{{len .Containers}}",
        ]);
        assert_eq!(
            attached,
            BTreeSet::from(["0".to_string()]),
            "containers left on docker_gwbridge"
        );
        eprintln!(
            "NOTE: docker_gwbridge (empty) could not be removed: stale endpoint in the engine"
        );
        new_networks.retain(|n| *n != "docker_gwbridge");
    }
    assert!(new_networks.is_empty(), "networks left: {new_networks:?}");
    let new_volumes: Vec<_> = after.2.difference(&before.2).collect();
    assert!(new_volumes.is_empty(), "volumes left: {new_volumes:?}");
    assert!(
        after.3.is_subset(&before.3),
        "left behind: {:?}",
        after.3.difference(&before.3).collect::<Vec<_>>()
    );
    let table = result.expect("the swarm run");
    assert!(
        table.contains("standard") || table.contains("P2P"),
        "{table}"
    );
    assert!(out.path().join("index.html").is_file(), "the report");
    for kind in ["standard", "p2p"] {
        let path = out.path().join("results").join(format!("{kind}.json"));
        let run: results::RunResults =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("results file"))
                .expect("results");
        assert_eq!(run.system.backend.as_deref(), Some("swarm"));
        assert_eq!(run.system.kind.as_deref(), Some(kind));
        assert_eq!(run.levels.len(), 1, "{kind}: one level");
        let level = &run.levels[0];
        assert_eq!(level.level, 8);
        assert_eq!(level.requested, 8);
        assert!(level.succeeded > 0, "{kind}: no boot succeeded at level 8");
    }
}
