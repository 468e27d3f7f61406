//! Golden tests: the fixture runs in tests/fixtures/ give hand-computed
//! numbers in summary.md, summary.csv and headline.json.
//!
//! The fixtures (levels 50, 100, 200, 400, 800):
//!
//! | level | standard ok/failed, makespan, mean boot | p2p ok/failed, makespan, mean boot |
//! |---|---|---|
//! | 50  | 50/0, 40 s, 20 s     | 50/0, 15 s, 8 s     |
//! | 100 | 92/8, 95 s, 45 s     | 100/0, 22 s, 10 s   |
//! | 200 | 120/80, 300 s, 150 s | 199/1, 45 s, 20 s   |
//! | 400 | 120/280, 320 s, 160 s| 396/4, 140 s, 60 s  |
//! | 800 | 100/700, 330 s, 170 s| 380/420, 200 s, 90 s|

use std::path::{Path, PathBuf};

use reports::{LimitRule, RatioKind, ReportOptions};

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

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn json_f64(v: &serde_json::Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number: {cur}"))
}

#[test]
fn default_limit_and_ratios_match_hand_computed_values() {
    let (s, p) = runs();
    let dir = tempfile::tempdir().unwrap();
    let h = reports::compare(&s, &p, dir.path(), &ReportOptions::default()).unwrap();

    // Limits: standard ties at 120 successes (levels 200 and 400); the
    // lower error rate (0.40 < 0.70) picks 200. P2P: 396 at level 400.
    assert_eq!(h.standard.limit_level, 200);
    assert_eq!(h.p2p.limit_level, 400);
    assert_eq!((h.standard.succeeded, h.p2p.succeeded), (120, 396));

    // Ratios: 396/120 = 3.3; 140/300 = 0.4667; 60/150 = 0.4; 0.01/0.40 = 0.025.
    let headline: serde_json::Value =
        serde_json::from_str(&read(dir.path(), "headline.json")).unwrap();
    assert!(close(json_f64(&headline, &["ratios", "vms", "value"]), 3.3));
    assert!(close(
        json_f64(&headline, &["ratios", "makespan", "value"]),
        140.0 / 300.0
    ));
    assert!(close(
        json_f64(&headline, &["ratios", "mean_boot_time", "value"]),
        0.4
    ));
    assert!(close(
        json_f64(&headline, &["ratios", "error_rate", "value"]),
        0.025
    ));

    // Per system at its limit.
    for (side, level, ok, mk, mean, p95, er) in [
        ("standard", 200.0, 120.0, 300.0, 150.0, 280.0, 0.4),
        ("p2p", 400.0, 396.0, 140.0, 60.0, 115.0, 0.01),
    ] {
        assert!(close(json_f64(&headline, &[side, "limit_level"]), level));
        assert!(close(json_f64(&headline, &[side, "succeeded"]), ok));
        assert!(close(json_f64(&headline, &[side, "makespan_s"]), mk));
        assert!(close(json_f64(&headline, &[side, "mean_boot_s"]), mean));
        assert!(close(json_f64(&headline, &[side, "p95_boot_s"]), p95));
        assert!(close(json_f64(&headline, &[side, "error_rate"]), er));
    }

    // Claims: 3.3 < 3.6 → not reproduced; 0.467 ≤ 0.6 → reproduced;
    // 0.025 < 1/3 → reproduced.
    let claims = headline["claims"].as_array().unwrap();
    let got: Vec<(&str, &str)> = claims
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["verdict"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("vms", "not_reproduced"),
            ("time", "reproduced"),
            ("error_rate", "reproduced")
        ]
    );
    // Both systems were taken past their limits, neither run is host-bound:
    // nothing flags the comparison.
    assert_eq!(headline["evidence"]["flags"], serde_json::json!([]));
    assert_eq!(headline["evidence"]["standard"]["past_limit"], true);
    assert_eq!(headline["evidence"]["p2p"]["past_limit"], true);
    assert_eq!(headline["evidence"]["scale_check"], "not_run");
    assert!(claims.iter().all(|c| c["flags"] == serde_json::json!([])));
    assert!(claims.iter().all(|c| c.get("reason").is_none()));
    assert!(close(claims[0]["measured"].as_f64().unwrap(), 3.3));
    assert_eq!(headline["claims_reproduced"], 2);
    assert_eq!(headline["claims_not_reproduced"], 1);
    assert_eq!(headline["claims_undetermined"], 0);
    assert_eq!(headline["p2p_beat_standard"], true);
    assert_eq!(headline["limit_rule"], "most-successful");

    // The in-memory headline is what was written.
    // (Floats may differ in the last bit after a JSON round trip.)
    let back: reports::Headline = serde_json::from_value(headline).unwrap();
    assert_eq!(back.claims.len(), h.claims.len());
    for (a, b) in back.claims.iter().zip(&h.claims) {
        assert_eq!(
            (&a.id, a.verdict, &a.measured_text),
            (&b.id, b.verdict, &b.measured_text)
        );
    }
    assert_eq!(back.standard.limit_level, h.standard.limit_level);

    // The text table the testbed prints.
    let t = h.table();
    assert!(t.contains("3.30× (396 vs 120)"), "{t}");
    assert!(t.contains("0.47× (140 s vs 300 s; mean boot 0.40×)"), "{t}");
    assert!(t.contains("0.025× (1.0% vs 40.0%)"), "{t}");
}

