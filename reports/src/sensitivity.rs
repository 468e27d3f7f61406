//! The sensitivity report: how far each assumed parameter moves the seed's
//! three claim ratios, and under which values each claim holds.
//!
//! The experiment (`testbed sensitivity`) runs one comparison per setting
//! (one parameter changed, the others at the profile's values) and hands
//! the headlines here. This module is pure: it orders the tornado bars and
//! writes the files; the charts are drawn in [`crate::sensitivity_charts`].
//!
//! | file | content |
//! |---|---|
//! | `index.html` | self-contained page: claim map, one tornado per claim ratio, parameter table |
//! | `sensitivity.csv` | one row per setting: parameter, value, ratios, verdicts, limits |
//! | `summary.md` | the claim map and the tornado order in Markdown |
//! | `sensitivity.json` | everything above, with each setting's headline |
//! | `tornado-{vms,makespan,error-rate}.svg` | the tornado charts |
//! | `claim-map.svg` | the claim map |

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::headline::{ClaimThresholds, Headline, Ratio, RatioKind, Verdict};
use crate::text::{escape, short};
use crate::ReportError;

pub const SCHEMA: &str = "p2pstack/sensitivity";
pub const SCHEMA_VERSION: u32 = 1;

/// One parameter that was varied, as the report describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParameterInfo {
    /// Short name, e.g. `api_workers`.
    pub name: String,
    /// What it is, in words.
    pub description: String,
    /// What it changes: profile keys (`api.workers`) or a compare flag.
    pub changes: String,
    /// The values run, lowest first, as shown.
    pub values: Vec<String>,
    /// Where the range comes from, or `assumed`.
    pub source: String,
}

/// One comparison: a parameter at one value (the others at the baseline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingResult {
    pub parameter: String,
    /// `low`, `default`, `high` (or `v1` … for more values).
    pub label: String,
    /// The value as shown.
    pub value: String,
    /// This setting is the baseline (every parameter at its default): its
    /// comparison was run once and is shared by every parameter.
    pub baseline: bool,
    /// Where its comparison's report is, relative to the output directory.
    pub run_dir: String,
    /// `None` when the comparison failed (see `error`).
    pub headline: Option<Headline>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How the sensitivity run was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub cloudlets: u32,
    pub backend: String,
    pub seed: u64,
    pub profile: String,
    pub limit_rule: String,
    /// Values per parameter.
    pub values: u32,
    /// Comparisons actually run (the baseline once).
    pub comparisons: u32,
    pub command_line: Vec<String>,
}

/// Everything the report shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sensitivity {
    pub schema: String,
    pub schema_version: u32,
    pub run: RunInfo,
    pub parameters: Vec<ParameterInfo>,
    /// The baseline's headline (`None` if its comparison failed).
    pub baseline: Option<Headline>,
    /// Every setting, parameters in order, values lowest first; the
    /// default values repeat the baseline.
    pub settings: Vec<SettingResult>,
}

/// The three claim ratios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimRatio {
    Vms,
    Makespan,
    ErrorRate,
}

impl ClaimRatio {
    pub const ALL: [ClaimRatio; 3] = [ClaimRatio::Vms, ClaimRatio::Makespan, ClaimRatio::ErrorRate];

