//! Experiment scenarios: what happens to the testbed during each level.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Nothing is disturbed.
    Steady,
    /// A share of the cloudlets (P2P) or compute nodes' controller
    /// (standard: the whole deployment cannot be partly killed, so the
    /// standard testbed loses the same share of compute nodes) stops in
    /// the middle of each level.
    CloudletLoss,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Steady => "steady",
            Scenario::CloudletLoss => "cloudlet-loss",
        }
    }
}

/// Parses `10%` or `0.1` or `3` (an absolute count) into a count of `n`.
pub fn parse_kill(spec: &str, n: u32) -> Result<u32, String> {
    let spec = spec.trim();
    let count = if let Some(p) = spec.strip_suffix('%') {
        let pct: f64 = p
            .trim()
            .parse()
            .map_err(|_| format!("--kill {spec:?}: expected a percentage like 10%"))?;
        if !(0.0..=100.0).contains(&pct) {
            return Err(format!("--kill {spec:?}: percentage must be within 0..100"));
        }
        (f64::from(n) * pct / 100.0).round() as u32
    } else if spec.contains('.') {
        let f: f64 = spec
            .parse()
            .map_err(|_| format!("--kill {spec:?}: expected a fraction like 0.1"))?;
        if !(0.0..=1.0).contains(&f) {
            return Err(format!("--kill {spec:?}: fraction must be within 0..1"));
        }
        (f64::from(n) * f).round() as u32
    } else {
        spec.parse()
            .map_err(|_| format!("--kill {spec:?}: expected 10%, 0.1 or a count"))?
    };
    if count >= n {
        return Err(format!("--kill {spec:?} would stop all {n} cloudlets"));
    }
    Ok(count)
}

/// Which of `n` members to stop, chosen by a seeded RNG so a run can be
/// repeated. Member 0 (the first entry point) is never chosen, so the
/// experiment keeps an entry that answers.
pub fn choose_victims(n: u32, count: u32, seed: u64) -> Vec<u32> {
    let mut candidates: Vec<u32> = (1..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    candidates.shuffle(&mut rng);
    candidates.truncate(count as usize);
    candidates.sort_unstable();
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_specs() {
        assert_eq!(parse_kill("10%", 64), Ok(6));
        assert_eq!(parse_kill("0.25", 8), Ok(2));
        assert_eq!(parse_kill("3", 8), Ok(3));
        assert!(parse_kill("100%", 8).is_err());
        assert!(parse_kill("abc", 8).is_err());
        assert!(parse_kill("8", 8).is_err());
    }

    #[test]
    fn victims_are_seeded_distinct_and_spare_the_first() {
        let a = choose_victims(64, 6, 7);
        assert_eq!(a, choose_victims(64, 6, 7));
        assert_eq!(a.len(), 6);
        assert!(!a.contains(&0));
        let mut d = a.clone();
        d.dedup();
        assert_eq!(d.len(), 6);
    }
}
