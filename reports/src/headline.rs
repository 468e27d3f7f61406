//! The headline: each system at its performance limit, the P2P/standard
//! ratios, and the seed's three claims judged against them.
//!
//! # What the claims mean here
//!
//! The seed (Ericsson Research, CloudCom 2017) says: *at the performance
//! limit of both systems, the P2P system boots 4× more VMs in about half the
//! time, with an error rate below one third of the standard system's.*
//! With the default [`ClaimThresholds`]:
//!
//! | claim | measured | reproduced when |
//! |---|---|---|
//! | 4× more VMs | successful boots P2P / standard at the limits | ratio ≥ 3.6 (4 with a 10% tolerance, the seed's figure being a round one); P2P > 0 with standard = 0 counts as reproduced |
//! | about half the time | makespan P2P / standard at the limits | ratio ≤ 0.6 (half, with 0.1 tolerance; faster counts); the mean-boot-time ratio is reported beside it but does not decide |
//! | error rate below one third | error rate P2P / standard at the limits | ratio < 1/3, strictly; both 0 or standard 0 → not reproduced (nothing is below zero), and the note says why |
//!
//! # Verdicts
//!
//! Meeting the criterion is not enough for `reproduced`. Each claim gets a
//! [`Verdict`]: `reproduced` or `not_reproduced` when the comparison can
//! decide it, and `undetermined` (never `reproduced`) when it cannot:
//!
//! - a system was not taken past its limit: no level above its limit level
//!   was run, so a larger burst might have done better and its limit (and
//!   every ratio against it) is only a bound (flag `<system>_not_past_limit`);
//! - a run was host-bound: the host, not the system, limited it
//!   (`host.host_bound`; flag `<system>_host_bound`);
//! - `--check-scale` disagreed: model-time results changed with the time
//!   scale (flag `scale_check_disagrees`).
//!
//! The flags and a one-sentence reason are written per claim; whether the
//! measured ratio met the criterion is kept beside them (`criterion_met`).
//!
//! Ratios whose denominator is zero are never written as a number:
//! [`RatioKind::Infinite`] (numerator > 0) or [`RatioKind::Undefined`]
//! (0 / 0), with `value: null` in `headline.json`.

use serde::{Deserialize, Serialize};

use crate::text::{pct, secs, short};
use crate::{Prepared, ReportOptions};

pub const HEADLINE_SCHEMA: &str = "p2pstack/report-headline";
pub const HEADLINE_SCHEMA_VERSION: u32 = 2;

/// When each seed claim counts as reproduced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimThresholds {
    /// "4× more VMs": VMs ratio ≥ this (default 3.6).
    pub vms_min_ratio: f64,
    /// "about half the time": makespan ratio ≤ this (default 0.6).
    pub time_max_ratio: f64,
    /// "error rate below one third": error-rate ratio < this (default 1/3).
    pub error_below_ratio: f64,
}

impl Default for ClaimThresholds {
    fn default() -> Self {
        Self {
            vms_min_ratio: 3.6,
            time_max_ratio: 0.6,
            error_below_ratio: 1.0 / 3.0,
        }
    }
}

/// What `--check-scale` found (the report cannot see it in the results
/// files; the caller says).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleCheck {
    /// No scale check was run.
    #[default]
    NotRun,
    /// Model-time figures agreed at both time scales.
    Agree,
    /// They disagreed: the host shaped the results.
    Disagree,
}

impl ScaleCheck {
    pub fn label(&self) -> &'static str {
        match self {
            ScaleCheck::NotRun => "not run",
            ScaleCheck::Agree => "agree",
            ScaleCheck::Disagree => "disagree",
        }
    }
}

/// The judgement of one claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The criterion was met, and the comparison can decide.
    Reproduced,
    /// The criterion was not met, and the comparison can decide.
    NotReproduced,
    /// The comparison cannot decide (see the claim's flags and reason).
    Undetermined,
}

impl Verdict {
    /// `reproduced`, `not reproduced` or `undetermined`.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Reproduced => "reproduced",
            Verdict::NotReproduced => "not reproduced",
            Verdict::Undetermined => "undetermined",
        }
    }
}

/// Why a comparison cannot decide a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    StandardNotPastLimit,
    P2pNotPastLimit,
    StandardHostBound,
    P2pHostBound,
    ScaleCheckDisagrees,
}

