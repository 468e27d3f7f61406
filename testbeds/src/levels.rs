//! Which burst levels a comparison runs: a fixed list, or a search for
//! each system's performance limit (`--levels auto`).
//!
//! The search is a pure function of the levels measured so far
//! ([`LimitSearch::next`]), so it can be tested without a testbed:
//!
//! 1. start at [`LimitSearch::start`] and double while the largest level
//!    measured is still the limit under the rule (the system is not yet
//!    past it), up to [`LimitSearch::cap`];
//! 2. once a larger level is worse than the limit, refine between the limit
//!    and the next larger level measured (bisection) until they are within
//!    [`LimitSearch::tolerance`] (12.5 %) of each other.
//!
//! The search ends past the limit (a larger level was measured and was
//! worse), or at the cap with the system still not past its limit, which
//! the comparison then says.
//!
//! A search may instead start from a guess ([`LimitSearch::around`], e.g.
//! the limit found at a neighbouring setting of `testbed sensitivity`): it
//! runs the guess, then widens a bracket around it by factors 1.125,
//! 1.125, 1.25, 1.5, 2, 2, … (up while the largest level is the best, down while the
//! smallest is, under the rules that reward successes), and refines as
//! above. Its result has the same precision; when the guess is near the
//! limit it costs about two levels of the limit's size instead of the
//! doubling's whole ladder plus three refinements.

use std::fmt;
use std::str::FromStr;

use reports::limit::{self, LimitRule};
use results::LevelResult;

/// `--levels`: `auto` or a comma-separated list of burst sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Levels {
    Auto,
    List(Vec<u32>),
}

impl FromStr for Levels {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("auto") {
            return Ok(Levels::Auto);
        }
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.parse::<u32>() {
                Ok(v) if v > 0 => out.push(v),
                _ => {
                    return Err(format!(
                        "--levels: {part:?} is not a positive burst size (use e.g. 64,256 or auto)"
                    ))
                }
            }
        }
        if out.is_empty() {
            return Err("--levels: give auto or at least one burst size".into());
        }
        Ok(Levels::List(out))
    }
}

impl fmt::Display for Levels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Levels::Auto => f.write_str("auto"),
            Levels::List(l) => {
                let s: Vec<String> = l.iter().map(u32::to_string).collect();
                f.write_str(&s.join(","))
            }
        }
    }
}

/// The limit search of one system.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitSearch {
    /// First level.
    pub start: u32,
    /// Largest level the search may run.
    pub cap: u32,
    /// Refine until the limit and the next larger level are within this
    /// fraction of the limit.
    pub tolerance: f64,
    pub rule: LimitRule,
    /// First level of a search that starts from a guess ([`Self::around`]);
    /// `start` is then the smallest level it may run.
    pub guess: Option<u32>,
}

/// Default cap of `--levels auto`.
pub const DEFAULT_CAP: u32 = 131_072;
/// Refinement tolerance: 12.5 %.
pub const DEFAULT_TOLERANCE: f64 = 0.125;

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Run this level next.
    Run(u32),
    /// Done: the system is past its limit at `limit` (the next larger level
    /// measured, `above`, was worse).
    PastLimit { limit: u32, above: u32 },
    /// Done: the cap was reached and the largest level is still the limit.
    CapReached { cap: u32, limit: u32 },
    /// Done: no level qualifies under the rule (e.g. every level's error
    /// rate is above the threshold).
    NoLimit,
}

impl LimitSearch {
    pub fn new(start: u32, cap: u32, rule: LimitRule) -> Self {
        Self {
            start: start.max(1),
            cap: cap.max(start.max(1)),
            tolerance: DEFAULT_TOLERANCE,
            rule,
            guess: None,
        }
    }

    /// A search that starts at `guess` and widens a bracket around it,
    /// never below `floor` nor above `cap`.
    pub fn around(guess: u32, floor: u32, cap: u32, rule: LimitRule) -> Self {
        let mut s = Self::new(floor, cap, rule);
        s.guess = Some(guess.clamp(s.start, s.cap));
        s
    }

    /// The factor of the next widening step after `k` levels on that side
    /// of the guess: twice the tolerance's step (a guess a few per cent off
    /// is bracketed at once), then 1.25, 1.5 and 2 (one far off is reached
    /// in a few levels).
    fn widen(&self, k: usize) -> f64 {
        let doublings = i32::try_from(k.saturating_sub(1).min(8)).unwrap_or(8);
        (1.0 + self.tolerance * 2f64.powi(doublings)).min(2.0)
    }

    /// The next level above `largest` (the best so far).
    fn step_up(&self, largest: u32, done: &[&LevelResult]) -> u32 {
        let next = match self.guess {
            None => largest.saturating_mul(2),
            Some(g) => {
                let k = done.iter().filter(|l| l.level > g).count();
                // Rounded down so that one step stays within the tolerance.
                ((f64::from(largest) * self.widen(k)).floor() as u32).max(largest + 1)
            }
        };
        next.min(self.cap)
    }

