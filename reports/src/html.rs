//! `index.html`: one self-contained page (inline CSS and SVG, no script, no
//! external font or URL). The first screen answers the question: did P2P
//! beat standard at each system's limit, by how much, and which of the
//! seed's claims were reproduced.

use results::RunResults;

use crate::charts::Chart;
use crate::headline::{Flag, Headline, SystemAtLimit, Verdict};
use crate::text::{escape, pct, secs, short};
use crate::{Prepared, ReportOptions};

/// The page style, shared with the sensitivity report.
pub(crate) const CSS: &str = r#"
:root { --ink:#1f2933; --muted:#52606d; --line:#e4e7eb; --good:#0f7b5f; --goodbg:#e3f6ef; --bad:#b42318; --badbg:#fdecea; --warnbg:#fff4d6; --warn:#8a5a00; }
* { box-sizing: border-box; }
body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif; color: var(--ink); background: #f5f7fa; font-size: 14px; line-height: 1.45; }
main { max-width: 1240px; margin: 0 auto; padding: 18px 24px 40px; }
h1 { font-size: 22px; margin: 0 0 2px; }
h2 { font-size: 17px; margin: 26px 0 10px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.sub { color: var(--muted); margin: 0 0 12px; }
.banner { border-left: 5px solid #d69e00; background: var(--warnbg); color: var(--warn); padding: 8px 12px; margin: 8px 0; border-radius: 4px; font-weight: 600; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 18px; margin: 10px 0; }
.verdict { display: flex; gap: 18px; align-items: center; }
.verdict .big { font-size: 24px; font-weight: 700; white-space: nowrap; padding: 8px 14px; border-radius: 6px; }
.verdict .big.good { color: var(--good); background: var(--goodbg); }
.verdict .big.bad { color: var(--bad); background: var(--badbg); }
.verdict p { margin: 0; font-size: 15px; }
.cols { display: grid; grid-template-columns: 1fr; gap: 0; }
.cols .card h3 { margin: 0 0 4px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12.5px; color: var(--muted); font-weight: 600; white-space: nowrap; }
td.num { white-space: nowrap; }
.tag { display: inline-block; margin-left: 6px; padding: 0 6px; border-radius: 8px; background: #1f6feb; color: #fff; font-size: 11px; font-weight: 600; }
table.levels { font-size: 13px; }
td.num, th.num { text-align: right; }
tr.limit td { background: #eef6ff; font-weight: 600; }
.und { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 700; font-size: 12px; white-space: nowrap; color: var(--warn); background: var(--warnbg); }
.verdict .big.und { color: var(--warn); background: var(--warnbg); }
.yes, .no { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 700; font-size: 12px; white-space: nowrap; }
.yes { color: var(--good); background: var(--goodbg); }
.no { color: var(--bad); background: var(--badbg); }
.def { color: var(--muted); font-size: 13px; margin: 10px 0 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 14px; }
figure { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 8px; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 12.5px; padding: 4px 6px 2px; }
footer { margin-top: 28px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 0; font-size: 13px; }
dt { color: var(--muted); }
dd { margin: 0; font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; word-break: break-all; }
.runs { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 14px; }
"#;

/// `(limit level, all boots of it succeeded)` when no level above the
/// limit was run: the system was not taken past its limit.
fn not_past_limit(p: &Prepared<'_>) -> Option<(u32, bool)> {
    let l = p.limit_level()?;
    let past = p.levels.iter().any(|x| x.level > l.level);
    (!past).then_some((l.level, l.requested > 0 && l.succeeded == l.requested))
}

/// Warnings for the banner: incomplete runs, host-bound runs, systems not
/// taken past their limit, audits that found leftovers or failed deletes.
pub fn warnings(prepared: &[Prepared<'_>]) -> Vec<String> {
    let mut out = Vec::new();
    for p in prepared {
        let r = p.run;
        if let Some((top, all_ok)) = not_past_limit(p) {
            out.push(format!(
                "{}: not taken past its limit: its limit is its largest level ({top}){}, so a larger burst might do better, ratios against it are bounds and the claims are undetermined; add a higher level to find it.",
                p.label,
                if all_ok { ", where every boot succeeded" } else { "" }
            ));
        }
        if !r.complete {
            out.push(format!(
                "{}: the run is incomplete{}; its figures cover only the levels that finished.",
                p.label,
                r.incomplete_reason
                    .as_deref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default()
            ));
        }
        if r.host.host_bound == Some(true) {
            out.push(format!(
                "{}: the host, not the system under test, limited this run (host-bound; scheduler lag p99 {} ms); its times overstate the system's.",
                p.label,
                r.host.scheduler_lag_p99_ms.map(short).unwrap_or_else(|| "unknown".into())
            ));
        }
        let dirty: Vec<String> = p
            .levels
            .iter()
            .filter(|l| !l.audit.clean || !l.audit.leftovers.is_empty())
            .map(|l| {
                format!(
                    "level {} ({} leftover{})",
                    l.level,
                    l.audit.leftovers.len(),
                    if l.audit.leftovers.len() == 1 {
                        ""
                    } else {
                        "s"
                    }
                )
            })
            .collect();
        if !dirty.is_empty() {
            out.push(format!(
                "{}: the post-level audit found servers left behind at {}; later levels may have run on a dirty system.",
                p.label,
                dirty.join(", ")
            ));
        }
        out.extend(crate::chaos::warnings(p));
        if p.levels.is_empty() {
            out.push(format!("{}: the run has no levels.", p.label));
        } else if p.limit.is_none() {
            out.push(format!(
                "{}: no level qualifies as the performance limit under the chosen rule.",
                p.label
            ));
        }
    }
    out
}

fn shell_quote(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if safe {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map(|x| x.to_string())
        .unwrap_or_else(|| "not recorded".into())
}

/// Everything needed to rerun a run, as (name, value) pairs.
pub fn rerun_facts(p: &Prepared<'_>) -> Vec<(String, String)> {
    let r: &RunResults = p.run;
    let s = &r.system;
    let levels: Vec<String> = p.levels.iter().map(|l| l.level.to_string()).collect();
    vec![
        (
            "command line".into(),
            r.command_line
                .iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        ("experiment".into(), r.experiment.clone()),
        (
            "system".into(),
            format!(
                "{} (kind {}, {} cloudlet(s), {} compute(s))",
                s.label,
                opt(&s.kind),
                opt(&s.cloudlets),
                opt(&s.computes)
            ),
        ),
        ("backend".into(), opt(&s.backend)),
        ("profile".into(), opt(&s.profile)),
        ("profile hash (FNV-1a 64)".into(), opt(&s.profile_hash)),
        ("scenario".into(), opt(&s.scenario)),
        (
            "scenario detail".into(),
            s.scenario_detail.clone().unwrap_or_else(|| "none".into()),
        ),
        ("agent retries".into(), opt(&s.retries)),
        ("seed".into(), r.seed.to_string()),
        (
            "time scale".into(),
            format!(
                "{} wall s per model s (from {})",
                r.time_scale, r.time_scale_source
            ),
        ),
        ("levels".into(), levels.join(", ")),
        (
            "target".into(),
            format!(
                "{} ({}), flavor {}, image {}",
                r.target.entries.join(" "),
                r.target.entry_policy,
                opt(&r.target.flavor),
                opt(&r.target.image)
            ),
        ),
        ("tool".into(), format!("{} {}", r.tool.name, r.tool.version)),
        ("git revision".into(), opt(&r.tool.git_revision)),
        ("host CPUs".into(), r.host.cpus.to_string()),
        ("host-bound".into(), opt(&r.host.host_bound)),
        (
            "scheduler lag p99".into(),
            r.host
                .scheduler_lag_p99_ms
                .map(|v| format!("{} ms", short(v)))
                .unwrap_or_else(|| "not recorded".into()),
        ),
        (
            "run".into(),
            format!(
                "{} → {}{}",
                r.started_at,
                r.finished_at,
                if r.complete { "" } else { " (incomplete)" }
            ),
        ),
    ]
}

fn limits_table(h: Option<&Headline>, prepared: &[Prepared<'_>]) -> String {
    let mut s = String::from(
        "<table id=\"limits\"><thead><tr><th>system at its limit</th><th class=\"num\">level</th><th class=\"num\">VMs ACTIVE</th><th class=\"num\">makespan</th><th class=\"num\">mean boot</th><th class=\"num\">p95 boot</th><th class=\"num\">error rate</th><th>what failed</th></tr></thead><tbody>\n",
    );
    let rows: Vec<(String, Option<SystemAtLimit>)> = match h {
        Some(h) => vec![
            (h.standard.label.clone(), Some(h.standard.clone())),
            (h.p2p.label.clone(), Some(h.p2p.clone())),
        ],
        None => prepared
            .iter()
            .map(|p| (p.label.clone(), SystemAtLimit::of(p)))
            .collect(),
    };
    for (label, x) in rows {
        match x {
            Some(x) => s.push_str(&format!(
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{} / {}</td><td class=\"num\">{} s</td><td class=\"num\">{} s</td><td class=\"num\">{} s</td><td class=\"num\">{}</td><td>{}</td></tr>\n",
                escape(&label),
                x.limit_level,
                x.succeeded,
                x.requested,
                short(x.makespan_s),
                short(x.mean_boot_s),
                short(x.p95_boot_s),
                pct(x.error_rate),
                escape(
                    &x.failures
                        .iter()
                        .map(|f| format!("{} × {}", f.count, f.mechanism))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            )),
            None => s.push_str(&format!(
                "<tr><td>{}</td><td colspan=\"7\">no level qualifies as the limit</td></tr>\n",
                escape(&label)
            )),
        }
    }
    s.push_str("</tbody></table>\n");
    s
}

fn headline_section(h: &Headline, prepared: &[Prepared<'_>], opts: &ReportOptions) -> String {
    let mut s = String::new();
    let (cls, big) = match (h.evidence.flags.is_empty(), h.p2p_beat_standard) {
        (false, _) => ("und", "Undetermined"),
        (true, true) => ("good", "P2P beat standard"),
        (true, false) => ("bad", "P2P did not beat standard"),
    };
    let why = h
        .evidence
        .reason()
        .map(|r| format!(" <b>Why undetermined:</b> {}", escape(&r)))
        .unwrap_or_default();
    s.push_str(&format!(
        "<section class=\"card\"><div class=\"verdict\"><div class=\"big {cls}\">{big}</div><p>At {}, P2P booted <b>{}</b> the VMs ({} vs {}) in <b>{}</b> the makespan (mean boot time {}), with <b>{}</b> the error rate ({} vs {}). Seed claims: <b>{} reproduced</b>, {} not reproduced, {} undetermined.{why}</p></div></section>\n",
        if h.evidence.flags.is_empty() {
            "each system's performance limit"
        } else {
            "the limits found"
        },
        escape(&h.ratios.vms.display()),
        h.p2p.succeeded,
        h.standard.succeeded,
        escape(&h.ratios.makespan.display()),
        escape(&h.ratios.mean_boot_time.display()),
        escape(&h.ratios.error_rate.display()),
        pct(h.p2p.error_rate),
        pct(h.standard.error_rate),
        h.claims_reproduced,
        h.claims_not_reproduced,
        h.claims_undetermined
    ));
    s.push_str("<div class=\"cols\"><section class=\"card\"><h3 style=\"margin-top:0\">The seed's claims</h3>\n");
    s.push_str("<table id=\"headline\"><thead><tr><th>seed claim</th><th>criterion</th><th>measured (P2P / standard)</th><th>verdict</th></tr></thead><tbody>\n");
    for c in &h.claims {
        let badge = match c.verdict {
            Verdict::Reproduced => "<span class=\"yes\">✓ reproduced</span>".to_string(),
            Verdict::NotReproduced => "<span class=\"no\">✗ not reproduced</span>".to_string(),
            Verdict::Undetermined => format!(
                "<span class=\"und\">? undetermined</span><br><small>criterion {} by the measured ratio; flags: {}</small>",
                if c.criterion_met { "met" } else { "not met" },
                escape(&flag_list(&c.flags))
            ),
        };
        let note = c
            .note
            .iter()
            .chain(c.reason.iter())
            .map(|n| format!("<br><small>{}</small>", escape(n)))
            .collect::<String>();
        s.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}{note}</td><td>{badge}</td></tr>\n",
            escape(&c.seed_claim),
            escape(&c.criterion),
            escape(&c.measured_text)
        ));
    }
    s.push_str("</tbody></table></section>\n<section class=\"card\"><h3 style=\"margin-top:0\">Each system at its limit</h3>\n");
    s.push_str(&limits_table(Some(h), prepared));
    s.push_str("</section></div>\n");
    s.push_str(&definitions(opts));
    s
}

/// `standard_not_past_limit, scale_check_disagrees`, as in headline.json.
pub(crate) fn flag_list(flags: &[Flag]) -> String {
    flags
        .iter()
        .map(|f| {
            serde_json::to_value(f)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| format!("{f:?}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn definitions(opts: &ReportOptions) -> String {
    let t = &opts.claims;
    format!(
        "<p class=\"def\"><b>Performance limit</b> (rule <code>{}</code>): {} <b>Claims</b> (Ericsson Research, CloudCom 2017: at both limits, P2P boots 4× more VMs in about half the time with an error rate below one third): “4× more” counts as reproduced when P2P/standard successful VMs ≥ {}; “about half the time” when P2P/standard makespan ≤ {} (the mean-boot-time ratio is shown but does not decide); “below one third” when P2P/standard error rate &lt; {} strictly (a standard error rate of 0 cannot be beaten). <b>Verdicts:</b> a claim is <i>undetermined</i>, never reproduced, when either system's sweep ended at its limit (no level above the limit was run), when a run was host-bound, or when the scale check disagreed (scale check: {}). Times are model seconds.</p>\n",
        escape(&opts.limit.to_string()),
        escape(&opts.limit.definition()),
        short(t.vms_min_ratio),
        short(t.time_max_ratio),
        if (t.error_below_ratio - 1.0 / 3.0).abs() < 1e-12 {
            "1/3".to_string()
        } else {
            short(t.error_below_ratio)
        },
        opts.scale_check.label()
    )
}

fn level_tables(prepared: &[Prepared<'_>]) -> String {
    let mut s = String::from("<h2>Every level</h2>\n<div>\n");
    for p in prepared {
        s.push_str(&format!(
            "<section class=\"card\"><h3 style=\"margin-top:0\">{} <small style=\"color:#52606d\">({})</small></h3>\n<table class=\"levels\"><thead><tr><th class=\"num\">level</th><th class=\"num\">ok / requested</th><th class=\"num\">error rate</th><th class=\"num\">makespan (s)</th><th class=\"num\">throughput (/s)</th><th class=\"num\">boot p50</th><th class=\"num\">p95</th><th class=\"num\">p99</th></tr></thead><tbody>\n",
            escape(&p.label),
            p.kind
        ));
        for (i, l) in p.levels.iter().enumerate() {
            let b = &l.boot_time;
            s.push_str(&format!(
                "<tr{}><td class=\"num\">{}{}</td><td class=\"num\">{} / {}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.3}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
                if p.is_limit(i) { " class=\"limit\"" } else { "" },
                l.level,
                if p.is_limit(i) { "<span class=\"tag\">limit</span>" } else { "" },
                l.succeeded,
                l.requested,
                pct(l.error_rate),
                secs(l.makespan_s),
                l.throughput_per_s,
                short(b.p50_s),
                short(b.p95_s),
                short(b.p99_s)
            ));
        }
        s.push_str("</tbody></table></section>\n");
    }
    s.push_str("</div>\n");
    s
}

/// The whole page.
pub fn page(
    prepared: &[Prepared<'_>],
    headline: Option<&Headline>,
    charts: &[Chart],
    opts: &ReportOptions,
) -> String {
    let title = crate::title(prepared, opts);
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{CSS}</style></head>\n<body><main>\n",
        escape(&title)
    );
    let systems: Vec<String> = prepared
        .iter()
        .map(|p| {
            let r = &p.run.system;
            format!(
                "{} ({}{})",
                p.label,
                p.kind,
                r.computes
                    .map(|c| format!(", {c} computes"))
                    .unwrap_or_default()
            )
        })
        .collect();
    s.push_str(&format!(
        "<h1>{}</h1><p class=\"sub\">{} · experiment {} · times in {}</p>\n",
        escape(&title),
        escape(&systems.join(" vs ")),
        escape(
            &prepared
                .first()
                .map(|p| p.run.experiment.clone())
                .unwrap_or_default()
        ),
        crate::charts::time_unit_words(prepared)
    ));
    for w in warnings(prepared) {
        s.push_str(&format!("<div class=\"banner\">⚠ {}</div>\n", escape(&w)));
    }
    match headline {
        Some(h) => s.push_str(&headline_section(h, prepared, opts)),
        None => {
            s.push_str("<section class=\"card\"><p><b>No headline:</b> it needs exactly one standard and one P2P run (by <code>system.kind</code> or label). Each system at its limit:</p>\n");
            s.push_str(&limits_table(None, prepared));
            s.push_str("</section>\n");
            s.push_str(&definitions(opts));
        }
    }
    s.push_str("<h2>Charts</h2>\n<div class=\"grid\">\n");
    for c in charts {
        s.push_str(&format!(
            "<figure>{}<figcaption>{} <span style=\"color:#9aa5b1\">({})</span></figcaption></figure>\n",
            c.svg.trim_end(),
            escape(&c.caption),
            escape(&c.file)
        ));
    }
    s.push_str("</div>\n");
    s.push_str(&level_tables(prepared));
    s.push_str(&crate::chaos::html(prepared));
    s.push_str("<footer><h2>Rerun this experiment</h2>\n<div class=\"runs\">\n");
    for p in prepared {
        s.push_str(&format!(
            "<section class=\"card\"><h3 style=\"margin-top:0\">{}</h3><dl>\n",
            escape(&p.label)
        ));
        for (k, v) in rerun_facts(p) {
            s.push_str(&format!("<dt>{}</dt><dd>{}</dd>\n", escape(&k), escape(&v)));
        }
        s.push_str("</dl></section>\n");
    }
    s.push_str("</div>\n<p class=\"def\">Generated by the p2pstack <code>report</code> tool. Files beside this page: summary.md, summary.csv, headline.json and each chart as SVG.</p></footer>\n</main></body></html>\n");
    s
}