#[test]
fn summary_csv_rows_match() {
    let (s, p) = runs();
    let dir = tempfile::tempdir().unwrap();
    reports::render(&[s, p], dir.path(), &ReportOptions::default()).unwrap();
    let csv = read(dir.path(), "summary.csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], reports::tables::CSV_HEADER);
    assert_eq!(lines.len(), 1 + 5 + 5, "{csv}");
    // 92/95 = 0.968 per s; 8/100 = 0.0800.
    assert_eq!(
        lines[2],
        "standard,standard,100,false,100,92,8,0.0800,95.000,0.968,45.000,42.000,70.000,80.000,90.000,93.000,5,3,0,0,0,,0,,,"
    );
    // The standard limit: 120/300 = 0.400 per s.
    assert_eq!(
        lines[3],
        "standard,standard,200,true,200,120,80,0.4000,300.000,0.400,150.000,140.000,250.000,280.000,295.000,298.000,30,40,10,0,0,,0,,,"
    );
    assert!(lines[4].starts_with("standard,standard,400,false,400,120,280,0.7000,"));
    // The p2p limit: 396/140 = 2.829 per s, 120 placed remotely.
    assert_eq!(
        lines[9],
        "p2p,p2p,400,true,400,396,4,0.0100,140.000,2.829,60.000,55.000,100.000,115.000,130.000,138.000,2,2,0,0,0,120,0,,,"
    );
    assert_eq!(csv.matches(",true,").count(), 2);
}

#[test]
fn summary_md_tables_match() {
    let (s, p) = runs();
    let dir = tempfile::tempdir().unwrap();
    reports::render(&[s, p], dir.path(), &ReportOptions::default()).unwrap();
    let md = read(dir.path(), "summary.md");
    for line in [
        "| standard | 200 | 120 | 300.000 | 150.000 | 280.000 | 40.0% |",
        "| p2p | 400 | 396 | 140.000 | 60.000 | 115.000 | 1.0% |",
        "| 4× more VMs | VMs P2P/standard ≥ 3.6 | 3.30× (396 vs 120) | not reproduced |",
        "| about half the time | makespan P2P/standard ≤ 0.6 | 0.47× (140 s vs 300 s; mean boot 0.40×) | reproduced |",
        "| error rate below one third | error rate P2P/standard < 1/3 | 0.025× (1.0% vs 40.0%) | reproduced |",
        "| **200** (limit) | 200 | 120 | 80 | 40.0% | 300.000 | 0.400 | 150.000 | 140.000 | 280.000 | 295.000 | 298.000 |",
        "| **400** (limit) | 400 | 396 | 4 | 1.0% | 140.000 | 2.829 | 60.000 | 55.000 | 115.000 | 130.000 | 138.000 |",
        "| 800 | 800 | 380 | 420 | 52.5% | 200.000 | 1.900 | 90.000 | 85.000 | 170.000 | 190.000 | 198.000 |",
    ] {
        assert!(md.contains(line), "missing {line:?} in\n{md}");
    }
    assert!(md.contains("**Performance limit** (`most-successful`)"));
    assert!(md.contains("- seed: `42`"));
}

#[test]
fn max_throughput_gives_an_undefined_error_ratio() {
    // Standard: 50/40 = 1.25/s at 50 is its best; P2P: 100/22 = 4.545/s at 100.
    // Both error rates are 0 there: 0/0 is undefined, the claim fails.
    let (s, p) = runs();
    let dir = tempfile::tempdir().unwrap();
    let opts = ReportOptions {
        limit: LimitRule::MaxThroughput,
        ..ReportOptions::default()
    };
    let h = reports::compare(&s, &p, dir.path(), &opts).unwrap();
    assert_eq!((h.standard.limit_level, h.p2p.limit_level), (50, 100));
    assert_eq!(h.ratios.vms.value, Some(2.0));
    assert!(close(h.ratios.makespan.value.unwrap(), 22.0 / 40.0));
    assert_eq!(h.ratios.error_rate.kind, RatioKind::Undefined);
    assert_eq!(h.ratios.error_rate.value, None);
    let c: Vec<bool> = h.claims.iter().map(|c| c.reproduced()).collect();
    assert_eq!(c, [false, true, false]);
    assert!(h.claims[2]
        .note
        .as_deref()
        .unwrap_or("")
        .contains("both error rates are 0"));
    let json = read(dir.path(), "headline.json");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v["ratios"]["error_rate"]["value"].is_null());
    assert_eq!(v["ratios"]["error_rate"]["kind"], "undefined");
    assert_eq!(v["limit_rule"], "max-throughput");
}

