//! Honest verdicts: a claim is `undetermined`, never `reproduced`, when
//! either system was not taken past its limit, when a run was host-bound,
//! or when the scale check disagreed. One test per reason, each starting
//! from the fixtures (where the three claims are decided: not reproduced,
//! reproduced, reproduced) and changing only that one fact.

use std::path::{Path, PathBuf};

use reports::{Flag, ReportOptions, ScaleCheck, Verdict};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn runs() -> (results::RunResults, results::RunResults) {
    let s = reports::load(&fixture("standard.json")).expect("standard fixture loads");
    let p = reports::load(&fixture("p2p.json")).expect("p2p fixture loads");
    (s, p)
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Renders the pair and checks that every claim is undetermined with
/// exactly `flags`, in headline.json, index.html and summary.md alike;
/// returns headline.json.
fn assert_undetermined(
    s: results::RunResults,
    p: results::RunResults,
    opts: &ReportOptions,
    flags: &[Flag],
    reason_says: &str,
) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let h = reports::compare(&s, &p, dir.path(), opts).unwrap();
    assert_eq!(h.evidence.flags, flags);
    for c in &h.claims {
        assert_eq!(c.verdict, Verdict::Undetermined, "{}", c.id);
        assert!(!c.reproduced());
        assert_eq!(c.flags, flags, "{}", c.id);
        let reason = c.reason.as_deref().unwrap_or("").to_lowercase();
        assert!(
            reason.contains(&reason_says.to_lowercase()),
            "{}: {reason}",
            c.id
        );
    }
    assert_eq!(
        (
            h.claims_reproduced,
            h.claims_not_reproduced,
            h.claims_undetermined
        ),
        (0, 0, 3)
    );
    assert!(h.verdict.starts_with("Undetermined"), "{}", h.verdict);
    assert!(h.table().contains("undetermined"), "{}", h.table());

    let json: serde_json::Value = serde_json::from_str(&read(dir.path(), "headline.json")).unwrap();
    for c in json["claims"].as_array().unwrap() {
        assert_eq!(c["verdict"], "undetermined");
        let reason = c["reason"].as_str().unwrap().to_lowercase();
        assert!(reason.contains(&reason_says.to_lowercase()), "{reason}");
        assert_eq!(c["flags"].as_array().unwrap().len(), flags.len());
    }
    assert_eq!(json["claims_undetermined"], 3);

    let html = read(dir.path(), "index.html");
    assert_eq!(html.matches("? undetermined").count(), 3);
    assert!(html.contains("Why undetermined:"));
    assert!(!html.contains("✓ reproduced"));
    let md = read(dir.path(), "summary.md");
    assert!(md.contains("**Why undetermined:**"), "{md}");
    assert_eq!(md.matches("| undetermined (criterion").count(), 3, "{md}");
    json
}

#[test]
fn a_system_not_taken_past_its_limit_leaves_every_claim_undetermined() {
    // P2P without its level 800: its limit (400) is now its largest level.
    let (s, mut p) = runs();
    p.levels.retain(|l| l.level <= 400);
    let json = assert_undetermined(
        s,
        p,
        &ReportOptions::default(),
        &[Flag::P2pNotPastLimit],
        "P2P was not taken past its limit",
    );
    assert_eq!(json["evidence"]["p2p"]["past_limit"], false);
    assert_eq!(json["evidence"]["p2p"]["largest_level"], 400);
    assert_eq!(json["evidence"]["standard"]["past_limit"], true);
    // Whether the ratio met the criterion is kept: 0.47 ≤ 0.6.
    let time = &json["claims"][1];
    assert_eq!(
        (time["id"].as_str(), time["criterion_met"].as_bool()),
        (Some("time"), Some(true))
    );

    // The same for the standard system: drop its levels above 200.
    let (mut s, p) = runs();
    s.levels.retain(|l| l.level <= 200);
    assert_undetermined(
        s,
        p,
        &ReportOptions::default(),
        &[Flag::StandardNotPastLimit],
        "standard was not taken past its limit",
    );
}

#[test]
fn a_host_bound_run_leaves_every_claim_undetermined() {
    let (mut s, p) = runs();
    s.host.host_bound = Some(true);
    assert_undetermined(
        s,
        p,
        &ReportOptions::default(),
        &[Flag::StandardHostBound],
        "the standard run was host-bound",
    );
    let (s, mut p) = runs();
    p.host.host_bound = Some(true);
    assert_undetermined(
        s,
        p,
        &ReportOptions::default(),
        &[Flag::P2pHostBound],
        "the P2P run was host-bound",
    );
}

#[test]
fn a_scale_check_disagreement_leaves_every_claim_undetermined() {
    let (s, p) = runs();
    let opts = ReportOptions {
        scale_check: ScaleCheck::Disagree,
        ..ReportOptions::default()
    };
    let json = assert_undetermined(
        s,
        p,
        &opts,
        &[Flag::ScaleCheckDisagrees],
        "the scale check disagrees",
    );
    assert_eq!(json["evidence"]["scale_check"], "disagree");
}

#[test]
fn every_flag_is_listed_when_several_apply() {
    let (mut s, mut p) = runs();
    s.levels.retain(|l| l.level <= 200);
    p.host.host_bound = Some(true);
    let opts = ReportOptions {
        scale_check: ScaleCheck::Disagree,
        ..ReportOptions::default()
    };
    assert_undetermined(
        s,
        p,
        &opts,
        &[
            Flag::StandardNotPastLimit,
            Flag::P2pHostBound,
            Flag::ScaleCheckDisagrees,
        ],
        "are bounds; the P2P run was host-bound",
    );
}

#[test]
fn an_agreeing_scale_check_and_an_unrecorded_host_flag_decide_as_before() {
    let (mut s, p) = runs();
    s.host.host_bound = None;
    let opts = ReportOptions {
        scale_check: ScaleCheck::Agree,
        ..ReportOptions::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let h = reports::compare(&s, &p, dir.path(), &opts).unwrap();
    let v: Vec<Verdict> = h.claims.iter().map(|c| c.verdict).collect();
    assert_eq!(
        v,
        [
            Verdict::NotReproduced,
            Verdict::Reproduced,
            Verdict::Reproduced
        ]
    );
    assert!(h.evidence.flags.is_empty());
    assert!(h.verdict.starts_with("P2P beat standard"), "{}", h.verdict);
    let md = read(dir.path(), "summary.md");
    assert!(md.contains("scale check: agree"), "{md}");
    assert!(
        md.contains("host-bound: standard not recorded, P2P no"),
        "{md}"
    );
}

#[test]
fn the_profile_hash_is_labelled_as_what_it_is() {
    let (s, p) = runs();
    let dir = tempfile::tempdir().unwrap();
    reports::compare(&s, &p, dir.path(), &ReportOptions::default()).unwrap();
    let html = read(dir.path(), "index.html");
    assert!(html.contains("profile hash (FNV-1a 64)"));
    assert!(!html.to_ascii_lowercase().contains("sha-256"));
}
