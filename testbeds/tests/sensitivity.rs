//! `testbed sensitivity` and `testbed compare --set` end to end on the sim
//! backend (virtual time, deterministic): a profile override really changes
//! the model, and a tiny sensitivity run writes the CSV, the tornado charts
//! and the claim map, the same for the same seed.

use std::path::Path;
use std::process::Command;

mod common;

use common::testbed;

fn standard_at(out: &Path, level: u32) -> results::LevelResult {
    let bytes = std::fs::read(out.join("results/standard.json")).expect("results");
    let run = results::parse(&bytes).expect("valid results");
    run.levels
        .into_iter()
        .find(|l| l.level == level)
        .expect("level ran")
}

#[test]
fn fewer_api_workers_lower_what_the_standard_system_boots() {
    let base = tempfile::tempdir().expect("temp dir");
    let fewer = tempfile::tempdir().expect("temp dir");
    let common = [
        "compare",
        "--backend",
        "sim",
        "--cloudlets",
        "4",
        "--levels",
        "300",
        "--quiet",
    ];
    testbed(&common, base.path());
    let mut args = common.to_vec();
    args.extend(["--set", "api.workers=1"]);
    testbed(&args, fewer.path());
    let (b, f) = (
        standard_at(base.path(), 300),
        standard_at(fewer.path(), 300),
    );
    assert_eq!(b.succeeded, 300, "4 API workers boot the whole burst");
    assert!(
        f.succeeded < b.succeeded,
        "1 API worker: {} ACTIVE, 4 workers: {}",
        f.succeeded,
        b.succeeded
    );
    // The run records the changed profile, and its effective file is there.
    let bytes = std::fs::read(fewer.path().join("results/standard.json")).expect("results");
    let run = results::parse(&bytes).expect("valid results");
    assert!(
        run.system
            .profile
            .as_deref()
            .is_some_and(|p| p.ends_with("profile.toml")),
        "{:?}",
        run.system.profile
    );
    let p = cp_model::Profile::load(&fewer.path().join("profile.toml").to_string_lossy())
        .expect("effective profile");
    assert_eq!(p.api.workers, 1);
}

#[test]
fn a_bad_override_is_refused_before_anything_runs() {
    let out = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args([
            "compare",
            "--backend",
            "sim",
            "--quick",
            "--set",
            "api.workerz=2",
            "--out",
        ])
        .arg(out.path())
        .output()
        .expect("run testbed");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown key `api.workerz`"), "{stderr}");
    assert!(!out.path().join("results").exists());
}

#[test]
fn a_tiny_sensitivity_run_writes_tornados_and_claim_map_deterministically_at_any_jobs() {
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let args = [
        "sensitivity",
        "--backend",
        "sim",
        "--cloudlets",
        "2",
        "--start-level",
        "16",
        "--max-level",
        "32",
        "--params",
        "api_workers,gossip_interval",
        "--seed",
        "3",
        "--quiet",
    ];
    let mut sequential = args.to_vec();
    sequential.extend(["--jobs", "1"]);
    let stdout = testbed(&sequential, a.path());
    assert!(stdout.contains("5 comparisons"), "{stdout}");
    // Two at a time, each in a child process: the same CSV.
    let mut parallel = args.to_vec();
    parallel.extend(["--jobs", "2"]);
    let stdout = testbed(&parallel, b.path());
    assert!(stdout.contains("5 comparisons"), "{stdout}");
    assert!(b.path().join("runs/api_workers-high/log.txt").is_file());
    for f in [
        "index.html",
        "summary.md",
        "sensitivity.json",
        "tornado-vms.svg",
        "tornado-makespan.svg",
        "tornado-error-rate.svg",
        "claim-map.svg",
        "runs/baseline/index.html",
        "runs/api_workers-low/profile.toml",
        "runs/gossip_interval-high/index.html",
    ] {
        assert!(a.path().join(f).is_file(), "{f} missing");
    }
    // The baseline searched from --start-level; every other setting from
    // the baseline's limits (a bracket around them).
    let json = |f: &str| -> serde_json::Value {
        let bytes = std::fs::read(a.path().join(f)).expect(f);
        serde_json::from_slice(&bytes).expect(f)
    };
    let baseline = json("runs/baseline/headline.json");
    for system in ["standard", "p2p"] {
        let search = |run: &str| {
            json(&format!("runs/{run}/results/{system}.json"))["config"]["limit_search"].clone()
        };
        assert!(
            search("baseline")["from_guess"].is_null(),
            "{}",
            search("baseline")
        );
        for run in ["api_workers-low", "gossip_interval-high"] {
            assert_eq!(
                search(run)["from_guess"],
                baseline[system]["limit_level"],
                "{run} {system}"
            );
        }
    }
    let csv_a = std::fs::read_to_string(a.path().join("sensitivity.csv")).expect("csv");
    let csv_b = std::fs::read_to_string(b.path().join("sensitivity.csv")).expect("csv");
    assert_eq!(csv_a, csv_b, "same seed, same CSV, one or two at a time");
    let rows: Vec<&str> = csv_a.lines().skip(1).collect();
    assert_eq!(rows.len(), 6, "{csv_a}");
    for prefix in [
        "api_workers,low,2,false,",
        "api_workers,default,4,true,",
        "api_workers,high,8,false,",
        "gossip_interval,low,",
        "gossip_interval,default,",
        "gossip_interval,high,",
    ] {
        assert!(
            rows.iter().any(|r| r.starts_with(prefix)),
            "{prefix}\n{csv_a}"
        );
    }
    let html = std::fs::read_to_string(a.path().join("index.html")).expect("html");
    assert!(html.contains("Claim map") && html.contains("Tornado"));
    assert!(!html.contains("<script"));
}
