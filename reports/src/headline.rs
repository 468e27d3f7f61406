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
//! Ratios whose denominator is zero are never written as a number:
//! [`RatioKind::Infinite`] (numerator > 0) or [`RatioKind::Undefined`]
//! (0 / 0), with `value: null` in `headline.json`.

use serde::{Deserialize, Serialize};

use crate::text::{pct, secs, short};
use crate::{Prepared, ReportOptions};

pub const HEADLINE_SCHEMA: &str = "p2pstack/report-headline";
pub const HEADLINE_SCHEMA_VERSION: u32 = 1;

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
}

impl SystemAtLimit {
    /// `None` when the run has no limit.
    pub(crate) fn of(p: &Prepared<'_>) -> Option<Self> {
        let l = p.limit_level()?;
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
    pub reproduced: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
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
    pub claims: Vec<Claim>,
    pub claims_reproduced: u32,
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
        let th = &opts.claims;
        let ratios = Ratios {
            vms: Ratio::new(f64::from(p.succeeded), f64::from(s.succeeded)),
            makespan: Ratio::new(p.makespan_s, s.makespan_s),
            mean_boot_time: Ratio::new(p.mean_boot_s, s.mean_boot_s),
            error_rate: Ratio::new(p.error_rate, s.error_rate),
        };

        let vms = {
            let (reproduced, note) = match (ratios.vms.kind, ratios.vms.value) {
                (RatioKind::Finite, Some(v)) => (v >= th.vms_min_ratio, None),
                (RatioKind::Infinite, _) => (
                    true,
                    Some("the standard system booted no server at its limit".to_string()),
                ),
                _ => (false, Some("neither system booted a server".to_string())),
            };
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
                reproduced,
                note,
            }
        };
        let time = {
            let (reproduced, note) = match (ratios.makespan.kind, ratios.makespan.value) {
                (RatioKind::Finite, Some(v)) => (v <= th.time_max_ratio, None),
                _ => (
                    false,
                    Some("the standard system's makespan is 0".to_string()),
                ),
            };
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
                reproduced,
                note,
            }
        };
        let error = {
            let (reproduced, note) = match (ratios.error_rate.kind, ratios.error_rate.value) {
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
                reproduced,
                note,
            }
        };
        let claims = vec![vms, time, error];
        let claims_reproduced = claims.iter().filter(|c| c.reproduced).count() as u32;
        let p2p_beat_standard = p.succeeded > s.succeeded && p.error_rate <= s.error_rate;
        let verdict = format!(
            "{} at each system's limit: P2P booted {} the VMs ({} vs {}) in {} the makespan, \
             with {} the error rate ({} vs {}). {} of 3 seed claims reproduced.",
            if p2p_beat_standard {
                "P2P beat standard"
            } else {
                "P2P did not beat standard"
            },
            ratios.vms.display(),
            p.succeeded,
            s.succeeded,
            ratios.makespan.display(),
            ratios.error_rate.display(),
            pct(p.error_rate),
            pct(s.error_rate),
            claims_reproduced
        );
        Some(Headline {
            schema: HEADLINE_SCHEMA.into(),
            schema_version: HEADLINE_SCHEMA_VERSION,
            limit_rule: opts.limit.to_string(),
            limit_definition: opts.limit.definition(),
            standard: s,
            p2p: p,
            ratios,
            claims,
            claims_reproduced,
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
            "reproduced".into(),
        ]];
        for c in &self.claims {
            rows.push([
                c.seed_claim.clone(),
                c.criterion.clone(),
                c.measured_text.clone(),
                if c.reproduced { "yes" } else { "no" }.into(),
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
