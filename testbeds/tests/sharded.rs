//! The sharded control (N cloudlets, no agents, the client round-robins):
//! no boot is ever placed outside the cloudlet it was sent to, even when
//! that cloudlet is full and another has room.

mod common;

fn results_of(out: &std::path::Path, system: &str) -> results::RunResults {
    let path = out.join("results").join(format!("{system}.json"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    results::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `http://cloudlet-2-mock/identity` → `cloudlet-2`.
fn cloudlet_of_entry(entry: &str) -> String {
    entry
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .trim_end_matches("-mock")
        .to_string()
}

/// The same check with the cloud admin's view of every server (a member
/// does not see `OS-EXT-SRV-ATTR:host`): every ACTIVE server's host is a
/// compute node of the cloudlet its boot was sent to.
fn admin_burst(cloudlets: u32, boots: u32) -> results::RunResults {
    use testbeds::backend::{Backend, Testbed};
    use testbeds::embedded::TestbedSpec;
    use testbeds::topology::{self, Kind};
    let rt = testbeds::sim::runtime().expect("sim runtime");
    rt.block_on(async move {
        let spec = TestbedSpec {
            kind: Kind::Sharded,
            members: cloudlets,
            cells: None,
            sizing: topology::for_profile(cloudlets, "devstack", topology::M1_TINY)
                .expect("profile"),
            profile: "devstack".into(),
            time_scale: 1.0,
            seed: 3,
            retries: 0,
            cluster_secret: String::new(),
            gossip_interval_ms: None,
            overlay: Default::default(),
        };
        let tb = Testbed::start(Backend::Sim, spec).await.expect("testbed");
        let entries = tb.entries();
        assert_eq!(entries.len() as u32, cloudlets, "one entry per cloudlet");
        let target = loadgen::Target::password(
            entries,
            "admin",
            "secret",
            "admin",
            loadgen::EntryPolicy::RoundRobin,
        );
        let cfg = loadgen::BurstConfig {
            levels: vec![boots],
            time_scale: Some(1.0),
            quiet: true,
            seed: 3,
            ..loadgen::BurstConfig::default()
        };
        let transport = tb
            .client_transport(std::time::Duration::from_secs(60))
            .expect("transport");
        let run =
            loadgen::run_boot_burst(&cfg, &target, transport, loadgen::CancellationToken::new())
                .await
                .expect("burst");
        tb.shutdown().await;
        run
    })
}

#[test]
fn sharded_boots_are_placed_only_in_their_entry_cloudlet() {
    // devstack nodes hold 48 m1.tiny each: 150 boots over 3 cloudlets (50
    // each) overflow every one; a boot placed elsewhere would show as a
    // host of another cloudlet, and more than 144 ACTIVE.
    let run = admin_burst(3, 150);
    let level = &run.levels[0];
    let mut hosts = 0;
    for r in &level.requests {
        let cloudlet = cloudlet_of_entry(&r.entry);
        if let Some(host) = &r.host {
            hosts += 1;
            assert!(
                host.starts_with(&format!("{cloudlet}-compute-")),
                "boot {} sent to {cloudlet} was placed on {host}",
                r.index
            );
        }
    }
    assert_eq!(level.succeeded, 144, "3 × 48 fit");
    assert!(
        hosts >= 144,
        "admin sees the host of every ACTIVE server ({hosts})"
    );
}

#[test]
fn sharded_compare_round_robins_and_full_cloudlets_refuse() {
    let out = tempfile::tempdir().expect("temp dir");
    // devstack nodes hold 48 m1.tiny each: 150 boots over 3 cloudlets (50
    // each) overflow every one, so a boot that went elsewhere would show.
    common::compare(
        &[
            "--backend",
            "sim",
            "--systems",
            "sharded",
            "--profile",
            "devstack",
            "--cloudlets",
            "3",
            "--levels",
            "150",
            "--quiet",
        ],
        out.path(),
    );
    let run = results_of(out.path(), "sharded");
    assert_eq!(run.system.kind.as_deref(), Some("sharded"));
    assert_eq!(run.system.cloudlets, Some(3));
    assert_eq!(run.system.retries, None, "no agents");
    let level = &run.levels[0];
    let mut per_entry = std::collections::BTreeMap::<String, u32>::new();
    for r in &level.requests {
        let cloudlet = cloudlet_of_entry(&r.entry);
        assert!(cloudlet.starts_with("cloudlet-"), "entry {}", r.entry);
        *per_entry.entry(cloudlet).or_default() += 1;
    }
    // Round-robin: 50 per cloudlet; each holds 48, so each refuses 2.
    assert_eq!(per_entry.len(), 3, "{per_entry:?}");
    assert!(per_entry.values().all(|&n| n == 50), "{per_entry:?}");
    assert_eq!(level.succeeded, 144, "3 × 48 fit");
    assert_eq!(level.failed, 6);
}
