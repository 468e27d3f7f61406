//! The chaos scenarios of `testbed compare` (issue 12): agent-loss and
//! partition, with the lost / orphaned / resurrected counts in the results
//! and the report. All zero is the contract (docs/agent.md).

mod common;

use std::path::Path;

use results::{Outcome, RunResults};

fn p2p_results(out: &Path) -> RunResults {
    let path = out.join("results").join("p2p.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    results::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs `testbed compare --quick --quiet EXTRA --scenario SCENARIO --kill
/// KILL`: the output folder (kept alive), the P2P results and stdout.
fn run_chaos(
    extra: &[&str],
    scenario: &str,
    kill: &str,
) -> (tempfile::TempDir, RunResults, String) {
    let out = tempfile::tempdir().expect("temp dir");
    let mut args = vec!["--quick", "--quiet"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--scenario", scenario, "--kill", kill]);
    let stdout = common::compare(&args, out.path());
    let run = p2p_results(out.path());
    (out, run, stdout)
}

/// The standard system is not run, the report has the chaos section and
/// CSV columns, and every level was checked and found nothing.
fn assert_checked_and_clean(out: &Path, run: &RunResults, stdout: &str) {
    assert!(
        !out.join("results").join("standard.json").exists(),
        "the standard system has no counterpart and must not run"
    );
    assert!(
        stdout.contains("does not apply to the standard"),
        "{stdout}"
    );
    assert!(stdout.contains("resurrected"), "{stdout}");
    for l in &run.levels {
        let d = l
            .durability
            .as_ref()
            .unwrap_or_else(|| panic!("level {} was not checked", l.level));
        assert!(
            d.unchecked.is_empty(),
            "level {}: {:?}",
            l.level,
            d.unchecked
        );
        assert!(d.lost.is_empty(), "level {}: lost {:?}", l.level, d.lost);
        assert!(
            d.orphaned.is_empty(),
            "level {}: orphaned {:?}",
            l.level,
            d.orphaned
        );
        assert!(
            d.resurrected.is_empty(),
            "level {}: resurrected {:?}",
            l.level,
            d.resurrected
        );
        assert!(d.reconcile_s > 0.0);
        assert!(l.audit.clean, "level {}: {:?}", l.level, l.audit);
        assert!(
            l.requests.iter().any(|r| r.delete_time_s.is_some()),
            "level {}: nothing was deleted, the resurrection check saw nothing",
            l.level
        );
    }
    let md = std::fs::read_to_string(out.join("summary.md")).expect("summary.md");
    assert!(md.contains("## Chaos scenario"), "{md}");
    let csv = std::fs::read_to_string(out.join("summary.csv")).expect("summary.csv");
    let header = csv.lines().next().unwrap_or_default();
    assert!(header.ends_with(",lost,orphaned,resurrected"), "{header}");
    for row in csv.lines().skip(1) {
        assert!(row.ends_with(",0,0,0"), "{row}");
    }
    let html = std::fs::read_to_string(out.join("index.html")).expect("index.html");
    assert!(html.contains("id=\"durability\""));
}

/// The member agent-loss stopped at level `index` (the testbed's seeded
/// choice; one of four with `--kill 1`, seed 1).
fn victim(index: usize) -> usize {
    testbeds::scenario::choose_victims(4, 1, 1 + index as u64)[0] as usize
}

/// Agent-loss on virtual time: the boots entered through the killed agent
/// are followed through the others and end ACTIVE; nothing lost,
/// orphaned or resurrected.
#[test]
fn agent_loss_on_sim_loses_nothing() {
    let (out, run, stdout) = run_chaos(&["--backend", "sim"], "agent-loss", "1");
    assert_eq!(run.system.scenario.as_deref(), Some("agent-loss"));
    let detail = run.system.scenario_detail.as_deref().unwrap_or_default();
    assert!(detail.contains("1 of 4 agents stopped"), "{detail}");
    assert_checked_and_clean(out.path(), &run, &stdout);
    for (i, l) in run.levels.iter().enumerate() {
        let dead = &run.target.entries[victim(i)];
        let through_dead: Vec<_> = l.requests.iter().filter(|r| &r.entry == dead).collect();
        assert!(
            !through_dead.is_empty(),
            "level {}: no boot entered via {dead}",
            l.level
        );
        for r in through_dead {
            assert_eq!(r.outcome, Outcome::Active, "level {}: {r:?}", l.level);
            assert!(r.delete_time_s.is_some(), "not deleted: {r:?}");
        }
        assert_eq!(
            l.succeeded, l.requested,
            "level {}: {:?}",
            l.level, l.errors
        );
    }
}

/// Partition on virtual time: the cut-off cloudlets' boots are re-placed
/// elsewhere, the client deletes everything, and after the cloudlets
/// answer again nothing comes back and nothing is left on them.
#[test]
fn partition_on_sim_resurrects_nothing() {
    let (out, run, stdout) = run_chaos(&["--backend", "sim"], "partition", "25%");
    assert_eq!(run.system.scenario.as_deref(), Some("partition"));
    let detail = run.system.scenario_detail.as_deref().unwrap_or_default();
    assert!(detail.contains("1 of 4 cloudlets cut off"), "{detail}");
    assert_checked_and_clean(out.path(), &run, &stdout);
}

/// Agent-loss on real sockets, one small level.
#[test]
fn agent_loss_on_embedded_loses_nothing() {
    let (out, run, stdout) = run_chaos(&["--levels", "8"], "agent-loss", "25%");
    assert_checked_and_clean(out.path(), &run, &stdout);
    let dead = &run.target.entries[victim(0)];
    assert!(
        run.levels[0]
            .requests
            .iter()
            .any(|r| &r.entry == dead && r.outcome == Outcome::Active),
        "no boot entered via the killed agent ended ACTIVE"
    );
}