/// What the verdicts rest on, per system and for the pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub standard: SystemEvidence,
    pub p2p: SystemEvidence,
    pub scale_check: ScaleCheck,
    /// Every flag raised (empty: the comparison can decide every claim).
    pub flags: Vec<Flag>,
    /// One sentence per flag, in the order of `flags`.
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemEvidence {
    /// A level above the limit level was run (and did no better under the
    /// limit rule).
    pub past_limit: bool,
    pub limit_level: u32,
    pub largest_level: u32,
    /// `host.host_bound` of the run (`null`: not recorded).
    pub host_bound: Option<bool>,
}

impl SystemEvidence {
    fn of(p: &Prepared<'_>) -> Option<Self> {
        let limit = p.limit_level()?;
        let largest = p
            .levels
            .iter()
            .map(|l| l.level)
            .max()
            .unwrap_or(limit.level);
        Some(Self {
            past_limit: p.levels.iter().any(|l| l.level > limit.level),
            limit_level: limit.level,
            largest_level: largest,
            host_bound: p.run.host.host_bound,
        })
    }
}

impl Evidence {
    fn judge(std: SystemEvidence, p2p: SystemEvidence, scale_check: ScaleCheck) -> Self {
        let mut flags = Vec::new();
        let mut reasons = Vec::new();
        for (name, e, not_past, bound) in [
            (
                "standard",
                &std,
                Flag::StandardNotPastLimit,
                Flag::StandardHostBound,
            ),
            ("P2P", &p2p, Flag::P2pNotPastLimit, Flag::P2pHostBound),
        ] {
            if !e.past_limit {
                flags.push(not_past);
                reasons.push(format!(
                    "{name} was not taken past its limit: its limit is its largest level ({}), \
                     so a larger burst might do better and the ratios against it are bounds",
                    e.limit_level
                ));
            }
            if e.host_bound == Some(true) {
                flags.push(bound);
                reasons.push(format!(
                    "the {name} run was host-bound: the host, not the system, limited it"
                ));
            }
        }
        if scale_check == ScaleCheck::Disagree {
            flags.push(Flag::ScaleCheckDisagrees);
            reasons.push(
                "the scale check disagrees: model-time results changed with the time scale"
                    .to_string(),
            );
        }
        Self {
            standard: std,
            p2p,
            scale_check,
            flags,
            reasons,
        }
    }

    /// The verdict of a claim whose criterion was (or was not) met.
    pub fn verdict(&self, criterion_met: bool) -> Verdict {
        if !self.flags.is_empty() {
            Verdict::Undetermined
        } else if criterion_met {
            Verdict::Reproduced
        } else {
            Verdict::NotReproduced
        }
    }

    /// `None` when no flag is raised.
    pub fn reason(&self) -> Option<String> {
        (!self.reasons.is_empty()).then(|| {
            let mut s = self.reasons.join("; ");
            if let Some(first) = s.get(..1) {
                s = first.to_uppercase() + &s[1..];
            }
            s + "."
        })
    }
}

/// One system at its performance limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemAtLimit {
    pub label: String,
    /// The concurrency level chosen as the limit.
    pub limit_level: u32,
    pub requested: u32,
    /// Servers that reached ACTIVE.
    pub succeeded: u32,
    pub failed: u32,
    /// failed / requested.
    pub error_rate: f64,
    /// Model seconds.
    pub makespan_s: f64,
    pub throughput_per_s: f64,
    /// Boot time of the successful servers, model seconds.
    pub mean_boot_s: f64,
    pub p95_boot_s: f64,
    /// Failed requests at the limit by mechanism, most frequent first.
    #[serde(default)]
    pub failures: Vec<FailureCount>,
    /// The mechanism behind most failures at the limit (`None`: no failure).
    #[serde(default)]
    pub failed_by: Option<String>,
}

/// Failures of one [`results::ErrorCategory`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureCount {
    /// `db_pool_timeout`, `messaging_timeout`, `api_timeout`, `no_valid_host`, …
    pub category: String,
    /// The mechanism in words.
    pub mechanism: String,
    pub count: u32,
}

