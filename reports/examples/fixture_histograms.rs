//! Fills the `boot_time.histogram` of each level of the test fixtures with
//! an HDR histogram whose samples follow the level's hand-written
//! percentiles (piecewise linear through min, p50, p90, p95, p99, max).
//! The hand-written summary numbers are left as they are.
//!
//! `cargo run -p reports --example fixture_histograms -- reports/tests/fixtures/*.json`

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    for path in std::env::args().skip(1) {
        let text = std::fs::read_to_string(&path).with_context(|| path.clone())?;
        let mut run: serde_json::Value =
            serde_json::from_str(&text).with_context(|| path.clone())?;
        let levels = run["levels"]
            .as_array_mut()
            .with_context(|| format!("{path}: no levels"))?;
        for level in levels {
            let b = &level["boot_time"];
            let get = |k: &str| b[k].as_f64().unwrap_or(0.0);
            let count = b["count"].as_u64().unwrap_or(0);
            let knots = [
                (0.0, get("min_s")),
                (0.5, get("p50_s")),
                (0.9, get("p90_s")),
                (0.95, get("p95_s")),
                (0.99, get("p99_s")),
                (1.0, get("max_s")),
            ];
            let mut h = results::new_histogram();
            for i in 0..count {
                let q = (i as f64 + 0.5) / count as f64;
                let w = knots
                    .windows(2)
                    .find(|w| q <= w[1].0)
                    .unwrap_or(&knots[4..6]);
                let t = (q - w[0].0) / (w[1].0 - w[0].0);
                let v = w[0].1 + t * (w[1].1 - w[0].1);
                h.record(results::to_histogram_value(v))?;
            }
            let encoded = results::LatencySummary::from_histogram(&h).histogram;
            level["boot_time"]["histogram"] = serde_json::Value::String(encoded);
        }
        std::fs::write(&path, serde_json::to_string_pretty(&run)? + "\n")?;
        println!("{path}: histograms written");
    }
    Ok(())
}
