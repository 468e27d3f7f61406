//! Boot-time distributions as CDF points.
//!
//! Best source first: the run's HDR histogram (exact to 3 significant
//! digits), else the per-request records, else a piecewise-linear
//! approximation through min, p50, p90, p95, p99 and max.

use results::{LatencySummary, RequestRecord, HISTOGRAM_UNIT_PER_SECOND};

/// Where the points came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CdfSource {
    Histogram,
    Requests,
    Percentiles,
    None,
}

/// (model seconds, cumulative fraction) points, ascending, and their source.
pub fn points(
    summary: &LatencySummary,
    requests: &[RequestRecord],
) -> (Vec<(f64, f64)>, CdfSource) {
    if let Ok(h) = summary.histogram() {
        let total = h.len();
        if total > 0 {
            let mut pts = vec![(h.min() as f64 / HISTOGRAM_UNIT_PER_SECOND, 0.0)];
            let mut cum = 0u64;
            for v in h.iter_recorded() {
                cum += v.count_since_last_iteration();
                pts.push((
                    v.value_iterated_to() as f64 / HISTOGRAM_UNIT_PER_SECOND,
                    cum as f64 / total as f64,
                ));
            }
            return (thin(pts, 400), CdfSource::Histogram);
        }
    }
    let mut boots: Vec<f64> = requests
        .iter()
        .filter(|r| r.outcome.is_success())
        .filter_map(|r| r.boot_time_s)
        .filter(|v| v.is_finite())
        .collect();
    if !boots.is_empty() {
        boots.sort_by(f64::total_cmp);
        let n = boots.len() as f64;
        let mut pts = vec![(boots[0], 0.0)];
        pts.extend(
            boots
                .iter()
                .enumerate()
                .map(|(i, v)| (*v, (i + 1) as f64 / n)),
        );
        return (thin(pts, 400), CdfSource::Requests);
    }
    let s = summary;
    if s.count > 0 {
        let pts = vec![
            (s.min_s, 0.0),
            (s.p50_s, 0.5),
            (s.p90_s, 0.9),
            (s.p95_s, 0.95),
            (s.p99_s, 0.99),
            (s.max_s, 1.0),
        ];
        return (pts, CdfSource::Percentiles);
    }
    (vec![], CdfSource::None)
}

/// Keeps at most `max` points, always the first and the last.
fn thin(pts: Vec<(f64, f64)>, max: usize) -> Vec<(f64, f64)> {
    if pts.len() <= max || max < 2 {
        return pts;
    }
    let step = (pts.len() - 1) as f64 / (max - 1) as f64;
    (0..max)
        .map(|i| pts[((i as f64 * step).round() as usize).min(pts.len() - 1)])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_from_histogram_ends_at_one() {
        let mut h = results::new_histogram();
        for s in [1.0, 2.0, 2.0, 4.0] {
            h.record(results::to_histogram_value(s)).unwrap();
        }
        let sum = LatencySummary::from_histogram(&h);
        let (pts, src) = points(&sum, &[]);
        assert_eq!(src, CdfSource::Histogram);
        let last = pts.last().copied().unwrap();
        assert!((last.1 - 1.0).abs() < 1e-9);
        assert!((last.0 - 4.0).abs() < 0.01);
        assert!(pts.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn cdf_falls_back_to_percentiles() {
        let sum = LatencySummary {
            count: 10,
            min_s: 1.0,
            p50_s: 2.0,
            p90_s: 3.0,
            p95_s: 3.5,
            p99_s: 3.9,
            max_s: 4.0,
            ..Default::default()
        };
        let (pts, src) = points(&sum, &[]);
        assert_eq!(src, CdfSource::Percentiles);
        assert_eq!(pts.len(), 6);
        assert_eq!(points(&LatencySummary::default(), &[]).1, CdfSource::None);
    }
}
