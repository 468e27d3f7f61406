//! The chaos scenarios' section: what each scenario did to each system
//! (`system.scenario_detail`) and, per level, the servers lost, orphaned
//! and resurrected (`LevelResult.durability`; all zero is the target).

use results::{Durability, RunResults};

use crate::text::escape;
use crate::Prepared;

/// IDs shown per set before "and N more".
const SHOWN: usize = 5;

fn ids(v: &[String]) -> String {
    let mut s = v.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if v.len() > SHOWN {
        s.push_str(&format!(" and {} more", v.len() - SHOWN));
    }
    s
}

/// Whether any run has something for this section.
fn any(runs: &[&RunResults]) -> bool {
    runs.iter().any(|r| {
        r.system.scenario_detail.is_some() || r.levels.iter().any(|l| l.durability.is_some())
    })
}

fn counts(d: &Durability) -> (usize, usize, usize) {
    (d.lost.len(), d.orphaned.len(), d.resurrected.len())
}

/// One line per finding worth a warning banner: non-zero counts, or
/// checks that could not be made.
pub fn warnings(p: &Prepared<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for l in &p.levels {
        let Some(d) = &l.durability else { continue };
        let (lost, orphaned, back) = counts(d);
        if lost + orphaned + back > 0 {
            out.push(format!(
                "{}: level {}: the durability checks found {lost} lost, {orphaned} orphaned and {back} resurrected server(s) (the target is zero; see “Chaos scenario”).",
                p.label, l.level
            ));
        }
        if !d.resurrected_at_return.is_empty() {
            out.push(format!(
                "{}: level {}: {} deleted server(s) were listed or shown again at the moment the disturbance ended, before the reconcile time (a transient resurrection: {}).",
                p.label,
                l.level,
                d.resurrected_at_return.len(),
                ids(&d.resurrected_at_return)
            ));
        }
        if !d.unchecked.is_empty() {
            out.push(format!(
                "{}: level {}: {} durability check(s) could not be made, so zero counts there prove nothing: {}",
                p.label,
                l.level,
                d.unchecked.len(),
                ids(&d.unchecked)
            ));
        }
    }
    out
}

/// Markdown section (empty when no run has a scenario detail or counts).
pub fn markdown(prepared: &[Prepared<'_>]) -> String {
    let runs: Vec<&RunResults> = prepared.iter().map(|p| p.run).collect();
    if !any(&runs) {
        return String::new();
    }
    let mut out = String::from("## Chaos scenario\n\n");
    for p in prepared {
        let s = &p.run.system;
        out.push_str(&format!(
            "- **{}** ({}): {}\n",
            p.label,
            s.scenario.as_deref().unwrap_or("steady"),
            s.scenario_detail.as_deref().unwrap_or("undisturbed")
        ));
    }
    out.push_str("\n| system | level | lost | orphaned | resurrected | seen again at return | reconcile (s) | unchecked |\n|---|---:|---:|---:|---:|---:|---:|---|\n");
    for p in prepared {
        for l in &p.levels {
            let Some(d) = &l.durability else { continue };
            let (lost, orphaned, back) = counts(d);
            out.push_str(&format!(
                "| {} | {} | {lost} | {orphaned} | {back} | {} | {} | {} |\n",
                p.label.replace('|', "\\|"),
                l.level,
                d.resurrected_at_return.len(),
                crate::text::short(d.reconcile_s),
                d.unchecked.len()
            ));
        }
    }
    out.push_str(&format!("\n{}\n\n", definitions()));
    out
}

fn definitions() -> &'static str {
    "Seen again at return: the resurrection check made at the moment the disturbance ended and the cleanup was done, before the reconcile time (transient; shown, not judged). Lost: a boot answered 202 that, once the level's boots were final, every live entry answered 404 for or no live entry listed. Orphaned: an instance of the run still on some cloudlet (asked directly, all projects) after the client deleted everything it created. Resurrected: a server the client deleted (DELETE answered, then GET 404) that a live entry listed or showed again after the disturbance ended and the agents had the reconcile time. All zero is the target."
}