    /// File-name part: `vms`, `makespan`, `error-rate`.
    pub fn slug(self) -> &'static str {
        match self {
            ClaimRatio::Vms => "vms",
            ClaimRatio::Makespan => "makespan",
            ClaimRatio::ErrorRate => "error-rate",
        }
    }

    /// The claim's id in [`Headline::claims`].
    pub fn claim_id(self) -> &'static str {
        match self {
            ClaimRatio::Vms => "vms",
            ClaimRatio::Makespan => "time",
            ClaimRatio::ErrorRate => "error_rate",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            ClaimRatio::Vms => "VMs at the limit, P2P / standard",
            ClaimRatio::Makespan => "Makespan at the limit, P2P / standard",
            ClaimRatio::ErrorRate => "Error rate at the limit, P2P / standard",
        }
    }

    /// The seed's claim in its words.
    pub fn seed_claim(self) -> &'static str {
        match self {
            ClaimRatio::Vms => "4× more VMs",
            ClaimRatio::Makespan => "about half the time",
            ClaimRatio::ErrorRate => "error rate below one third",
        }
    }

    pub fn ratio(self, h: &Headline) -> &Ratio {
        match self {
            ClaimRatio::Vms => &h.ratios.vms,
            ClaimRatio::Makespan => &h.ratios.makespan,
            ClaimRatio::ErrorRate => &h.ratios.error_rate,
        }
    }

    /// The criterion's threshold and its wording (`≥ 3.6`).
    pub fn threshold(self, t: &ClaimThresholds) -> (f64, String) {
        match self {
            ClaimRatio::Vms => (t.vms_min_ratio, format!("≥ {}", short(t.vms_min_ratio))),
            ClaimRatio::Makespan => (t.time_max_ratio, format!("≤ {}", short(t.time_max_ratio))),
            ClaimRatio::ErrorRate => (
                t.error_below_ratio,
                format!("< {}", short(t.error_below_ratio)),
            ),
        }
    }

    /// The verdict of this claim in a headline.
    pub fn verdict(self, h: &Headline) -> Option<(Verdict, bool)> {
        h.claims
            .iter()
            .find(|c| c.id == self.claim_id())
            .map(|c| (c.verdict, c.criterion_met))
    }
}

/// A ratio as a CSV cell: the number, `inf` or `undefined`.
pub fn ratio_cell(r: &Ratio) -> String {
    match (r.kind, r.value) {
        (RatioKind::Finite, Some(v)) => format!("{v:.4}"),
        (RatioKind::Infinite, _) => "inf".into(),
        _ => "undefined".into(),
    }
}

/// One point of a tornado bar: a setting's ratio.
#[derive(Debug, Clone, PartialEq)]
pub struct TornadoPoint {
    pub label: String,
    pub value: String,
    /// `None` when the ratio is not a finite number (or the run failed).
    pub x: Option<f64>,
    /// The ratio as shown (`∞`, `undefined`, `failed`).
    pub shown: String,
}

/// One parameter's bar in a tornado chart.
#[derive(Debug, Clone, PartialEq)]
pub struct TornadoBar {
    pub parameter: String,
    /// Lowest and highest finite ratio over the parameter's values and the
    /// baseline (`None`: no finite ratio at all).
    pub span: Option<(f64, f64)>,
    /// `span.1 − span.0`: how far the parameter moves the ratio.
    pub swing: f64,
    /// Some value took the ratio off the number line (∞ or 0/0) where the
    /// baseline is a number, or back onto it: a larger move than any swing.
    pub off_scale: bool,
    /// The parameter's non-default settings.
    pub points: Vec<TornadoPoint>,
}

/// The bars of one claim ratio, largest move first: off-scale moves, then
/// by swing, then by name (a stable order for equal swings).
pub fn tornado(s: &Sensitivity, which: ClaimRatio) -> Vec<TornadoBar> {
    let base = s.baseline.as_ref().map(|h| which.ratio(h));
    let mut bars = Vec::new();
    for p in &s.parameters {
        let mut xs: Vec<f64> = base.and_then(finite).into_iter().collect();
        let mut off_scale = false;
        let mut points = Vec::new();
        for set in s
            .settings
            .iter()
            .filter(|x| x.parameter == p.name && !x.baseline)
        {
            let r = set.headline.as_ref().map(|h| which.ratio(h));
            let x = r.and_then(finite);
            if let Some(v) = x {
                xs.push(v);
            }
            if let (Some(r), Some(b)) = (r, base) {
                off_scale |= r.kind != b.kind;
            }
            points.push(TornadoPoint {
                label: set.label.clone(),
                value: set.value.clone(),
                x,
                shown: match r {
                    Some(r) => shown(r),
                    None => "failed".into(),
                },
            });
        }
        let span = xs.iter().copied().fold(None, |acc: Option<(f64, f64)>, v| {
            Some(acc.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))
        });
        bars.push(TornadoBar {
            parameter: p.name.clone(),
            swing: span.map_or(0.0, |(lo, hi)| hi - lo),
            span,
            off_scale,
            points,
        });
    }
    order(&mut bars);
    bars
}

