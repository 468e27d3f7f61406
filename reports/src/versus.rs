//! The second comparison table: every system at its own limit against P2P
//! at its limit (the seed's claims stay P2P versus standard, in
//! [`crate::headline`]). With the cells and sharded systems this is what
//! places P2P among the other ways to scale: cells relieve the per-cell
//! services but not the global ones; the sharded control is P2P without the
//! agents, so the difference between the two is what the agents add.

use serde::{Deserialize, Serialize};

use crate::headline::{Ratio, RatioKind, SystemAtLimit};
use crate::text::{pct, secs};
use crate::{Prepared, SystemKind};

/// P2P's value / this system's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VsRatio {
    /// `None` (JSON `null`) unless `kind` is `finite`.
    pub value: Option<f64>,
    pub kind: RatioKind,
    pub p2p: f64,
    pub system: f64,
}

impl VsRatio {
    fn new(p2p: f64, system: f64) -> Self {
        let r = Ratio::new(p2p, system);
        VsRatio {
            value: r.value,
            kind: r.kind,
            p2p,
            system,
        }
    }

    /// `4.20×`, `∞ (… is 0)` or `undefined (0 / 0)`.
    pub fn display(&self) -> String {
        Ratio::new(self.p2p, self.system)
            .display()
            .replace("standard is 0", "this system is 0")
    }
}

/// One system against P2P, both at their limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersusP2p {
    /// `standard`, `cells`, `sharded`, … (`system.kind`, else the label).
    pub kind: String,
    pub at_limit: SystemAtLimit,
    /// Successful boots at the limits, P2P / this system.
    pub vms: VsRatio,
    pub makespan: VsRatio,
    pub mean_boot_time: VsRatio,
    pub error_rate: VsRatio,
    /// P2P booted more servers at its limit, with an error rate no higher.
    pub p2p_ahead: bool,
}

/// Every non-P2P system with a limit against the one P2P run (none when
/// there is not exactly one P2P run with a limit).
pub fn compute(prepared: &[Prepared<'_>]) -> Vec<VersusP2p> {
    let p2p: Vec<&Prepared<'_>> = prepared
        .iter()
        .filter(|p| p.kind == SystemKind::P2p)
        .collect();
    let [p2p] = p2p.as_slice() else {
        return Vec::new();
    };
    let Some(p) = SystemAtLimit::of(p2p) else {
        return Vec::new();
    };
    prepared
        .iter()
        .filter(|o| o.kind != SystemKind::P2p)
        .filter_map(|o| {
            let s = SystemAtLimit::of(o)?;
            Some(VersusP2p {
                kind: o.run.system.kind.clone().unwrap_or_else(|| o.label.clone()),
                vms: VsRatio::new(f64::from(p.succeeded), f64::from(s.succeeded)),
                makespan: VsRatio::new(p.makespan_s, s.makespan_s),
                mean_boot_time: VsRatio::new(p.mean_boot_s, s.mean_boot_s),
                error_rate: VsRatio::new(p.error_rate, s.error_rate),
                p2p_ahead: p.succeeded > s.succeeded && p.error_rate <= s.error_rate,
                at_limit: s,
            })
        })
        .collect()
}

const HEADER: [&str; 9] = [
    "system",
    "limit level",
    "succeeded",
    "error rate",
    "makespan (s)",
    "VMs P2P/system",
    "makespan P2P/system",
    "mean boot P2P/system",
    "P2P ahead",
];

fn row(v: &VersusP2p) -> [String; 9] {
    let s = &v.at_limit;
    [
        s.label.clone(),
        s.limit_level.to_string(),
        s.succeeded.to_string(),
        pct(s.error_rate),
        secs(s.makespan_s),
        v.vms.display(),
        v.makespan.display(),
        v.mean_boot_time.display(),
        if v.p2p_ahead { "yes" } else { "no" }.to_string(),
    ]
}

/// What the table is for, in one paragraph (Markdown and HTML alike).
pub const EXPLAIN: &str = "Each system at its own limit against P2P at its limit. \
The sharded control is the same cloudlets as P2P without agents (the client round-robins, \
nobody places a boot elsewhere): P2P versus sharded is what the agents add. Cells v2 relieves \
the per-cell conductor and message bus but not the global API, super-conductor, scheduler and \
neutron-server. P2P ahead: more servers booted at its limit with an error rate no higher.";

pub fn markdown(rows: &[VersusP2p]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut out = format!("## Every system versus P2P\n\n{EXPLAIN}\n\n");
    out.push_str(&format!("| {} |\n", HEADER.join(" | ")));
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for v in rows {
        out.push_str(&format!("| {} |\n", row(v).join(" | ")));
    }
    out.push('\n');
    out
}

pub fn html(rows: &[VersusP2p]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let esc = crate::text::escape;
    let mut s = format!(
        "<section class=\"card\"><h2>Every system versus P2P</h2><p class=\"def\">{}</p><table><thead><tr>",
        esc(EXPLAIN)
    );
    for h in HEADER {
        s.push_str(&format!("<th>{}</th>", esc(h)));
    }
    s.push_str("</tr></thead><tbody>\n");
    for v in rows {
        s.push_str("<tr>");
        for c in row(v) {
            s.push_str(&format!("<td>{}</td>", esc(&c)));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody></table></section>\n");
    s
}