#[test]
fn error_threshold_rule_and_an_infinite_ratio() {
    // error-below:0.05 → standard 50 (0%; 100 has 8%), P2P 400 (1%).
    // VMs 396/50 = 7.92 ✓, makespan 140/40 = 3.5 ✗, error 0.01/0 = ∞ ✗.
    let (s, p) = runs();
    let dir = tempfile::tempdir().unwrap();
    let opts = ReportOptions {
        limit: LimitRule::LastBelowErrorRate(0.05),
        ..ReportOptions::default()
    };
    let h = reports::compare(&s, &p, dir.path(), &opts).unwrap();
    assert_eq!((h.standard.limit_level, h.p2p.limit_level), (50, 400));
    assert!(close(h.ratios.vms.value.unwrap(), 7.92));
    assert!(close(h.ratios.makespan.value.unwrap(), 3.5));
    assert_eq!(h.ratios.error_rate.kind, RatioKind::Infinite);
    let c: Vec<bool> = h.claims.iter().map(|c| c.reproduced()).collect();
    assert_eq!(c, [true, false, false]);
    assert!(
        !h.p2p_beat_standard,
        "P2P's error rate is higher at these limits"
    );
}

#[test]
fn render_finds_the_pair_by_kind_and_skips_the_headline_otherwise() {
    let (s, p) = runs();
    let dir = tempfile::tempdir().unwrap();
    // Order does not matter: p2p first.
    let h = reports::render(
        &[p.clone(), s.clone()],
        dir.path(),
        &ReportOptions::default(),
    )
    .unwrap()
    .expect("one standard + one p2p gives a headline");
    assert_eq!(h.standard.label, "standard");
    assert!(dir.path().join("headline.json").exists());

    // One run: no headline, and no stale headline.json left behind.
    let none = reports::render(
        std::slice::from_ref(&p),
        dir.path(),
        &ReportOptions::default(),
    )
    .unwrap();
    assert!(none.is_none());
    assert!(!dir.path().join("headline.json").exists());
    let csv = read(dir.path(), "summary.csv");
    assert_eq!(csv.lines().count(), 1 + 5);
    assert!(read(dir.path(), "index.html").contains("No headline"));

    // Two p2p runs: labels made unique, no headline.
    let none = reports::render(&[p.clone(), p], dir.path(), &ReportOptions::default()).unwrap();
    assert!(none.is_none());
    assert!(
        read(dir.path(), "summary.csv").contains("\"p2p (2)\"")
            || read(dir.path(), "summary.csv").contains("p2p (2),")
    );
}