    /// The next level below `smallest` when a guessed search must look
    /// there; `None` at the floor.
    fn step_down(&self, smallest: u32, done: &[&LevelResult]) -> Option<u32> {
        let g = self.guess?;
        if smallest <= self.start {
            return None;
        }
        let k = done.iter().filter(|l| l.level < g).count();
        let next = (f64::from(smallest) / self.widen(k)).floor() as u32;
        Some(next.clamp(self.start, smallest - 1))
    }

    /// The next step given the levels measured so far (any order).
    pub fn next(&self, done: &[LevelResult]) -> Step {
        if done.is_empty() {
            return Step::Run(self.guess.unwrap_or(self.start));
        }
        let mut sorted: Vec<&LevelResult> = done.iter().collect();
        sorted.sort_by_key(|l| l.level);
        let smallest = sorted[0].level;
        let Some(i) = limit::select(&sorted, &self.rule) else {
            // error-below: even the smallest level is above the threshold
            // (a guessed search looks further down first).
            return match self.step_down(smallest, &sorted) {
                Some(l) => Step::Run(l),
                None => Step::NoLimit,
            };
        };
        let best = sorted[i].level;
        let largest = sorted.last().map_or(best, |l| l.level);
        if best == largest {
            if largest >= self.cap {
                return Step::CapReached {
                    cap: self.cap,
                    limit: best,
                };
            }
            return Step::Run(self.step_up(largest, &sorted));
        }
        // A guessed search whose best level is its smallest has not seen
        // the slope below it: under the rules that reward successes or
        // throughput, a smaller level might do better. (The error rule's
        // limit is the largest level under the threshold: nothing below
        // can change it.)
        let rewards_more = !matches!(self.rule, LimitRule::LastBelowErrorRate(_));
        if rewards_more && best == smallest {
            if let Some(l) = self.step_down(smallest, &sorted) {
                return Step::Run(l);
            }
        }
        // Past the limit: refine between it and the next larger level.
        let above = sorted
            .iter()
            .map(|l| l.level)
            .find(|&l| l > best)
            .unwrap_or(largest);
        let within = f64::from(above - best) <= self.tolerance * f64::from(best);
        let mid = best + (above - best) / 2;
        if within || mid == best || sorted.iter().any(|l| l.level == mid) {
            return Step::PastLimit { limit: best, above };
        }
        Step::Run(mid)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Run(l) => write!(f, "next level {l}"),
            Step::PastLimit { limit, above } => write!(
                f,
                "past the limit: {limit} concurrent boots (the larger level {above} did worse)"
            ),
            Step::CapReached { cap, limit } => write!(
                f,
                "NOT past the limit: the search reached its cap of {cap} concurrent boots and the largest level ({limit}) was still the best; the limit is at least {limit}"
            ),
            Step::NoLimit => f.write_str("no level qualifies as a limit under the rule"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A level where `ok` boots succeed and the rest fail.
    fn level(level: u32, ok: u32) -> LevelResult {
        LevelResult::burst_summary(level, ok, level - ok, 100.0)
    }

    /// Runs the search against a system that saturates at `peak` successes.
    fn search(s: &LimitSearch, capacity: impl Fn(u32) -> u32) -> (Vec<u32>, Step) {
        let mut done = Vec::new();
        let mut order = Vec::new();
        loop {
            match s.next(&done) {
                Step::Run(l) => {
                    assert!(!order.contains(&l), "level {l} run twice");
                    order.push(l);
                    done.push(level(l, capacity(l)));
                }
                end => return (order, end),
            }
        }
    }

    #[test]
    fn doubles_then_refines_to_within_an_eighth() {
        let s = LimitSearch::new(64, DEFAULT_CAP, LimitRule::MostSuccessful);
        // Up to 10,000 concurrent boots all succeed; above, successes fall.
        let cap = |l: u32| {
            if l <= 10_000 {
                l
            } else {
                20_000 - l.min(20_000)
            }
        };
        let (order, end) = search(&s, cap);
        assert_eq!(
            &order[..9],
            &[64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
        );
        let Step::PastLimit { limit, above } = end else {
            panic!("{end:?}")
        };
        assert!(f64::from(above - limit) <= 0.125 * f64::from(limit));
        // The bracket is within 12.5 % of the peak at 10,000.
        assert!((8_192..=12_288).contains(&limit), "{limit} {above}");
        assert!(above > 10_000, "{limit} {above}");
    }

    #[test]
    fn says_so_when_the_cap_is_reached() {
        let s = LimitSearch::new(1024, 4096, LimitRule::MostSuccessful);
        let (order, end) = search(&s, |l| l);
        assert_eq!(order, vec![1024, 2048, 4096]);
        assert_eq!(
            end,
            Step::CapReached {
                cap: 4096,
                limit: 4096
            }
        );
        assert!(end.to_string().contains("NOT past the limit"));
    }

    #[test]
    fn a_system_saturated_from_the_start_is_past_its_limit_at_once() {
        let s = LimitSearch::new(64, DEFAULT_CAP, LimitRule::MostSuccessful);
        let (order, end) = search(&s, |l| 100u32.saturating_sub(l / 10).min(l));
        // 64 → 63 ok, 128 → 88 ok, 256 → 74 ok: past at 128, refine 192, 160, 144.
        assert_eq!(&order[..3], &[64, 128, 256]);
        assert!(matches!(end, Step::PastLimit { .. }), "{end:?}");
    }

    #[test]
    fn error_threshold_rule_and_no_limit() {
        let s = LimitSearch::new(64, DEFAULT_CAP, LimitRule::LastBelowErrorRate(0.05));
        let (_, end) = search(&s, |l| if l <= 500 { l } else { l / 2 });
        let Step::PastLimit { limit, .. } = end else {
            panic!("{end:?}")
        };
        assert!((448..=500).contains(&limit), "{limit}");
        let (order, end) = search(&s, |l| l / 2);
        assert_eq!(order, vec![64]);
        assert_eq!(end, Step::NoLimit);
    }

    /// Boots run by a search (the sum of its levels): what it costs.
    fn boots(order: &[u32]) -> u64 {
        order.iter().map(|&l| u64::from(l)).sum()
    }

    /// Up to `peak` concurrent boots all succeed; above, successes fall.
    fn peaked(peak: u32) -> impl Fn(u32) -> u32 {
        move |l| {
            if l <= peak {
                l
            } else {
                (2 * peak).saturating_sub(l)
            }
        }
    }

    #[test]
    fn a_guess_near_the_limit_brackets_it_as_precisely_for_a_fraction_of_the_boots() {
        let cold = LimitSearch::new(64, DEFAULT_CAP, LimitRule::MostSuccessful);
        let (cold_order, cold_end) = search(&cold, peaked(10_000));
        let warm = LimitSearch::around(9_000, 64, DEFAULT_CAP, LimitRule::MostSuccessful);
        let (order, end) = search(&warm, peaked(10_000));
        assert_eq!(order[0], 9_000);
        let Step::PastLimit { limit, above } = end else {
            panic!("{end:?}")
        };
        assert!(
            f64::from(above - limit) <= 0.125 * f64::from(limit),
            "{limit} {above}"
        );
        assert!(limit.abs_diff(10_000) <= 1_250, "{limit} {above}");
        assert!(matches!(cold_end, Step::PastLimit { .. }));
        // Cheaper than the cold search by more than half.
        assert!(
            2 * boots(&order) < boots(&cold_order),
            "warm {order:?} vs cold {cold_order:?}"
        );
    }

    #[test]
    fn a_guess_above_the_limit_walks_down_and_checks_the_slope_below() {
        let warm = LimitSearch::around(40_000, 64, DEFAULT_CAP, LimitRule::MostSuccessful);
        let (order, end) = search(&warm, peaked(10_000));
        let Step::PastLimit { limit, above } = end else {
            panic!("{end:?}")
        };
        assert!(
            f64::from(above - limit) <= 0.125 * f64::from(limit),
            "{order:?}"
        );
        assert!(limit.abs_diff(10_000) <= 1_250, "{limit} {above} {order:?}");
        // A level below the limit was run and did worse.
        assert!(order.iter().any(|&l| l < limit), "{order:?}");
        // One level says nothing of the slope: a step up first, then the
        // widening steps down: 1.125, 1.125, 1.25, 1.5, then 2.
        assert_eq!(
            &order[..6],
            &[40_000, 45_000, 35_555, 31_604, 25_283, 16_855]
        );
    }

    #[test]
    fn a_guess_below_the_limit_widens_upwards_and_stops_at_the_cap() {
        let warm = LimitSearch::around(1_000, 64, 4_096, LimitRule::MostSuccessful);
        let (order, end) = search(&warm, |l| l);
        assert_eq!(order, vec![1_000, 1_125, 1_265, 1_581, 2_371, 4_096]);
        assert_eq!(
            end,
            Step::CapReached {
                cap: 4_096,
                limit: 4_096
            }
        );
    }

    #[test]
    fn a_guessed_search_under_the_error_rule_goes_down_to_a_qualifying_level() {
        let rule = LimitRule::LastBelowErrorRate(0.05);
        let warm = LimitSearch::around(2_000, 64, DEFAULT_CAP, rule.clone());
        let (order, end) = search(&warm, |l| if l <= 500 { l } else { l / 2 });
        let Step::PastLimit { limit, .. } = end else {
            panic!("{end:?} {order:?}")
        };
        assert!((448..=500).contains(&limit), "{limit} {order:?}");
        // At the floor with nothing qualifying: no limit.
        let warm = LimitSearch::around(100, 64, DEFAULT_CAP, rule);
        let (order, end) = search(&warm, |l| l / 2);
        assert_eq!(order, vec![100, 88, 78, 64]);
        assert_eq!(end, Step::NoLimit);
    }

    #[test]
    fn levels_parse() {
        assert_eq!("auto".parse::<Levels>(), Ok(Levels::Auto));
        assert_eq!(
            "64, 256,1024".parse::<Levels>(),
            Ok(Levels::List(vec![64, 256, 1024]))
        );
        assert!("0".parse::<Levels>().is_err());
        assert!("x".parse::<Levels>().is_err());
        assert!("".parse::<Levels>().is_err());
        assert_eq!(Levels::List(vec![8, 32]).to_string(), "8,32");
    }
}
