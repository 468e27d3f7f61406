//! `testbed scale` end to end on the sim backend: one row per (N, system)
//! in the sweep's one CSV, a chart per metric and a report per step.

mod common;

#[test]
fn a_tiny_sweep_writes_one_csv_with_every_n_and_system_and_the_charts() {
    let out = tempfile::tempdir().expect("tempdir");
    let stdout = common::testbed(
        &[
            "scale",
            "--backend",
            "sim",
            "--ns",
            "2,4",
            "--boots-per-compute",
            "2",
            "--quiet",
        ],
        out.path(),
    );
    let csv = std::fs::read_to_string(out.path().join("scale.csv")).expect("scale.csv");
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let keys: Vec<(&str, &str, &str)> = rows.iter().map(|r| (r[0], r[1], r[2])).collect();
    assert_eq!(
        keys,
        [
            ("2", "standard", "4"),
            ("2", "p2p", "4"),
            ("4", "standard", "8"),
            ("4", "p2p", "8"),
        ],
        "{csv}"
    );
    // Every boot of so small a burst succeeds on either system.
    for r in &rows {
        assert_eq!(r[3], r[2], "not every boot ACTIVE: {csv}");
    }
    // The table goes to stdout too, with where the report is.
    assert!(stdout.contains(csv.as_str()), "{stdout}");
    assert!(stdout.contains("index.html"), "{stdout}");
    // The sweep's only CSV: a step's rows are in scale.csv, not repeated.
    let mut csvs = Vec::new();
    let mut dirs = vec![out.path().to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "csv") {
                csvs.push(p);
            }
        }
    }
    assert_eq!(csvs, [out.path().join("scale.csv")]);
    for chart in [
        "scale-makespan.svg",
        "scale-error-rate.svg",
        "scale-boot-p95.svg",
    ] {
        let svg = std::fs::read_to_string(out.path().join(chart)).expect(chart);
        assert!(svg.starts_with("<svg"), "{chart}");
    }
    for n in [2, 4] {
        let step = out.path().join(format!("n-{n}"));
        assert!(step.join("index.html").is_file(), "no report for N = {n}");
        assert!(step.join("results/p2p.json").is_file());
    }
}
