//! The `sim` backend end to end: the same seed writes the same results, and
//! on a small case it agrees with the embedded (real-time) backend.

use std::path::Path;

use serde_json::Value;

mod common;

use common::compare as run_compare;

fn results_of(out: &Path, system: &str) -> results::RunResults {
    let path = out.join("results").join(format!("{system}.json"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    results::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A results file without the fields that record the host and the date.
fn without_host_and_date(out: &Path, system: &str) -> String {
    let path = out.join("results").join(format!("{system}.json"));
    let text = std::fs::read_to_string(&path).expect("results file");
    let mut v: Value = serde_json::from_str(&text).expect("json");
    if let Some(o) = v.as_object_mut() {
        for k in ["host", "started_at", "finished_at", "command_line"] {
            o.remove(k);
        }
    }
    serde_json::to_string_pretty(&v).expect("json")
}

#[test]
fn same_seed_same_results_on_virtual_time() {
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let args = ["--backend", "sim", "--quick", "--quiet", "--seed", "5"];
    run_compare(&args, a.path());
    run_compare(&args, b.path());
    for system in ["standard", "p2p"] {
        let ra = results_of(a.path(), system);
        assert_eq!(ra.system.backend.as_deref(), Some("sim"));
        assert!(ra.complete, "{system}: {:?}", ra.incomplete_reason);
        assert!(!ra.levels.is_empty());
        assert!(
            ra.levels.iter().all(|l| !l.requests.is_empty()),
            "per-request records are compared too"
        );
        let (ta, tb) = (
            without_host_and_date(a.path(), system),
            without_host_and_date(b.path(), system),
        );
        if ta != tb {
            let first = ta
                .lines()
                .zip(tb.lines())
                .position(|(x, y)| x != y)
                .unwrap_or(0);
            let show = |t: &str| {
                t.lines()
                    .skip(first.saturating_sub(3))
                    .take(8)
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            panic!(
                "{system}: results differ from line {first}:\n--- run 1\n{}\n--- run 2\n{}",
                show(&ta),
                show(&tb)
            );
        }
    }
    // A different seed is a different run (the test above can fail).
    let c = tempfile::tempdir().expect("temp dir");
    run_compare(
        &["--backend", "sim", "--quick", "--quiet", "--seed", "6"],
        c.path(),
    );
    assert_ne!(
        without_host_and_date(a.path(), "p2p"),
        without_host_and_date(c.path(), "p2p")
    );
}

/// `(level, succeeded, makespan, boot p50, boot p95)` per level.
fn figures(run: &results::RunResults) -> Vec<(u32, u32, f64, f64, f64)> {
    run.levels
        .iter()
        .map(|l| {
            (
                l.level,
                l.succeeded,
                l.makespan_s,
                l.boot_time.p50_s,
                l.boot_time.p95_s,
            )
        })
        .collect()
}

fn within(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs())
}

/// The small case of the sim/embedded agreement (docs/benchmarks.md has
/// the full table): 4 cloudlets, levels 8 and 32, both systems; ACTIVE
/// counts within 2 %, makespan and boot p50/p95 within 10 %.
///
/// It used to differ by up to 18 % (P2P's level-32 makespan): the
/// embedded backend gossiped every 100 *wall* ms, i.e. every 1,000 model
/// ms at this time scale against sim's 400, and a staler view placed boots
/// differently. `testbed compare` now gives every backend the same
/// model-time interval. What remains is the embedded backend's wall-clock
/// arrival times (at scale 0.1 a millisecond of host delay is 10 model
/// ms): two runs of the release binary under load average 7.5 differed
/// by at most 8.3 %. Still ignored: the debug binary under `cargo nextest`
/// (beside other tests, load ~8) made the embedded side host-bound (P2P's
/// level-32 makespan 25.2 s against 10.5 s on sim), so in CI it would fail
/// for the host's sake. Run it with `--ignored` on a quiet machine or a
/// release build.
#[test]
#[ignore = "the embedded side is host-bound on a loaded machine or a debug build; see the doc comment"]
fn sim_agrees_with_embedded_on_a_small_case() {
    let sim = tempfile::tempdir().expect("temp dir");
    let emb = tempfile::tempdir().expect("temp dir");
    let common = ["--quick", "--quiet", "--seed", "3"];
    run_compare(
        &[&["--backend", "sim"][..], &common[..]].concat(),
        sim.path(),
    );
    run_compare(
        &[
            &["--backend", "embedded", "--time-scale", "0.1"][..],
            &common[..],
        ]
        .concat(),
        emb.path(),
    );
    let mut problems = Vec::new();
    for system in ["standard", "p2p"] {
        let (s, e) = (
            figures(&results_of(sim.path(), system)),
            figures(&results_of(emb.path(), system)),
        );
        assert_eq!(s.len(), e.len(), "{system}: same levels");
        for (a, b) in s.iter().zip(&e) {
            let ok = a.0 == b.0
                && within(f64::from(a.1), f64::from(b.1), 0.02)
                && within(a.2, b.2, 0.10)
                && within(a.3, b.3, 0.10)
                && within(a.4, b.4, 0.10);
            if !ok {
                problems.push(format!("{system}: sim {a:?} vs embedded {b:?}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "(level, ACTIVE, makespan, p50, p95) disagree:\n{}",
        problems.join("\n")
    );
}