#[test]
fn every_chart_is_written_and_inlined() {
    let (s, p) = runs();
    let dir = tempfile::tempdir().unwrap();
    reports::render(&[s, p], dir.path(), &ReportOptions::default()).unwrap();
    let html = read(dir.path(), "index.html");
    let files = [
        "boot-time.svg",
        "successful-vms.svg",
        "throughput.svg",
        "errors-standard.svg",
        "errors-p2p.svg",
        "boot-cdf.svg",
        "placement-p2p.svg",
        "remote-share-p2p.svg",
    ];
    for f in files {
        let svg = read(dir.path(), f);
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{f}"
        );
        assert!(svg.contains("<path") || svg.contains("<rect"), "{f}");
    }
    assert_eq!(html.matches("<svg").count(), files.len());
    // Self-contained: no script, no external resource.
    assert!(!html.contains("<script"));
    assert!(!html.contains("<link"));
    assert!(!html.contains("src="));
    assert!(!html.contains("@import"));
    assert!(!html.contains("url("));
}

#[test]
fn warnings_and_escaping() {
    let (mut s, mut p) = runs();
    s.complete = false;
    s.incomplete_reason = Some("interrupted <by user>".into());
    p.host.host_bound = Some(true);
    p.levels[3].audit.clean = false;
    p.levels[3].audit.leftovers = vec!["srv-1".into(), "srv-2".into()];
    p.system.label = "p2p <script>alert(1)</script>".into();
    let dir = tempfile::tempdir().unwrap();
    let h = reports::render(&[s, p], dir.path(), &ReportOptions::default())
        .unwrap()
        .expect("kind still says p2p");
    assert!(h.p2p.label.contains("<script>"));
    let html = read(dir.path(), "index.html");
    assert_eq!(
        html.matches("class=\"banner\"").count(),
        3,
        "incomplete, host-bound, leftovers"
    );
    assert!(html.contains("interrupted &lt;by user&gt;"));
    assert!(html.contains("level 400 (2 leftovers)"));
    assert!(!html.contains("<script>"));
    assert!(html.contains("p2p &lt;script&gt;alert(1)&lt;/script&gt;"));
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "svg") {
            let svg = std::fs::read_to_string(&path).unwrap();
            assert!(!svg.contains("<script>"), "{}", path.display());
        }
    }
    let md = read(dir.path(), "summary.md");
    assert!(md.contains("> **Warning:** standard: the run is incomplete"));
}

