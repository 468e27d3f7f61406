//! `testbed compare --quick` end to end on the embedded backend: both
//! results files, the report files and the printed headline.

mod common;

use common::compare as run_compare;

#[test]
fn compare_quick_writes_results_report_and_headline() {
    let out = tempfile::tempdir().expect("temp dir");
    let stdout = run_compare(&["--quick", "--quiet"], out.path());

    // Both results files parse under the current schema and describe the run.
    let mut runs = Vec::new();
    for (name, kind) in [("standard", "standard"), ("p2p", "p2p")] {
        let path = out.path().join("results").join(format!("{name}.json"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let run = results::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(run.system.kind.as_deref(), Some(kind));
        assert_eq!(run.system.backend.as_deref(), Some("embedded"));
        assert_eq!(run.system.computes, Some(4));
        assert_eq!(run.system.profile.as_deref(), Some("openstack-2017"));
        assert!(
            run.complete,
            "{name} run incomplete: {:?}",
            run.incomplete_reason
        );
        let levels: Vec<u32> = run.levels.iter().map(|l| l.level).collect();
        assert_eq!(levels, vec![8, 32], "{name}");
        for l in &run.levels {
            assert_eq!(l.requested, l.level);
            assert_eq!(l.succeeded + l.failed, l.requested);
            assert!(
                l.audit.clean,
                "{name} level {}: leftovers {:?}",
                l.level, l.audit.leftovers
            );
        }
        // Nothing is saturated at these levels and no quota binds (32 boots
        // exceed DevStack's default 20-core quota): every boot succeeds.
        assert!(
            run.levels.iter().all(|l| l.succeeded == l.requested),
            "{name}: {:?}",
            run.levels.iter().map(|l| &l.errors).collect::<Vec<_>>()
        );
        assert!(run.host.scheduler_lag_p99_ms.is_some());
        runs.push(run);
    }
    // Same compute capacity on both sides, as each system reports it through
    // its own API (the monolith's nova-api; an agent summing its federation),
    // and as deployed.
    let capacity: Vec<&results::Capacity> = runs
        .iter()
        .map(|r| {
            r.system
                .capacity
                .as_ref()
                .unwrap_or_else(|| panic!("{}: no capacity recorded", r.system.label))
        })
        .collect();
    let reported: Vec<&results::ReportedCapacity> = capacity
        .iter()
        .zip(&runs)
        .map(|(c, r)| {
            c.reported
                .as_ref()
                .unwrap_or_else(|| panic!("{}: the system reported no capacity", r.system.label))
        })
        .collect();
    let as_reported =
        |r: &results::ReportedCapacity| (r.hypervisors, r.vcpus, r.memory_mb, r.local_gb);
    assert_eq!(
        as_reported(reported[0]),
        as_reported(reported[1]),
        "same compute capacity on both sides (os-hypervisors/statistics)"
    );
    for (c, r) in capacity.iter().zip(&reported) {
        assert_eq!(r.hypervisors, 4);
        assert_eq!(
            (r.hypervisors, r.vcpus, r.memory_mb, r.local_gb),
            (
                u64::from(c.total_nodes),
                c.total.vcpus,
                c.total.ram_mb,
                c.total.disk_gb
            ),
            "reported capacity differs from what was deployed"
        );
    }
    assert_eq!(
        (capacity[0].deployments, capacity[0].nodes_per_deployment),
        (1, 4)
    );
    assert_eq!(
        (capacity[1].deployments, capacity[1].nodes_per_deployment),
        (4, 1)
    );
    assert_eq!(runs[0].seed, runs[1].seed);
    assert_eq!(runs[0].time_scale, runs[1].time_scale);

    // P2P boots are spread over the agents' cloudlets.
    let p2p_top = runs[1].levels.last().expect("a level");
    assert!(
        p2p_top.placement.len() >= 2,
        "placement {:?}",
        p2p_top.placement
    );

    for f in ["index.html", "summary.md", "summary.csv", "headline.json"] {
        let p = out.path().join(f);
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{} missing or empty", p.display());
    }
    let headline: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.path().join("headline.json")).expect("headline.json"),
    )
    .expect("headline.json is JSON");
    assert_eq!(headline["standard"]["limit_level"], 32);
    assert!(
        headline["claims"].as_array().map(|c| c.len()) == Some(3),
        "{headline}"
    );
    // Every boot of both systems' largest level succeeded: neither was taken
    // past its limit, so no claim can be decided.
    assert_eq!(headline["evidence"]["standard"]["past_limit"], false);
    for c in headline["claims"].as_array().into_iter().flatten() {
        assert_eq!(c["verdict"], "undetermined", "{c}");
        let flags = c["flags"].as_array().expect("flags");
        assert!(flags.iter().any(|f| f == "standard_not_past_limit"), "{c}");
    }

    // The printed headline names each claim and points at the report.
    for needle in [
        "4× more VMs",
        "about half the time",
        "error rate below one third",
        "index.html",
    ] {
        assert!(
            stdout.contains(needle),
            "stdout lacks {needle:?}:\n{stdout}"
        );
    }
}

/// In cloudlet-loss every level starts on a whole testbed: a member killed
/// in level 1 is back (on a fresh testbed) for level 2, so every boot POST of
/// every level reaches a live agent, and the entries of the two levels differ.
#[test]
fn cloudlet_loss_starts_every_level_whole() {
    let out = tempfile::tempdir().expect("temp dir");
    run_compare(
        &[
            "--quick",
            "--quiet",
            "--scenario",
            "cloudlet-loss",
            "--kill",
            "1",
        ],
        out.path(),
    );
    let path = out.path().join("results").join("p2p.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let run = results::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(run.system.scenario.as_deref(), Some("cloudlet-loss"));
    let levels: Vec<u32> = run.levels.iter().map(|l| l.level).collect();
    assert_eq!(levels, vec![8, 32]);
    let mut entries_per_level = Vec::new();
    for l in &run.levels {
        assert!(!l.requests.is_empty(), "level {} kept no requests", l.level);
        let unanswered: Vec<_> = l
            .requests
            .iter()
            .filter(|r| r.server_id.is_none() && r.outcome == results::Outcome::TransportError)
            .collect();
        assert!(
            unanswered.is_empty(),
            "level {}: boot POSTs sent to a dead entry: {unanswered:?}",
            l.level
        );
        let entries: std::collections::BTreeSet<&str> =
            l.requests.iter().map(|r| r.entry.as_str()).collect();
        assert_eq!(entries.len(), 4, "round robin over all 4 agents");
        entries_per_level.push(entries);
    }
    assert!(
        entries_per_level[0].is_disjoint(&entries_per_level[1]),
        "level 2 ran on the same (damaged) testbed as level 1"
    );
}