/// Off-scale first, then the largest swing, then by name.
pub fn order(bars: &mut [TornadoBar]) {
    bars.sort_by(|a, b| {
        b.off_scale
            .cmp(&a.off_scale)
            .then(b.swing.total_cmp(&a.swing))
            .then(a.parameter.cmp(&b.parameter))
    });
}

fn finite(r: &Ratio) -> Option<f64> {
    match (r.kind, r.value) {
        (RatioKind::Finite, Some(v)) if v.is_finite() => Some(v),
        _ => None,
    }
}

/// `2.31`, `∞` or `undefined`.
fn shown(r: &Ratio) -> String {
    match (r.kind, r.value) {
        (RatioKind::Finite, Some(v)) => short(v),
        (RatioKind::Infinite, _) => "∞".into(),
        _ => "undefined".into(),
    }
}

/// One CSV row per setting (the default values repeat the baseline's
/// figures, `baseline` = true).
pub fn csv(s: &Sensitivity) -> String {
    let mut out = String::from(
        "parameter,label,value,baseline,vms_ratio,makespan_ratio,error_rate_ratio,\
         vms_verdict,time_verdict,error_rate_verdict,\
         vms_criterion_met,time_criterion_met,error_rate_criterion_met,\
         standard_limit_level,p2p_limit_level,standard_succeeded,p2p_succeeded,\
         standard_error_rate,p2p_error_rate,standard_makespan_s,p2p_makespan_s,\
         standard_failed_by,p2p_failed_by,flags,run_dir,error\n",
    );
    for set in &s.settings {
        let mut row: Vec<String> = vec![
            set.parameter.clone(),
            set.label.clone(),
            set.value.clone(),
            set.baseline.to_string(),
        ];
        match &set.headline {
            Some(h) => {
                for c in ClaimRatio::ALL {
                    row.push(ratio_cell(c.ratio(h)));
                }
                let verdicts: Vec<Option<(Verdict, bool)>> =
                    ClaimRatio::ALL.iter().map(|c| c.verdict(h)).collect();
                for v in &verdicts {
                    row.push(v.map_or("missing".into(), |(v, _)| verdict_id(v).into()));
                }
                for v in &verdicts {
                    row.push(v.map_or(String::new(), |(_, met)| met.to_string()));
                }
                row.extend([
                    h.standard.limit_level.to_string(),
                    h.p2p.limit_level.to_string(),
                    h.standard.succeeded.to_string(),
                    h.p2p.succeeded.to_string(),
                    format!("{:.4}", h.standard.error_rate),
                    format!("{:.4}", h.p2p.error_rate),
                    format!("{:.3}", h.standard.makespan_s),
                    format!("{:.3}", h.p2p.makespan_s),
                    h.standard
                        .failures
                        .first()
                        .map(|f| f.category.clone())
                        .unwrap_or_default(),
                    h.p2p
                        .failures
                        .first()
                        .map(|f| f.category.clone())
                        .unwrap_or_default(),
                    h.evidence
                        .flags
                        .iter()
                        .map(|f| flag_id(*f))
                        .collect::<Vec<_>>()
                        .join(" "),
                ]);
            }
            None => row.extend(std::iter::repeat_n(String::new(), 20)),
        }
        row.push(set.run_dir.clone());
        row.push(set.error.clone().unwrap_or_default());
        let cells: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn verdict_id(v: Verdict) -> &'static str {
    match v {
        Verdict::Reproduced => "reproduced",
        Verdict::NotReproduced => "not_reproduced",
        Verdict::Undetermined => "undetermined",
    }
}

fn flag_id(f: crate::headline::Flag) -> String {
    serde_json::to_value(f)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The claim map's cell of one setting and claim: verdict, and whether the
/// measured ratio met the criterion (it can while the verdict is
/// undetermined).
pub fn cell(set: &SettingResult, which: ClaimRatio) -> (String, &'static str) {
    match &set.headline {
        None => ("failed".into(), "fail"),
        Some(h) => match which.verdict(h) {
            None => ("missing".into(), "fail"),
            Some((Verdict::Reproduced, _)) => ("holds".into(), "yes"),
            Some((Verdict::NotReproduced, _)) => ("does not hold".into(), "no"),
            Some((Verdict::Undetermined, met)) => (
                format!(
                    "undetermined (criterion {})",
                    if met { "met" } else { "not met" }
                ),
                "und",
            ),
        },
    }
}

/// The summary in Markdown: claim map, then each tornado's order.
pub fn markdown(s: &Sensitivity) -> String {
    let th = ClaimThresholds::default();
    let mut out = format!(
        "# Sensitivity of the seed's claims\n\n{} cloudlets, backend {}, seed {}, profile {}, limit rule {}; {} values per parameter, {} comparisons.\n\n",
        s.run.cloudlets, s.run.backend, s.run.seed, s.run.profile, s.run.limit_rule, s.run.values, s.run.comparisons
    );
    match &s.baseline {
        Some(h) => out.push_str(&format!(
            "Baseline (every parameter at its default): {}\n\n",
            h.verdict
        )),
        None => out.push_str("The baseline comparison failed: no tornado can be drawn.\n\n"),
    }
    out.push_str("## Claim map\n\nFor each parameter value: does each claim hold (`holds` = reproduced; `undetermined` = the comparison cannot decide, e.g. a system was not taken past its limit).\n\n");
    out.push_str("| parameter | value | 4× more VMs | about half the time | error rate below one third | limits (standard / P2P) |\n|---|---|---|---|---|---|\n");
    for set in &s.settings {
        let cells: Vec<String> = ClaimRatio::ALL
            .iter()
            .map(|c| {
                let (text, _) = cell(set, *c);
                let r = set
                    .headline
                    .as_ref()
                    .map(|h| format!(" ({})", shown(c.ratio(h))))
                    .unwrap_or_default();
                format!("{text}{r}")
            })
            .collect();
        let limits = set
            .headline
            .as_ref()
            .map(|h| format!("{} / {}", h.standard.limit_level, h.p2p.limit_level))
            .unwrap_or_else(|| set.error.clone().unwrap_or_default());
        out.push_str(&format!(
            "| {} | {}{} | {} | {} | {} | {} |\n",
            set.parameter,
            set.value,
            if set.baseline { " (default)" } else { "" },
            cells[0],
            cells[1],
            cells[2],
            limits.replace('|', "/")
        ));
    }
    for c in ClaimRatio::ALL {
        let (_, crit) = c.threshold(&th);
        out.push_str(&format!(
            "\n## Tornado: {} (claim: {}, ratio {crit})\n\nBaseline {}. Parameters by how far they move it:\n\n| parameter | ratio over its values | swing |\n|---|---|---|\n",
            c.title(),
            c.seed_claim(),
            s.baseline.as_ref().map(|h| shown(c.ratio(h))).unwrap_or_else(|| "failed".into())
        ));
        for b in tornado(s, c) {
            let pts: Vec<String> = b
                .points
                .iter()
                .map(|p| format!("{} {}: {}", p.label, p.value, p.shown))
                .collect();
            out.push_str(&format!(
                "| {} | {} | {}{} |\n",
                b.parameter,
                pts.join("; "),
                short(b.swing),
                if b.off_scale { " (off scale)" } else { "" }
            ));
        }
    }
    out.push_str("\n## Parameters and their ranges\n\n| parameter | what | changes | values | source |\n|---|---|---|---|---|\n");
    for p in &s.parameters {
        out.push_str(&format!(
            "| {} | {} | `{}` | {} | {} |\n",
            p.name,
            p.description,
            p.changes,
            p.values.join(", "),
            p.source
        ));
    }
    out
}

/// The HTML page (inline CSS and SVG; no script, no external URL).
pub fn page(s: &Sensitivity) -> String {
    let th = ClaimThresholds::default();
    let title = format!(
        "p2pstack sensitivity: the seed's claims at {} cloudlets",
        s.run.cloudlets
    );
    let mut h = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{}</style></head>\n<body><main>\n",
        escape(&title),
        crate::html::CSS
    );
    h.push_str(&format!(
        "<h1>{}</h1><p class=\"sub\">backend {} · seed {} · profile {} · limit rule {} · {} values per parameter, one parameter at a time · {} comparisons (the baseline run once)</p>\n",
        escape(&title),
        escape(&s.run.backend),
        s.run.seed,
        escape(&s.run.profile),
        escape(&s.run.limit_rule),
        s.run.values,
        s.run.comparisons
    ));
    h.push_str("<section class=\"card\"><p>Each comparison changes one assumed parameter and keeps the others at the profile's values; both systems get the same change (the same profile serves the monolith and every cloudlet). The point is not to make the claims hold but to say under which assumptions they do.</p>");
    match &s.baseline {
        Some(b) => h.push_str(&format!(
            "<p><b>Baseline</b> (every parameter at its default): {}</p>",
            escape(&b.verdict)
        )),
        None => {
            h.push_str("<p><b>The baseline comparison failed</b>: no tornado can be drawn.</p>")
        }
    }
    let failed: Vec<&SettingResult> = s.settings.iter().filter(|x| x.error.is_some()).collect();
    h.push_str("</section>\n");
    for f in &failed {
        h.push_str(&format!(
            "<div class=\"banner\">⚠ {} = {}: the comparison failed: {}</div>\n",
            escape(&f.parameter),
            escape(&f.value),
            escape(f.error.as_deref().unwrap_or_default())
        ));
    }
    h.push_str("<h2 id=\"claim-map\">Claim map</h2>\n<p class=\"def\">Does each claim hold at each parameter value? <span class=\"yes\">holds</span> = reproduced, <span class=\"no\">does not hold</span> = not reproduced, <span class=\"und\">undetermined</span> = the comparison cannot decide (a system not taken past its limit, host-bound, …; whether the measured ratio met the criterion is said). The ratio is P2P / standard.</p>\n");
    h.push_str(&claim_map_table(s));
    h.push_str(&format!(
        "<figure style=\"margin-top:12px\">{}<figcaption>Claim map (claim-map.svg)</figcaption></figure>\n",
        crate::sensitivity_charts::claim_map(s).trim_end()
    ));
    h.push_str("<h2>Tornado charts</h2>\n<p class=\"def\">One bar per parameter: the span of the claim ratio over the parameter's values, with the baseline (every parameter at its default) as the solid line and the claim's threshold dotted. Sorted by swing (the span's width); a value that takes the ratio to ∞ or 0/0 where the baseline is a number is off scale and sorts first.</p>\n<div class=\"grid\">\n");
    for c in ClaimRatio::ALL {
        let (_, crit) = c.threshold(&th);
        h.push_str(&format!(
            "<figure>{}<figcaption>{} — claim “{}”: ratio {} (tornado-{}.svg)</figcaption></figure>\n",
            crate::sensitivity_charts::tornado(s, c).trim_end(),
            escape(c.title()),
            escape(c.seed_claim()),
            escape(&crit),
            c.slug()
        ));
    }
    h.push_str("</div>\n<h2>Parameters and their ranges</h2>\n<section class=\"card\"><table><tr><th>parameter</th><th>what</th><th>changes</th><th>values</th><th>source of the range</th></tr>\n");
    for p in &s.parameters {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td class=\"num\">{}</td><td>{}</td></tr>\n",
            escape(&p.name),
            escape(&p.description),
            escape(&p.changes),
            escape(&p.values.join(", ")),
            escape(&p.source)
        ));
    }
    h.push_str("</table></section>\n");
    h.push_str(&format!(
        "<footer><h2>Rerun</h2><section class=\"card\"><dl><dt>command line</dt><dd>{}</dd><dt>each comparison</dt><dd>runs/&lt;parameter&gt;-&lt;label&gt;/index.html (its full report, results and effective profile.toml)</dd><dt>data</dt><dd>sensitivity.csv, sensitivity.json, summary.md</dd></dl></section></footer>\n",
        escape(&s.run.command_line.join(" "))
    ));
    h.push_str("</main></body></html>\n");
    h
}

