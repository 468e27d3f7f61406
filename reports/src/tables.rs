//! `summary.md` and `summary.csv`.
//!
//! Number formats (shared with the HTML tables): seconds with 3 decimals,
//! error rates as fractions with 4 decimals in CSV and as percentages with
//! 1 decimal in Markdown, throughput with 3 decimals.

use results::{LevelResult, Outcome};

use crate::headline::Headline;
use crate::text::{pct, secs};
use crate::{Prepared, ReportOptions};

fn outcome(l: &LevelResult, o: Outcome) -> u32 {
    l.outcomes.get(&o).copied().unwrap_or(0)
}

/// The CSV header, one column per field of [`csv`]'s rows.
pub const CSV_HEADER: &str = "system,kind,level,is_limit,requested,succeeded,failed,error_rate,\
makespan_s,throughput_per_s,boot_mean_s,boot_p50_s,boot_p90_s,boot_p95_s,boot_p99_s,boot_max_s,\
api_error,error_state,timeout,transport_error,dropped,placed_remotely,audit_leftovers,\
lost,orphaned,resurrected";

fn count(l: &LevelResult, set: fn(&results::Durability) -> &Vec<String>) -> String {
    l.durability
        .as_ref()
        .map(|d| set(d).len().to_string())
        .unwrap_or_default()
}

/// The durability counts of a chaos run as a terminal table.
pub fn durability_text(runs: &[results::RunResults]) -> String {
    crate::chaos::text(runs)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One row per system and level, systems in input order, levels ascending.
pub fn csv(prepared: &[Prepared<'_>]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for p in prepared {
        for (i, l) in p.levels.iter().enumerate() {
            let b = &l.boot_time;
            let fields = [
                csv_field(&p.label),
                p.kind.to_string(),
                l.level.to_string(),
                p.is_limit(i).to_string(),
                l.requested.to_string(),
                l.succeeded.to_string(),
                l.failed.to_string(),
                format!("{:.4}", l.error_rate),
                secs(l.makespan_s),
                format!("{:.3}", l.throughput_per_s),
                secs(b.mean_s),
                secs(b.p50_s),
                secs(b.p90_s),
                secs(b.p95_s),
                secs(b.p99_s),
                secs(b.max_s),
                outcome(l, Outcome::ApiError).to_string(),
                outcome(l, Outcome::ErrorState).to_string(),
                outcome(l, Outcome::Timeout).to_string(),
                outcome(l, Outcome::TransportError).to_string(),
                outcome(l, Outcome::Dropped).to_string(),
                l.placed_remotely.map(|v| v.to_string()).unwrap_or_default(),
                l.audit.leftovers.len().to_string(),
                // Empty when the level was not checked (no chaos scenario).
                count(l, |d| &d.lost),
                count(l, |d| &d.orphaned),
                count(l, |d| &d.resurrected),
            ];
            out.push_str(&fields.join(","));
            out.push('\n');
        }
    }
    out
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn opt_yes_no(b: Option<bool>) -> &'static str {
    b.map(yes_no).unwrap_or("not recorded")
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The headline (if any), the limit definition and one level table per
/// system.
pub fn markdown(
    prepared: &[Prepared<'_>],
    headline: Option<&Headline>,
    opts: &ReportOptions,
) -> String {
    let mut out = format!("# {}\n\n", md_cell(&crate::title(prepared, opts)));
    for w in crate::html::warnings(prepared) {
        out.push_str(&format!("> **Warning:** {}\n\n", md_cell(&w)));
    }
    out.push_str(&format!(
        "**Performance limit** (`{}`): {}\n\n",
        opts.limit,
        opts.limit.definition()
    ));
    if let Some(h) = headline {
        out.push_str("## Headline\n\n");
        out.push_str(&format!("{}\n\n", md_cell(&h.verdict)));
        out.push_str("| system | limit level | succeeded | makespan (s) | mean boot (s) | p95 boot (s) | error rate | what failed |\n");
        out.push_str("|---|---:|---:|---:|---:|---:|---:|---|\n");
        for s in [&h.standard, &h.p2p] {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                md_cell(&s.label),
                s.limit_level,
                s.succeeded,
                secs(s.makespan_s),
                secs(s.mean_boot_s),
                secs(s.p95_boot_s),
                pct(s.error_rate),
                md_cell(
                    &s.failures
                        .iter()
                        .map(|f| format!("{} × {}", f.count, f.category))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            ));
        }
        out.push_str("\n| seed claim | criterion | measured (P2P/standard) | verdict |\n");
        out.push_str("|---|---|---|---|\n");
        for c in &h.claims {
            let verdict = if c.flags.is_empty() {
                c.verdict.label().to_string()
            } else {
                format!(
                    "{} (criterion {}; {})",
                    c.verdict.label(),
                    if c.criterion_met { "met" } else { "not met" },
                    crate::html::flag_list(&c.flags)
                )
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                md_cell(&c.seed_claim),
                md_cell(&c.criterion),
                md_cell(&c.measured_text),
                md_cell(&verdict)
            ));
        }
        out.push('\n');
        if let Some(r) = h.evidence.reason() {
            out.push_str(&format!("**Why undetermined:** {}\n\n", md_cell(&r)));
        }
        out.push_str(&format!(
            "Evidence: standard past its limit: {}; P2P past its limit: {}; host-bound: standard {}, P2P {}; scale check: {}.\n\n",
            yes_no(h.evidence.standard.past_limit),
            yes_no(h.evidence.p2p.past_limit),
            opt_yes_no(h.evidence.standard.host_bound),
            opt_yes_no(h.evidence.p2p.host_bound),
            h.evidence.scale_check.label()
        ));
    } else {
        out.push_str(
            "_No headline: it needs exactly one standard and one P2P run (by `system.kind` or label)._\n\n",
        );
    }
    out.push_str("## Levels\n\nTimes are model seconds; the limit level is in bold.\n\n");
    for p in prepared {
        out.push_str(&format!("### {} ({})\n\n", md_cell(&p.label), p.kind));
        out.push_str("| level | requested | succeeded | failed | error rate | makespan (s) | throughput (/s) | boot mean (s) | p50 | p95 | p99 | max |\n");
        out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (i, l) in p.levels.iter().enumerate() {
            let b = &l.boot_time;
            let level = if p.is_limit(i) {
                format!("**{}** (limit)", l.level)
            } else {
                l.level.to_string()
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {:.3} | {} | {} | {} | {} | {} |\n",
                level,
                l.requested,
                l.succeeded,
                l.failed,
                pct(l.error_rate),
                secs(l.makespan_s),
                l.throughput_per_s,
                secs(b.mean_s),
                secs(b.p50_s),
                secs(b.p95_s),
                secs(b.p99_s),
                secs(b.max_s)
            ));
        }
        out.push('\n');
    }
    out.push_str(&crate::chaos::markdown(prepared));
    out.push_str("## Rerun\n\n");
    for p in prepared {
        out.push_str(&format!("### {}\n\n", md_cell(&p.label)));
        for (k, v) in crate::html::rerun_facts(p) {
            out.push_str(&format!("- {}: `{}`\n", k, v.replace('`', "'")));
        }
        out.push('\n');
    }
    out
}
