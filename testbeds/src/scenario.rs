//! Experiment scenarios: what happens to the testbed during each level.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::topology::Kind;

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
    /// A share of the agents (P2P) dies in the middle of each level; their
    /// cloudlets keep running. The client keeps going through the other
    /// agents. The standard system has no agents: not applicable, not run.
    AgentLoss,
    /// A share of the cloudlets (P2P) stops answering everyone (its API
    /// answers 503 to its agent and to peers, its compute nodes keep
    /// running) in the middle of each level, for `--partition-for` model
    /// seconds, then answers again. The standard system is one deployment
    /// that cannot be cut in part from its own API: not applicable, not run.
    Partition,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Steady => "steady",
            Scenario::CloudletLoss => "cloudlet-loss",
            Scenario::AgentLoss => "agent-loss",
            Scenario::Partition => "partition",
        }
    }

    /// Scenarios that disturb a share of the members (`--kill`).
    pub fn disturbs(self) -> bool {
        self != Scenario::Steady
    }

    /// Chaos scenarios: each level starts on a fresh testbed and ends with
    /// the durability checks (lost, orphaned, resurrected servers).
    pub fn is_chaos(self) -> bool {
        matches!(self, Scenario::AgentLoss | Scenario::Partition)
    }

    /// Scenarios whose levels end with the durability checks: the chaos
    /// ones and cloudlet-loss (on every system it runs: a lost boot is
    /// one the client was told was accepted and that no live entry shows).
    pub fn checks_durability(self) -> bool {
        self.is_chaos() || self == Scenario::CloudletLoss
    }

    /// Why the scenario does not apply to a system of `kind`, if it does not.
    pub fn not_applicable(self, kind: Kind) -> Option<&'static str> {
        match (self, kind) {
            (Scenario::AgentLoss, Kind::Standard | Kind::Cells) => Some(
                "agent-loss does not apply to the standard or cells system: it has no agents (its API is the deployment's own), so there is nothing to kill that would leave its compute healthy; not run",
            ),
            (Scenario::AgentLoss, Kind::Sharded) => Some(
                "agent-loss does not apply to the sharded system: it has no agents (each cloudlet is its own endpoint; losing one is cloudlet-loss); not run",
            ),
            (Scenario::Partition, Kind::Standard | Kind::Cells) => Some(
                "partition does not apply to the standard or cells system: it is one deployment with one API, which cannot stop answering for a share of its compute while answering for the rest (the mock has no per-node temporary outage); not run",
            ),
            (Scenario::Partition, Kind::Sharded) => Some(
                "partition is not run on the sharded system yet: it has no agent that re-places or reconciles, so a cut-off shard only fails the boots sent to it until it returns; not run",
            ),
            _ => None,
        }
    }
}

/// What the scenario did to a system of `kind` with `members` members, in
/// words, for the results (`system.scenario_detail`) and the report.
pub fn detail(args: &crate::compare::CompareArgs, kind: Kind, members: u32) -> Option<String> {
    let s = args.scenario;
    if let Some(why) = s.not_applicable(kind) {
        return Some(why.to_string());
    }
    let k = parse_kill(&args.kill, members).ok()?;
    let when = format!(
        "{} model s after every boot POST of each level was answered (members chosen per level by a seeded RNG, never the first; each level on a fresh testbed)",
        args.kill_after
    );
    let checks =
        "; lost servers counted before the cleanup, orphaned and resurrected ones after it";
    Some(match (s, kind) {
        (Scenario::Steady, _) => return None,
        (Scenario::CloudletLoss, Kind::P2p) => {
            format!("{k} of {members} cloudlets (agent and cloudlet) stopped {when}")
        }
        (Scenario::CloudletLoss, Kind::Sharded) => {
            format!("{k} of {members} cloudlets stopped {when}")
        }
        (Scenario::CloudletLoss, Kind::Standard | Kind::Cells) => {
            format!("{k} of {members} compute nodes lost {when}")
        }
        (Scenario::AgentLoss, _) => format!(
            "{k} of {members} agents stopped {when}; their cloudlets kept running; the client followed boots whose entry agent died through the other agents, reconcile {} model s{checks}",
            args.reconcile
        ),
        (Scenario::Partition, _) => format!(
            "{k} of {members} cloudlets cut off (their API answered 503 to their agent and to peers; compute kept running) for {} model s, {when}; reconcile {} model s after the cut ended and the cleanup finished{checks}",
            args.partition_for, args.reconcile
        ),
    })
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
    fn chaos_scenarios_skip_the_standard_system_and_say_why() {
        for s in [Scenario::AgentLoss, Scenario::Partition] {
            assert!(s.is_chaos() && s.disturbs());
            for k in [Kind::Standard, Kind::Cells, Kind::Sharded] {
                assert!(s.not_applicable(k).is_some());
            }
            assert!(s.not_applicable(Kind::P2p).is_none());
        }
        assert!(Scenario::CloudletLoss
            .not_applicable(Kind::Standard)
            .is_none());
        assert!(!Scenario::Steady.disturbs() && !Scenario::CloudletLoss.is_chaos());
        assert!(
            Scenario::CloudletLoss.checks_durability() && !Scenario::Steady.checks_durability()
        );
    }

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
