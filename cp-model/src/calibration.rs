//! The published points the model is held against, each with a stated
//! tolerance, and the model's value at that point.
//!
//! `cargo run --release -p cp-model --example calibrate` prints this table
//! (section "Calibration check") for docs/performance-model.md, and the test
//! `published_points_hold_within_their_tolerances` fails when a change to
//! the model or the profile moves a point out of its tolerance.
//!
//! Tolerances were stated before the check was run: ±10 % for the points a
//! parameter was fitted to, ±25 % for published runs the model was not fitted
//! to (they ran three controllers on other hardware, the model one
//! controller), ±20 % for the fitted delete time.

use crate::error::ModelError;
use crate::profile::Profile;
use crate::simulate::{simulate_with, Polling, SimOptions, Workload};
use crate::types::{NodeSpec, Resources};

/// m1.tiny (DevStack sizes), the flavor of the published Rally runs.
pub const TINY: Resources = Resources {
    vcpus: 1,
    ram_mb: 512,
    disk_gb: 1,
};

/// One published figure, the model's value and whether it is within tolerance.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckRow {
    /// The run and the measure, e.g. `17 computes, concurrency 5: mean boot`.
    pub point: String,
    /// Where the figure comes from (calibration.md's wording).
    pub source: String,
    pub published: f64,
    /// Relative tolerance (0.1 = ±10 %).
    pub tolerance: f64,
    /// `fit` (a parameter was fitted to it) or `check` (not fitted).
    pub kind: &'static str,
    pub model: f64,
}

impl CheckRow {
    pub fn deviation(&self) -> f64 {
        (self.model - self.published) / self.published
    }

    pub fn holds(&self) -> bool {
        self.model.is_finite() && self.deviation().abs() <= self.tolerance + 1e-12
    }
}

/// `k` compute nodes of the profile's hardware.
pub fn nodes(profile: &Profile, k: usize) -> Vec<NodeSpec> {
    (0..k)
        .map(|i| profile.hardware.node(format!("compute-{i}")))
        .collect()
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

/// Nearest-rank percentile of an unsorted sample.
fn pct(xs: &[f64], p: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Every published point against the model (`profile`, `seed`).
pub fn check(profile: &Profile, seed: u64) -> Result<Vec<CheckRow>, ModelError> {
    let rally = SimOptions {
        polling: Some(Polling::rally()),
        ..SimOptions::default()
    };
    let mut rows = Vec::new();
    let mut row = |point: String, source: &str, published: f64, tolerance: f64, kind, model| {
        rows.push(CheckRow {
            point,
            source: source.to_string(),
            published,
            tolerance,
            kind,
            model,
        })
    };
    // A. Concurrency 5, 400 boots, seen through Rally's polling.
    for (k, source, points) in [
        (
            17usize,
            "Rally user story (Mirantis), 3 controllers + 17 computes",
            vec![
                ("mean", 8.0, 0.10, "fit"),
                ("p90", 9.6, 0.10, "fit"),
                ("max", 14.1, 0.10, "fit"),
            ],
        ),
        (
            200,
            "perf-docs Mitaka, 3 controllers, 200 computes",
            vec![("mean", 12.0, 0.25, "check"), ("p90", 12.9, 0.25, "check")],
        ),
        (
            1000,
            "perf-docs Mitaka, 3 controllers, 1000 computes",
            vec![("mean", 13.1, 0.25, "check"), ("p90", 14.1, 0.25, "check")],
        ),
    ] {
        let w = Workload::Closed {
            concurrency: 5,
            total: 400,
            flavor: TINY,
            delete_after: false,
        };
        let r = simulate_with(profile.clone(), nodes(profile, k), seed, &w, &rally)?;
        let ok: Vec<f64> = r
            .outcomes
            .iter()
            .filter(|o| o.succeeded())
            .filter_map(|o| o.duration())
            .collect();
        for (measure, published, tol, kind) in points {
            let model = match measure {
                "mean" => mean(&ok),
                "p90" => pct(&ok, 90.0),
                _ => ok.iter().copied().fold(f64::NAN, f64::max),
            };
            row(
                format!("{k} computes, concurrency 5, 400 boots: {measure} boot (s)"),
                source,
                published,
                tol,
                kind,
                model,
            );
        }
    }
    // B. Boot + delete at concurrency 4 on 17 computes.
    let w = Workload::Closed {
        concurrency: 4,
        total: 400,
        flavor: TINY,
        delete_after: true,
    };
    let r = simulate_with(profile.clone(), nodes(profile, 17), seed, &w, &rally)?;
    let both: Vec<f64> = r
        .outcomes
        .iter()
        .filter_map(|o| o.deleted_at.map(|d| d - o.posted_at))
        .collect();
    let del: Vec<f64> = r
        .outcomes
        .iter()
        .filter_map(|o| Some(o.deleted_at? - o.observed_at.or(o.ended_at)?))
        .collect();
    row(
        "17 computes, concurrency 4: delete (s)".into(),
        "perf-docs (1000 computes): delete ≈ 2.5 s",
        2.5,
        0.20,
        "fit",
        mean(&del),
    );
    row(
        "17 computes, concurrency 4: boot+delete median (s)".into(),
        "perf-docs reliability baseline, concurrency 4",
        8.6,
        0.25,
        "check",
        pct(&both, 50.0),
    );
    Ok(rows)
}

/// The check as a Markdown table.
pub fn markdown(rows: &[CheckRow]) -> String {
    let mut out = String::from(
        "| point | source | published | tolerance | kind | model | deviation | holds |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | ±{:.0}% | {} | {:.2} | {:+.1}% | {} |\n",
            r.point,
            r.source,
            r.published,
            r.tolerance * 100.0,
            r.kind,
            r.model,
            r.deviation() * 100.0,
            if r.holds() { "yes" } else { "**no**" }
        ));
    }
    out
}