fn claim_map_table(s: &Sensitivity) -> String {
    let mut h = String::from(
        "<section class=\"card\"><table class=\"levels\"><tr><th>parameter</th><th>value</th>",
    );
    for c in ClaimRatio::ALL {
        h.push_str(&format!("<th>{}</th>", escape(c.seed_claim())));
    }
    h.push_str("<th class=\"num\">limit standard</th><th class=\"num\">limit P2P</th><th>standard failed by</th></tr>\n");
    for set in &s.settings {
        h.push_str(&format!(
            "<tr{}><td>{}</td><td>{}{}</td>",
            if set.baseline { " class=\"limit\"" } else { "" },
            escape(&set.parameter),
            escape(&set.value),
            if set.baseline { " (default)" } else { "" }
        ));
        for c in ClaimRatio::ALL {
            let (text, class) = cell(set, c);
            let r = set
                .headline
                .as_ref()
                .map(|hl| shown(c.ratio(hl)))
                .unwrap_or_default();
            h.push_str(&format!(
                "<td><span class=\"{class}\">{}</span> {}</td>",
                escape(&text),
                escape(&r)
            ));
        }
        match &set.headline {
            Some(hl) => h.push_str(&format!(
                "<td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td>",
                hl.standard.limit_level,
                hl.p2p.limit_level,
                escape(hl.standard.failed_by.as_deref().unwrap_or("nothing"))
            )),
            None => h.push_str("<td></td><td></td><td></td>"),
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table></section>\n");
    h
}

fn write_file(dir: &Path, name: &str, content: &str) -> Result<(), ReportError> {
    let path = dir.join(name);
    std::fs::write(&path, content).map_err(|error| ReportError::Io { path, error })
}

/// Writes every file of the sensitivity report into `out_dir`.
pub fn write(s: &Sensitivity, out_dir: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(out_dir).map_err(|error| ReportError::Io {
        path: out_dir.to_path_buf(),
        error,
    })?;
    write_file(out_dir, "sensitivity.csv", &csv(s))?;
    write_file(out_dir, "summary.md", &markdown(s))?;
    let json = serde_json::to_string_pretty(s).map_err(|e| ReportError::Encode {
        what: "sensitivity.json".into(),
        message: e.to_string(),
    })?;
    write_file(out_dir, "sensitivity.json", &(json + "\n"))?;
    for c in ClaimRatio::ALL {
        write_file(
            out_dir,
            &format!("tornado-{}.svg", c.slug()),
            &crate::sensitivity_charts::tornado(s, c),
        )?;
    }
    write_file(
        out_dir,
        "claim-map.svg",
        &crate::sensitivity_charts::claim_map(s),
    )?;
    write_file(out_dir, "index.html", &page(s))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(name: &str, swing: f64, off_scale: bool) -> TornadoBar {
        TornadoBar {
            parameter: name.into(),
            span: Some((1.0, 1.0 + swing)),
            swing,
            off_scale,
            points: Vec::new(),
        }
    }

    #[test]
    fn off_scale_first_then_largest_swing_then_name() {
        let mut bars = vec![
            bar("b", 0.5, false),
            bar("a", 0.5, false),
            bar("c", 2.0, false),
            bar("z", 0.0, true),
            bar("d", 0.0, false),
        ];
        order(&mut bars);
        let names: Vec<&str> = bars.iter().map(|b| b.parameter.as_str()).collect();
        assert_eq!(names, ["z", "c", "a", "b", "d"]);
    }

    #[test]
    fn csv_cells_are_quoted_when_needed() {
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"x\""), "\"say \"\"x\"\"\"");
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(ratio_cell(&Ratio::new(1.0, 0.0)), "inf");
        assert_eq!(ratio_cell(&Ratio::new(0.0, 0.0)), "undefined");
        assert_eq!(ratio_cell(&Ratio::new(1.0, 4.0)), "0.2500");
    }
}
