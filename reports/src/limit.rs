//! The performance limit of a system: the one level of a sweep at which the
//! system is compared.
//!
//! The default ([`LimitRule::MostSuccessful`]) is the level with the most
//! servers that reached ACTIVE; ties go to the lower error rate, then to the
//! lower concurrency (the cheaper way to get the same result). Other rules:
//!
//! - [`LimitRule::MaxThroughput`]: the most successful boots per model second
//!   of makespan; same tie-breaks.
//! - [`LimitRule::LastBelowErrorRate`]: the highest concurrency whose error
//!   rate is at most the threshold (e.g. `error-below:0.1`).

use std::fmt;
use std::str::FromStr;

use results::LevelResult;

#[derive(Debug, Clone, PartialEq, Default)]
pub enum LimitRule {
    /// Most successful boots; tie-break lower error rate, then lower level.
    #[default]
    MostSuccessful,
    /// Highest throughput; tie-break lower error rate, then lower level.
    MaxThroughput,
    /// Highest level whose error rate is ≤ the threshold (a fraction).
    LastBelowErrorRate(f64),
}

impl LimitRule {
    /// One sentence defining the limit, for the report itself.
    pub fn definition(&self) -> String {
        match self {
            LimitRule::MostSuccessful => {
                "A system's performance limit is the concurrency level at which the most \
                 servers reached ACTIVE; a tie goes to the level with the lower error rate, \
                 then to the lower concurrency."
                    .to_string()
            }
            LimitRule::MaxThroughput => {
                "A system's performance limit is the concurrency level with the highest \
                 throughput (servers reaching ACTIVE per model second of makespan); a tie goes \
                 to the level with the lower error rate, then to the lower concurrency."
                    .to_string()
            }
            LimitRule::LastBelowErrorRate(t) => format!(
                "A system's performance limit is the highest concurrency level whose error rate \
                 (failed / requested) is at most {}.",
                crate::text::pct(*t)
            ),
        }
    }
}

impl fmt::Display for LimitRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitRule::MostSuccessful => f.write_str("most-successful"),
            LimitRule::MaxThroughput => f.write_str("max-throughput"),
            LimitRule::LastBelowErrorRate(t) => write!(f, "error-below:{t}"),
        }
    }
}

impl FromStr for LimitRule {
    type Err = String;

    /// `most-successful`, `max-throughput` or `error-below:F` (F a fraction
    /// in [0, 1], e.g. `error-below:0.05`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "most-successful" => Ok(LimitRule::MostSuccessful),
            "max-throughput" => Ok(LimitRule::MaxThroughput),
            _ => {
                let Some(t) = s.strip_prefix("error-below:") else {
                    return Err(format!(
                        "unknown limit rule {s:?} (expected most-successful, max-throughput or error-below:FRACTION)"
                    ));
                };
                match t.parse::<f64>() {
                    Ok(v) if (0.0..=1.0).contains(&v) => Ok(LimitRule::LastBelowErrorRate(v)),
                    _ => Err(format!(
                        "error-below needs a fraction between 0 and 1, got {t:?}"
                    )),
                }
            }
        }
    }
}

/// Index into `levels` (sorted by level) of the limit, `None` when no level
/// qualifies (no levels, or none under the error threshold).
pub fn select(levels: &[&LevelResult], rule: &LimitRule) -> Option<usize> {
    // Compare (primary desc, error rate asc, level asc); NaN sorts last.
    let better = |a: (f64, f64, u32), b: (f64, f64, u32)| -> bool {
        let key = |x: f64| if x.is_nan() { f64::NEG_INFINITY } else { x };
        if key(a.0) != key(b.0) {
            return key(a.0) > key(b.0);
        }
        let er = |x: f64| if x.is_nan() { f64::INFINITY } else { x };
        if er(a.1) != er(b.1) {
            return er(a.1) < er(b.1);
        }
        a.2 < b.2
    };
    match rule {
        LimitRule::MostSuccessful | LimitRule::MaxThroughput => {
            let primary = |l: &LevelResult| match rule {
                LimitRule::MaxThroughput => l.throughput_per_s,
                _ => f64::from(l.succeeded),
            };
            let mut best: Option<usize> = None;
            for (i, l) in levels.iter().enumerate() {
                let cand = (primary(l), l.error_rate, l.level);
                match best {
                    None => best = Some(i),
                    Some(b) => {
                        let lb = levels[b];
                        if better(cand, (primary(lb), lb.error_rate, lb.level)) {
                            best = Some(i);
                        }
                    }
                }
            }
            best
        }
        LimitRule::LastBelowErrorRate(t) => levels
            .iter()
            .enumerate()
            .filter(|(_, l)| l.error_rate <= *t)
            .max_by_key(|(_, l)| l.level)
            .map(|(i, _)| i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(level: u32, succeeded: u32, failed: u32, makespan: f64) -> LevelResult {
        LevelResult::burst_summary(level, succeeded, failed, makespan)
    }

    #[test]
    fn most_successful_breaks_ties_by_error_rate_then_level() {
        // 120 successes twice: 200 (error 0.4) beats 400 (error 0.7).
        let ls = [
            level(100, 92, 8, 95.0),
            level(200, 120, 80, 300.0),
            level(400, 120, 280, 320.0),
        ];
        let refs: Vec<&LevelResult> = ls.iter().collect();
        assert_eq!(select(&refs, &LimitRule::MostSuccessful), Some(1));
        // Equal successes and error rates: the lower level wins.
        let ls = [level(10, 10, 0, 5.0), level(20, 10, 0, 9.0)];
        let refs: Vec<&LevelResult> = ls.iter().collect();
        assert_eq!(select(&refs, &LimitRule::MostSuccessful), Some(0));
    }

    #[test]
    fn max_throughput_and_error_threshold() {
        let ls = [
            level(50, 50, 0, 40.0),     // 1.25/s, 0%
            level(100, 92, 8, 95.0),    // 0.968/s, 8%
            level(200, 120, 80, 300.0), // 0.4/s, 40%
        ];
        let refs: Vec<&LevelResult> = ls.iter().collect();
        assert_eq!(select(&refs, &LimitRule::MaxThroughput), Some(0));
        assert_eq!(select(&refs, &LimitRule::LastBelowErrorRate(0.1)), Some(1));
        assert_eq!(select(&refs, &LimitRule::LastBelowErrorRate(0.08)), Some(1));
        assert_eq!(select(&refs, &LimitRule::LastBelowErrorRate(0.5)), Some(2));
        let ls = [level(200, 120, 80, 300.0)];
        let refs: Vec<&LevelResult> = ls.iter().collect();
        assert_eq!(select(&refs, &LimitRule::LastBelowErrorRate(0.1)), None);
        assert_eq!(select(&[], &LimitRule::MostSuccessful), None);
    }

    #[test]
    fn rules_parse_and_print() {
        for s in ["most-successful", "max-throughput", "error-below:0.05"] {
            assert_eq!(
                s.parse::<LimitRule>().map(|r| r.to_string()).as_deref(),
                Ok(s)
            );
        }
        assert!("error-below:2".parse::<LimitRule>().is_err());
        assert!("fastest".parse::<LimitRule>().is_err());
    }
}