#[test]
fn a_run_without_a_limit_is_still_reported() {
    // Interrupted before its first level: no levels, so no limit.
    let (mut s, p) = runs();
    s.levels.clear();
    s.complete = false;
    s.incomplete_reason = Some("testbed crashed".into());
    let dir = tempfile::tempdir().unwrap();
    let h = reports::render(
        &[s.clone(), p.clone()],
        dir.path(),
        &ReportOptions::default(),
    )
    .unwrap();
    assert!(h.is_none(), "no headline without both limits");
    let html = read(dir.path(), "index.html");
    assert!(html.contains("the run is incomplete (testbed crashed)"));
    assert!(html.contains("the run has no levels"));
    assert!(html.contains("no level qualifies as the limit"));
    assert_eq!(read(dir.path(), "summary.csv").lines().count(), 1 + 5);

    // compare() insists on both limits and names the system and rule.
    let err = reports::compare(&s, &p, dir.path(), &ReportOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("\"standard\"") && msg.contains("most-successful"),
        "{msg}"
    );

    // error-below:0.001: the standard system has level 50 (0%); P2P too.
    // With the standard's level 50 failing, nothing qualifies for it.
    let (mut s, p) = runs();
    s.levels[0].failed = 1;
    s.levels[0].error_rate = 0.02;
    let opts = ReportOptions {
        limit: LimitRule::LastBelowErrorRate(0.001),
        ..ReportOptions::default()
    };
    let err = reports::compare(&s, &p, dir.path(), &opts).unwrap_err();
    assert!(err.to_string().contains("error-below:0.001"), "{err}");
    let none = reports::render(&[s, p], dir.path(), &opts).unwrap();
    assert!(none.is_none());
    assert!(read(dir.path(), "index.html").contains("no level qualifies as the performance limit"));
}

#[test]
fn rare_error_causes_are_merged_and_messages_escaped() {
    let (mut s, _) = runs();
    let l = &mut s.levels[4];
    l.errors
        .retain(|e| e.outcome != results::Outcome::ErrorState);
    // 150 ERROR-state failures over 12 distinct fault messages.
    for i in 0..12u32 {
        l.errors.push(results::ErrorCount {
            outcome: results::Outcome::ErrorState,
            message: format!("Fault {i}: <odd> & broke"),
            count: if i < 11 { 12 } else { 18 },
        });
    }
    let dir = tempfile::tempdir().unwrap();
    reports::render(&[s], dir.path(), &ReportOptions::default()).unwrap();
    let svg = read(dir.path(), "errors-standard.svg");
    assert!(svg.contains(reports::charts::OTHER_CAUSES));
    assert!(svg.contains("Fault 11: &lt;odd&gt; &amp; broke"));
    assert!(!svg.contains("<odd>"));
    // Legend entries: at most MAX_CAUSES distinct swatches.
    let legend_swatches = svg.matches("width=\"12.0\" height=\"12.0\"").count();
    assert!(
        legend_swatches <= reports::charts::MAX_CAUSES,
        "{legend_swatches}"
    );
}

#[test]
fn a_system_never_saturated_is_flagged() {
    // Full fixtures: both systems fail somewhere past their limit.
    let (s, p) = runs();
    let dir = tempfile::tempdir().unwrap();
    reports::render(
        &[s.clone(), p.clone()],
        dir.path(),
        &ReportOptions::default(),
    )
    .unwrap();
    assert!(!read(dir.path(), "index.html").contains("not taken past its limit"));

    // Only levels 50 and 100: P2P boots all 100 at its largest level, so
    // its "limit" is only a lower bound. Standard already fails at 100, but
    // 100 is its largest level too: a larger burst might boot more (level
    // 200 does: 120), so it is not past its limit either.
    let (mut s, mut p) = (s, p);
    s.levels.retain(|l| l.level <= 100);
    p.levels.retain(|l| l.level <= 100);
    let dir = tempfile::tempdir().unwrap();
    reports::render(&[s, p], dir.path(), &ReportOptions::default()).unwrap();
    let html = read(dir.path(), "index.html");
    assert_eq!(
        html.matches("class=\"banner\">⚠ ").count(),
        2,
        "both systems"
    );
    assert!(html.contains(
        "p2p: not taken past its limit: its limit is its largest level (100), where every boot succeeded"
    ));
    assert!(html
        .contains("standard: not taken past its limit: its limit is its largest level (100), so"));
    let md = read(dir.path(), "summary.md");
    assert!(md.contains("> **Warning:** p2p: not taken past its limit"));
}