/// HTML section (empty when no run has a scenario detail or counts).
pub fn html(prepared: &[Prepared<'_>]) -> String {
    let runs: Vec<&RunResults> = prepared.iter().map(|p| p.run).collect();
    if !any(&runs) {
        return String::new();
    }
    let mut s =
        String::from("<h2>Chaos scenario</h2>\n<section class=\"card\" id=\"chaos\"><ul>\n");
    for p in prepared {
        let sys = &p.run.system;
        s.push_str(&format!(
            "<li><b>{}</b> ({}): {}</li>\n",
            escape(&p.label),
            escape(sys.scenario.as_deref().unwrap_or("steady")),
            escape(sys.scenario_detail.as_deref().unwrap_or("undisturbed"))
        ));
    }
    s.push_str("</ul>\n<table class=\"levels\" id=\"durability\"><thead><tr><th>system</th><th class=\"num\">level</th><th class=\"num\">lost</th><th class=\"num\">orphaned</th><th class=\"num\">resurrected</th><th class=\"num\">seen again at return</th><th class=\"num\">reconcile (s)</th><th>IDs and unchecked</th></tr></thead><tbody>\n");
    for p in prepared {
        for l in &p.levels {
            let Some(d) = &l.durability else { continue };
            let (lost, orphaned, back) = counts(d);
            let cls = if d.clean() { "yes" } else { "no" };
            let mut notes = Vec::new();
            for (what, v) in [
                ("lost", &d.lost),
                ("orphaned", &d.orphaned),
                ("resurrected", &d.resurrected),
                ("seen again at return", &d.resurrected_at_return),
                ("unchecked", &d.unchecked),
            ] {
                if !v.is_empty() {
                    notes.push(format!("{what}: {}", ids(v)));
                }
            }
            s.push_str(&format!(
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\"><span class=\"{cls}\">{lost}</span></td><td class=\"num\"><span class=\"{cls}\">{orphaned}</span></td><td class=\"num\"><span class=\"{cls}\">{back}</span></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td><small>{}</small></td></tr>\n",
                escape(&p.label),
                l.level,
                d.resurrected_at_return.len(),
                crate::text::short(d.reconcile_s),
                escape(&notes.join("; "))
            ));
        }
    }
    s.push_str(&format!(
        "</tbody></table>\n<p class=\"def\">{}</p></section>\n",
        escape(definitions())
    ));
    s
}

/// Plain-text table for the terminal (`testbed compare` prints it when a
/// chaos scenario leaves no headline).
pub fn text(runs: &[RunResults]) -> String {
    let mut out = String::new();
    for r in runs {
        if let Some(d) = &r.system.scenario_detail {
            out.push_str(&format!("{}: {d}\n", r.system.label));
        }
    }
    out.push_str(&format!(
        "{:<10} {:>6} {:>6} {:>9} {:>12} {:>10} {:>10}\n",
        "system", "level", "lost", "orphaned", "resurrected", "at-return", "unchecked"
    ));
    for r in runs {
        for l in &r.levels {
            match &l.durability {
                Some(d) => {
                    let (lost, orphaned, back) = counts(d);
                    out.push_str(&format!(
                        "{:<10} {:>6} {lost:>6} {orphaned:>9} {back:>12} {:>10} {:>10}\n",
                        r.system.label,
                        l.level,
                        d.resurrected_at_return.len(),
                        d.unchecked.len()
                    ));
                }
                None => out.push_str(&format!(
                    "{:<10} {:>6} {:>6}\n",
                    r.system.label, l.level, "not checked"
                )),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(d: Option<Durability>) -> RunResults {
        let mut l = results::LevelResult::burst_summary(8, 8, 0, 10.0);
        l.durability = d;
        RunResults {
            schema: results::SCHEMA_NAME.into(),
            schema_version: results::SCHEMA_VERSION,
            tool: Default::default(),
            experiment: "boot-burst".into(),
            system: results::SystemInfo {
                label: "p2p".into(),
                kind: Some("p2p".into()),
                scenario: Some("partition".into()),
                scenario_detail: Some("1 of 4 cloudlets cut off".into()),
                ..Default::default()
            },
            target: Default::default(),
            config: serde_json::json!({}),
            command_line: vec![],
            seed: 1,
            time_scale: 1.0,
            time_scale_source: "flag".into(),
            started_at: String::new(),
            finished_at: String::new(),
            complete: true,
            incomplete_reason: None,
            host: Default::default(),
            levels: vec![l],
        }
    }

    #[test]
    fn non_zero_counts_are_shown_and_warned_about() {
        let d = Durability {
            lost: vec!["a".into()],
            resurrected: vec!["b".into(), "c".into()],
            reconcile_s: 30.0,
            ..Default::default()
        };
        let runs = [run(Some(d))];
        let prepared = crate::prepare(&runs, &Default::default()).unwrap();
        let md = markdown(&prepared);
        assert!(md.contains("| p2p | 8 | 1 | 0 | 2 | 0 | 30 | 0 |"), "{md}");
        assert!(md.contains("1 of 4 cloudlets cut off"), "{md}");
        let w = warnings(&prepared[0]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("1 lost, 0 orphaned and 2 resurrected"),
            "{w:?}"
        );
        let h = html(&prepared);
        assert!(h.contains("resurrected: b, c"), "{h}");
        let t = text(&runs);
        assert!(
            t.contains("p2p             8      1         0            2          0          0"),
            "{t}"
        );
    }

    #[test]
    fn unchecked_is_a_warning_and_no_section_without_chaos() {
        let d = Durability {
            unchecked: vec!["orphan check: cloudlet 2: refused".into()],
            ..Default::default()
        };
        let runs = [run(Some(d))];
        let prepared = crate::prepare(&runs, &Default::default()).unwrap();
        assert!(warnings(&prepared[0])[0].contains("prove nothing"));
        let mut plain = run(None);
        plain.system.scenario_detail = None;
        let runs = [plain];
        let prepared = crate::prepare(&runs, &Default::default()).unwrap();
        assert_eq!(markdown(&prepared), "");
        assert_eq!(html(&prepared), "");
    }
}
