//! `--check-scale`: is what we measured the system, or the host?
//!
//! Model-time results must not depend on how fast model time runs on the
//! wall clock. The check reruns the smallest and largest level at a second
//! time scale and compares model-time figures; a disagreement beyond the
//! tolerance means timer lag or CPU starvation distorted the run.

use results::LevelResult;

/// Largest relative difference accepted between the two time scales.
pub const TOLERANCE: f64 = 0.10;

/// One figure of one level at two time scales.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    pub level: u32,
    pub metric: &'static str,
    pub first: f64,
    pub second: f64,
    /// |first − second| / max(|first|, |second|); 0 when both are 0.
    pub relative_difference: f64,
    pub within_tolerance: bool,
}

fn agreement(level: u32, metric: &'static str, first: f64, second: f64) -> Agreement {
    let scale = first.abs().max(second.abs());
    let rel = if scale == 0.0 {
        0.0
    } else {
        (first - second).abs() / scale
    };
    Agreement {
        level,
        metric,
        first,
        second,
        relative_difference: rel,
        within_tolerance: rel <= TOLERANCE,
    }
}

/// Compares the figures that the report's headline rests on.
pub fn compare_levels(first: &LevelResult, second: &LevelResult) -> Vec<Agreement> {
    let l = first.level;
    vec![
        agreement(
            l,
            "successful boots",
            f64::from(first.succeeded),
            f64::from(second.succeeded),
        ),
        agreement(l, "makespan (model s)", first.makespan_s, second.makespan_s),
        agreement(
            l,
            "boot p50 (model s)",
            first.boot_time.p50_s,
            second.boot_time.p50_s,
        ),
        agreement(
            l,
            "boot p95 (model s)",
            first.boot_time.p95_s,
            second.boot_time.p95_s,
        ),
    ]
}

/// A plain-text table of the agreements of one system.
pub fn table(label: &str, scales: (f64, f64), rows: &[Agreement]) -> String {
    let mut out = format!(
        "scale check, {label}: time scale {} vs {} (tolerance {:.0}%)\n",
        scales.0,
        scales.1,
        TOLERANCE * 100.0
    );
    for r in rows {
        out.push_str(&format!(
            "  level {:>5}  {:<20} {:>10.2} {:>10.2}  {:>5.1}%  {}\n",
            r.level,
            r.metric,
            r.first,
            r.second,
            r.relative_difference * 100.0,
            if r.within_tolerance {
                "agree"
            } else {
                "DISAGREE"
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_difference_and_tolerance() {
        let a = agreement(8, "m", 100.0, 91.0);
        assert!((a.relative_difference - 0.09).abs() < 1e-9);
        assert!(a.within_tolerance);
        let b = agreement(8, "m", 100.0, 85.0);
        assert!(!b.within_tolerance);
        let z = agreement(8, "m", 0.0, 0.0);
        assert_eq!(z.relative_difference, 0.0);
        assert!(z.within_tolerance);
        let t = table("p2p", (0.25, 0.5), &[a, b]);
        assert!(t.contains("agree") && t.contains("DISAGREE"), "{t}");
    }
}