/// Failures by category, most frequent first (ties by category name).
pub fn failures(l: &results::LevelResult) -> Vec<FailureCount> {
    let mut v: Vec<FailureCount> = l
        .error_categories()
        .into_iter()
        .map(|(c, count)| FailureCount {
            category: c.label().to_string(),
            mechanism: c.mechanism().to_string(),
            count,
        })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then(a.category.cmp(&b.category)));
    v
}

impl SystemAtLimit {
    /// `None` when the run has no limit.
    pub(crate) fn of(p: &Prepared<'_>) -> Option<Self> {
        let l = p.limit_level()?;
        let fails = failures(l);
        Some(Self {
            label: p.label.clone(),
            limit_level: l.level,
            requested: l.requested,
            succeeded: l.succeeded,
            failed: l.failed,
            error_rate: l.error_rate,
            makespan_s: l.makespan_s,
            throughput_per_s: l.throughput_per_s,
            mean_boot_s: l.boot_time.mean_s,
            p95_boot_s: l.boot_time.p95_s,
            failed_by: fails
                .first()
                .map(|f| format!("{} ({})", f.mechanism, f.category)),
            failures: fails,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RatioKind {
    /// Denominator > 0.
    Finite,
    /// Numerator > 0, denominator 0.
    Infinite,
    /// 0 / 0 (or a non-finite input).
    Undefined,
}

/// P2P value / standard value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    /// `None` (JSON `null`) unless `kind` is `finite`.
    pub value: Option<f64>,
    pub kind: RatioKind,
    pub p2p: f64,
    pub standard: f64,
}

impl Ratio {
    pub fn new(p2p: f64, standard: f64) -> Self {
        let (value, kind) = if !p2p.is_finite() || !standard.is_finite() {
            (None, RatioKind::Undefined)
        } else if standard > 0.0 {
            (Some(p2p / standard), RatioKind::Finite)
        } else if p2p > 0.0 {
            (None, RatioKind::Infinite)
        } else {
            (None, RatioKind::Undefined)
        };
        Self {
            value,
            kind,
            p2p,
            standard,
        }
    }

    /// `4.20×`, `∞ (standard is 0)` or `undefined (0 / 0)`.
    pub fn display(&self) -> String {
        match (self.kind, self.value) {
            (RatioKind::Finite, Some(v)) if v != 0.0 && v.abs() < 0.1 => format!("{v:.3}×"),
            (RatioKind::Finite, Some(v)) => format!("{v:.2}×"),
            (RatioKind::Infinite, _) => "∞ (standard is 0)".to_string(),
            _ => "undefined (0 / 0)".to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ratios {
    /// Successful boots.
    pub vms: Ratio,
    /// Makespan (time to finish the burst).
    pub makespan: Ratio,
    /// Mean boot time of the successful servers.
    pub mean_boot_time: Ratio,
    /// Error rate (failed / requested).
    pub error_rate: Ratio,
}

/// One of the seed's claims, judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// `vms`, `time` or `error_rate`.
    pub id: String,
    /// The claim as the seed words it.
    pub seed_claim: String,
    /// The rule applied, e.g. `VMs P2P/standard ≥ 3.6`.
    pub criterion: String,
    /// The measured ratio (`null` when infinite or undefined).
    pub measured: Option<f64>,
    /// The measured ratio as shown in the report.
    pub measured_text: String,
    /// The measured ratio meets the criterion (whatever the verdict).
    pub criterion_met: bool,
    /// `reproduced`, `not_reproduced` or `undetermined`.
    pub verdict: Verdict,
    /// Why the verdict is `undetermined` (empty otherwise).
    #[serde(default)]
    pub flags: Vec<Flag>,
    /// One sentence saying why, when `undetermined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// About the ratio itself (a zero denominator, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Claim {
    pub fn reproduced(&self) -> bool {
        self.verdict == Verdict::Reproduced
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Headline {
    pub schema: String,
    pub schema_version: u32,
    /// `most-successful`, `max-throughput` or `error-below:F`.
    pub limit_rule: String,
    pub limit_definition: String,
    pub standard: SystemAtLimit,
    pub p2p: SystemAtLimit,
    pub ratios: Ratios,
    /// What the verdicts rest on: each system past its limit or not,
    /// host-bound or not, and the scale check.
    pub evidence: Evidence,
    pub claims: Vec<Claim>,
    pub claims_reproduced: u32,
    pub claims_not_reproduced: u32,
    pub claims_undetermined: u32,
    /// P2P booted more servers at its limit than standard at its own, with
    /// an error rate no higher.
    pub p2p_beat_standard: bool,
    /// One sentence for people.
    pub verdict: String,
}

impl Headline {
    /// `None` when either run has no limit.
    pub(crate) fn compute(
        std: &Prepared<'_>,
        p2p: &Prepared<'_>,
        opts: &ReportOptions,
    ) -> Option<Self> {
        let s = SystemAtLimit::of(std)?;
        let p = SystemAtLimit::of(p2p)?;
        let evidence = Evidence::judge(
            SystemEvidence::of(std)?,
            SystemEvidence::of(p2p)?,
            opts.scale_check.clone(),
        );
        let judged = |criterion_met: bool| {
            let verdict = evidence.verdict(criterion_met);
            let (flags, reason) = if verdict == Verdict::Undetermined {
                (evidence.flags.clone(), evidence.reason())
            } else {
                (Vec::new(), None)
            };
            (criterion_met, verdict, flags, reason)
        };
        let th = &opts.claims;
        let ratios = Ratios {
            vms: Ratio::new(f64::from(p.succeeded), f64::from(s.succeeded)),
            makespan: Ratio::new(p.makespan_s, s.makespan_s),
            mean_boot_time: Ratio::new(p.mean_boot_s, s.mean_boot_s),
            error_rate: Ratio::new(p.error_rate, s.error_rate),
        };

        let vms = {
            let (met, note) = match (ratios.vms.kind, ratios.vms.value) {
                (RatioKind::Finite, Some(v)) => (v >= th.vms_min_ratio, None),
                (RatioKind::Infinite, _) => (
                    true,
                    Some("the standard system booted no server at its limit".to_string()),
                ),
                _ => (false, Some("neither system booted a server".to_string())),
            };
            let (criterion_met, verdict, flags, reason) = judged(met);
            Claim {
                id: "vms".into(),
                seed_claim: "4× more VMs".into(),
                criterion: format!("VMs P2P/standard ≥ {}", short(th.vms_min_ratio)),
                measured: ratios.vms.value,
                measured_text: format!(
                    "{} ({} vs {})",
                    ratios.vms.display(),
                    p.succeeded,
                    s.succeeded
                ),
                criterion_met,
                verdict,
                flags,
                reason,
                note,
            }
        };
        let time = {
            let (met, note) = match (ratios.makespan.kind, ratios.makespan.value) {
                (RatioKind::Finite, Some(v)) => (v <= th.time_max_ratio, None),
                _ => (
                    false,
                    Some("the standard system's makespan is 0".to_string()),
                ),
            };
            let (criterion_met, verdict, flags, reason) = judged(met);
            Claim {
                id: "time".into(),
                seed_claim: "about half the time".into(),
                criterion: format!("makespan P2P/standard ≤ {}", short(th.time_max_ratio)),
                measured: ratios.makespan.value,
                measured_text: format!(
                    "{} ({} s vs {} s; mean boot {})",
                    ratios.makespan.display(),
                    short(p.makespan_s),
                    short(s.makespan_s),
                    ratios.mean_boot_time.display()
                ),
                criterion_met,
                verdict,
                flags,
                reason,
                note,
            }
        };
        let error = {
            let (met, note) = match (ratios.error_rate.kind, ratios.error_rate.value) {
                (RatioKind::Finite, Some(v)) => (v < th.error_below_ratio, None),
                (RatioKind::Infinite, _) => (
                    false,
                    Some("the standard system had no errors at its limit, P2P had some".to_string()),
                ),
                _ => (
                    false,
                    Some(
                        "both error rates are 0: equally error-free, but nothing is below one third of 0"
                            .to_string(),
                    ),
                ),
            };
            let (criterion_met, verdict, flags, reason) = judged(met);
            Claim {
                id: "error_rate".into(),
                seed_claim: "error rate below one third".into(),
                criterion: format!(
                    "error rate P2P/standard < {}",
                    if (th.error_below_ratio - 1.0 / 3.0).abs() < 1e-12 {
                        "1/3".to_string()
                    } else {
                        short(th.error_below_ratio)
                    }
                ),
                measured: ratios.error_rate.value,
                measured_text: format!(
                    "{} ({} vs {})",
                    ratios.error_rate.display(),
                    pct(p.error_rate),
                    pct(s.error_rate)
                ),
                criterion_met,
                verdict,
                flags,
                reason,
                note,
            }
        };
        let claims = vec![vms, time, error];
        let count = |v: Verdict| claims.iter().filter(|c| c.verdict == v).count() as u32;
        let claims_reproduced = count(Verdict::Reproduced);
        let claims_not_reproduced = count(Verdict::NotReproduced);
        let claims_undetermined = count(Verdict::Undetermined);
        let p2p_beat_standard = p.succeeded > s.succeeded && p.error_rate <= s.error_rate;
        let verdict = format!(
            "{}: P2P booted {} the VMs ({} vs {}) in {} the makespan, \
             with {} the error rate ({} vs {}). Seed claims: {} reproduced, {} not reproduced, \
             {} undetermined.{}",
            match (evidence.flags.is_empty(), p2p_beat_standard) {
                (false, _) => "Undetermined at the limits found",
                (true, true) => "P2P beat standard at each system's limit",
                (true, false) => "P2P did not beat standard at each system's limit",
            },
            ratios.vms.display(),
            p.succeeded,
            s.succeeded,
            ratios.makespan.display(),
            ratios.error_rate.display(),
            pct(p.error_rate),
            pct(s.error_rate),
            claims_reproduced,
            claims_not_reproduced,
            claims_undetermined,
            evidence
                .reason()
                .map(|r| format!(" {r}"))
                .unwrap_or_default()
        );
        Some(Headline {
            schema: HEADLINE_SCHEMA.into(),
            schema_version: HEADLINE_SCHEMA_VERSION,
            limit_rule: opts.limit.to_string(),
            limit_definition: opts.limit.definition(),
            standard: s,
            p2p: p,
            ratios,
            evidence,
            claims,
            claims_reproduced,
            claims_not_reproduced,
            claims_undetermined,
            p2p_beat_standard,
            verdict,
        })
    }

    /// The plain-text headline table (what `testbed compare` prints).
    pub fn table(&self) -> String {
        let mut rows: Vec<[String; 4]> = vec![[
            "seed claim".into(),
            "criterion".into(),
            "measured (P2P/standard)".into(),
            "verdict".into(),
        ]];
        for c in &self.claims {
            rows.push([
                c.seed_claim.clone(),
                c.criterion.clone(),
                c.measured_text.clone(),
                c.verdict.label().into(),
            ]);
        }
        let mut out = String::new();
        out.push_str(&format!(
            "Limits ({}): standard {:?} at level {} ({} ok, {} s, {} errors); p2p {:?} at level {} ({} ok, {} s, {} errors)\n",
            self.limit_rule,
            self.standard.label,
            self.standard.limit_level,
            self.standard.succeeded,
            secs(self.standard.makespan_s),
            pct(self.standard.error_rate),
            self.p2p.label,
            self.p2p.limit_level,
            self.p2p.succeeded,
            secs(self.p2p.makespan_s),
            pct(self.p2p.error_rate),
        ));
        out.push_str(&text_table(&rows));
        for s in [&self.standard, &self.p2p] {
            if let Some(f) = &s.failed_by {
                out.push_str(&format!("{} at its limit failed mostly by: {f}\n", s.label));
            }
        }
        out.push_str(&self.verdict);
        out.push('\n');
        out
    }
}

/// Left-aligned columns separated by two spaces, a rule under the header.
fn text_table(rows: &[[String; 4]]) -> String {
    let mut widths = [0usize; 4];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let mut line = String::new();
        for (j, (c, w)) in r.iter().zip(widths).enumerate() {
            line.push_str(c);
            if j + 1 < r.len() {
                line.push_str(&" ".repeat(w - c.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
        if i == 0 {
            let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_handle_zero_denominators() {
        assert_eq!(Ratio::new(3.0, 1.5).value, Some(2.0));
        let inf = Ratio::new(0.1, 0.0);
        assert_eq!((inf.kind, inf.value), (RatioKind::Infinite, None));
        let und = Ratio::new(0.0, 0.0);
        assert_eq!((und.kind, und.value), (RatioKind::Undefined, None));
        assert_eq!(Ratio::new(0.0, 2.0).value, Some(0.0));
        assert_eq!(Ratio::new(f64::NAN, 2.0).kind, RatioKind::Undefined);
    }
}
