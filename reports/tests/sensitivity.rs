//! The sensitivity report from the compare fixtures: the tornado order
//! follows how far each parameter moves a ratio, the claim map follows the
//! verdicts, and every file is written.

use std::path::{Path, PathBuf};

use reports::sensitivity::{self, ClaimRatio, ParameterInfo, RunInfo, Sensitivity, SettingResult};
use reports::{Headline, Ratio, ReportOptions, Verdict};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn baseline() -> Headline {
    let s = reports::load(&fixture("standard.json")).expect("standard fixture");
    let p = reports::load(&fixture("p2p.json")).expect("p2p fixture");
    let dir = tempfile::tempdir().expect("temp dir");
    reports::compare(&s, &p, dir.path(), &ReportOptions::default()).expect("headline")
}

/// The baseline with the VMs ratio set to `vms` (and its claim judged on it).
fn with_vms(base: &Headline, vms: f64) -> Headline {
    let mut h = base.clone();
    h.ratios.vms = Ratio::new(vms * h.ratios.vms.standard, h.ratios.vms.standard);
    for c in &mut h.claims {
        if c.id == "vms" {
            c.measured = h.ratios.vms.value;
            c.criterion_met = vms >= 3.6;
            c.verdict = if c.criterion_met {
                Verdict::Reproduced
            } else {
                Verdict::NotReproduced
            };
        }
    }
    h
}

fn setting(p: &str, label: &str, h: Option<Headline>) -> SettingResult {
    SettingResult {
        parameter: p.into(),
        label: label.into(),
        value: label.into(),
        baseline: label == "default",
        run_dir: format!("runs/{p}-{label}"),
        error: h.is_none().then(|| "the comparison failed".to_string()),
        headline: h,
    }
}

fn sample() -> Sensitivity {
    let base = baseline();
    let b = base.ratios.vms.value.expect("finite baseline");
    let mut settings = Vec::new();
    // small: ±0.1; large: −2 / +3; failing: one run failed.
    for (p, lo, hi) in [("small", b - 0.1, b + 0.1), ("large", b - 2.0, b + 3.0)] {
        settings.push(setting(p, "low", Some(with_vms(&base, lo))));
        settings.push(setting(p, "default", Some(base.clone())));
        settings.push(setting(p, "high", Some(with_vms(&base, hi))));
    }
    settings.push(setting("failing", "low", None));
    settings.push(setting("failing", "default", Some(base.clone())));
    settings.push(setting("failing", "high", Some(with_vms(&base, b + 0.5))));
    Sensitivity {
        schema: sensitivity::SCHEMA.into(),
        schema_version: sensitivity::SCHEMA_VERSION,
        run: RunInfo {
            cloudlets: 4,
            backend: "sim".into(),
            seed: 1,
            profile: "openstack-2017".into(),
            limit_rule: "most-successful".into(),
            values: 3,
            comparisons: 7,
            command_line: vec!["testbed".into(), "sensitivity".into()],
        },
        parameters: ["small", "large", "failing"]
            .iter()
            .map(|n| ParameterInfo {
                name: (*n).into(),
                description: format!("{n} parameter"),
                changes: format!("x.{n}"),
                values: vec!["low".into(), "default".into(), "high".into()],
                source: "assumed".into(),
            })
            .collect(),
        baseline: Some(base),
        settings,
    }
}

#[test]
fn tornado_sorts_by_how_far_a_parameter_moves_the_ratio() {
    let s = sample();
    let bars = sensitivity::tornado(&s, ClaimRatio::Vms);
    let names: Vec<&str> = bars.iter().map(|b| b.parameter.as_str()).collect();
    assert_eq!(names, ["large", "failing", "small"]);
    assert!((bars[0].swing - 5.0).abs() < 1e-9, "{}", bars[0].swing);
    assert!((bars[2].swing - 0.2).abs() < 1e-9, "{}", bars[2].swing);
    // The failed setting is shown, not plotted.
    assert_eq!(bars[1].points[0].x, None);
    assert_eq!(bars[1].points[0].shown, "failed");
    // The makespan ratio is the same everywhere: no swing at all.
    assert!(sensitivity::tornado(&s, ClaimRatio::Makespan)
        .iter()
        .all(|b| b.swing == 0.0));
}

#[test]
fn an_infinite_ratio_is_off_scale_and_sorts_first() {
    let mut s = sample();
    let base = s.baseline.clone().expect("baseline");
    let mut inf = base.clone();
    inf.ratios.vms = Ratio::new(10.0, 0.0);
    s.settings[0] = setting("small", "low", Some(inf));
    let bars = sensitivity::tornado(&s, ClaimRatio::Vms);
    assert_eq!(bars[0].parameter, "small");
    assert!(bars[0].off_scale);
    assert_eq!(bars[0].points[0].shown, "∞");
}

#[test]
fn writes_csv_html_tornado_and_claim_map() {
    let s = sample();
    let dir = tempfile::tempdir().expect("temp dir");
    sensitivity::write(&s, dir.path()).expect("writes");
    for f in [
        "index.html",
        "sensitivity.csv",
        "summary.md",
        "sensitivity.json",
        "tornado-vms.svg",
        "tornado-makespan.svg",
        "tornado-error-rate.svg",
        "claim-map.svg",
    ] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    let csv = std::fs::read_to_string(dir.path().join("sensitivity.csv")).expect("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 9, "{csv}");
    let header: Vec<&str> = lines[0].split(',').collect();
    for col in [
        "parameter",
        "value",
        "vms_ratio",
        "makespan_ratio",
        "error_rate_ratio",
        "vms_verdict",
        "standard_limit_level",
        "p2p_limit_level",
    ] {
        assert!(header.contains(&col), "{col}");
    }
    assert!(
        lines.iter().all(|l| l.split(',').count() == header.len()),
        "{csv}"
    );
    // large high: VMs ratio b + 3 ≥ 3.6 in the fixture → reproduced.
    let large_high = lines
        .iter()
        .find(|l| l.starts_with("large,high,"))
        .expect("row");
    let vms: f64 = large_high.split(',').nth(4).unwrap().parse().unwrap();
    let b = s.baseline.as_ref().unwrap().ratios.vms.value.unwrap();
    assert!((vms - (b + 3.0)).abs() < 1e-3, "{vms}");
    assert!(lines
        .iter()
        .any(|l| l.starts_with("failing,low,") && l.ends_with("the comparison failed")));

    let html = std::fs::read_to_string(dir.path().join("index.html")).expect("html");
    assert!(html.contains("Claim map"));
    assert!(html.contains("Tornado"));
    assert_eq!(
        html.matches("<svg").count(),
        4,
        "three tornados and the map"
    );
    assert!(!html.contains("<script"), "no script");
    assert!(
        !html.contains("http://")
            || html.matches("http://").count()
                == html.matches("http://www.w3.org/2000/svg").count(),
        "no external URL"
    );
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("sensitivity.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["schema"], "p2pstack/sensitivity");
    let back: Sensitivity = serde_json::from_value(json).expect("round trip");
    assert_eq!(back.parameters, s.parameters);
    assert_eq!(back.settings.len(), s.settings.len());
    assert_eq!(back.settings[8].error, s.settings[8].error);
}
