//! Which charts a report has, built from the prepared runs.
//!
//! Always: boot time p50/p95/p99 vs concurrency, successful VMs vs
//! concurrency, throughput vs concurrency, the boot-time CDF at each
//! system's limit, and one error-cause chart per system. For each P2P
//! system with placement data: VMs per cloudlet at its limit and, where
//! known, the share placed remotely vs concurrency.

use results::{LevelResult, Outcome};

use crate::svg::axes::TickFormat;
use crate::svg::bar::{BarChart, Stack};
use crate::svg::cdf::{self, CdfSource};
use crate::svg::line::{LineChart, Mark, Series, XTicks};
use crate::svg::{system_color, CATEGORY};
use crate::text::{pct, short};
use crate::{Prepared, SystemKind};

/// One chart: its SVG, the file it is written to and a caption.
#[derive(Debug, Clone)]
pub struct Chart {
    pub file: String,
    pub title: String,
    pub caption: String,
    pub svg: String,
}

/// Failures of one level by cause, most specific first: API errors by HTTP
/// status, ERROR state by fault message, timeouts, transport errors,
/// dropped starts.
pub fn causes(l: &LevelResult) -> Vec<(String, u32)> {
    let mut out: Vec<(String, u32)> = Vec::new();
    let mut add = |name: String, n: u32| {
        if n == 0 {
            return;
        }
        match out.iter_mut().find(|(k, _)| *k == name) {
            Some((_, v)) => *v += n,
            None => out.push((name, n)),
        }
    };
    for o in [
        Outcome::ApiError,
        Outcome::ErrorState,
        Outcome::Timeout,
        Outcome::TransportError,
        Outcome::Dropped,
    ] {
        let total = l.outcomes.get(&o).copied().unwrap_or(0);
        let base = cause_base(o);
        let mut listed = 0u32;
        if matches!(o, Outcome::ApiError | Outcome::ErrorState) {
            for e in l.errors.iter().filter(|e| e.outcome == o) {
                let n = e.count.min(total.saturating_sub(listed));
                listed += n;
                add(cause_name(o, &e.message), n);
            }
        }
        add(base.to_string(), total.saturating_sub(listed));
    }
    out
}

fn cause_base(o: Outcome) -> &'static str {
    match o {
        Outcome::ApiError => "API error",
        Outcome::ErrorState => "ERROR state",
        Outcome::Timeout => "timeout",
        Outcome::TransportError => "transport error",
        Outcome::Dropped => "dropped start",
        Outcome::Active => "active",
    }
}

fn cause_name(o: Outcome, message: &str) -> String {
    match o {
        Outcome::ApiError => {
            let status = message.split_whitespace().next().unwrap_or("");
            if status.len() == 3 && status.chars().all(|c| c.is_ascii_digit()) {
                format!("API error {status}")
            } else {
                "API error".to_string()
            }
        }
        Outcome::ErrorState => {
            let m = message.trim();
            if m.is_empty() {
                return "ERROR state".to_string();
            }
            let short: String = m.chars().take(44).collect();
            let ell = if m.chars().count() > 44 { "…" } else { "" };
            format!("ERROR: {short}{ell}")
        }
        other => cause_base(other).to_string(),
    }
}

fn time_unit(prepared: &[Prepared<'_>]) -> &'static str {
    if prepared
        .iter()
        .any(|p| (p.run.time_scale - 1.0).abs() > 1e-12)
    {
        "model seconds"
    } else {
        "s"
    }
}

/// "model seconds" or "seconds (time scale 1)" for prose.
pub fn time_unit_words(prepared: &[Prepared<'_>]) -> &'static str {
    if time_unit(prepared) == "s" {
        "seconds (time scale 1: model = wall)"
    } else {
        "model seconds"
    }
}

/// Most legend entries an error chart shows; rarer causes are merged
/// into [`OTHER_CAUSES`].
pub const MAX_CAUSES: usize = 8;
pub const OTHER_CAUSES: &str = "other causes";

const X_LABEL: &str = "concurrency (boot requests per level)";

/// Builds every chart for the runs.
pub fn build(prepared: &[Prepared<'_>]) -> Vec<Chart> {
    let unit = time_unit(prepared);
    let color = |i: usize| system_color(prepared[i].kind, i).to_string();
    let lv = |p: &Prepared<'_>, f: &dyn Fn(&LevelResult) -> f64| -> Vec<(f64, f64)> {
        p.levels
            .iter()
            .map(|l| (f64::from(l.level), f(l)))
            .collect()
    };
    let mut charts = Vec::new();

    // 1. Boot time percentiles.
    let mut series = Vec::new();
    for (i, p) in prepared.iter().enumerate() {
        for (name, dash, f) in [
            (
                "p50",
                None,
                (|l: &LevelResult| l.boot_time.p50_s) as fn(&LevelResult) -> f64,
            ),
            ("p95", Some("7 4"), |l: &LevelResult| l.boot_time.p95_s),
            ("p99", Some("2 3"), |l: &LevelResult| l.boot_time.p99_s),
        ] {
            series.push(Series {
                name: format!("{} {name}", p.label),
                color: color(i),
                dash: dash.map(str::to_string),
                points: p
                    .levels
                    .iter()
                    .filter(|l| l.boot_time.count > 0)
                    .map(|l| (f64::from(l.level), f(l)))
                    .collect(),
                markers: true,
                step: false,
            });
        }
    }
    charts.push(Chart {
        file: "boot-time.svg".into(),
        title: "Boot time vs concurrency".into(),
        caption: format!(
            "Time from request to ACTIVE for servers that booted: p50 (solid), p95 (dashed), p99 (dotted), in {unit}."
        ),
        svg: LineChart {
            title: "Boot time vs concurrency (p50 / p95 / p99)".into(),
            x_label: X_LABEL.into(),
            y_label: format!("boot time ({unit})"),
            series,
            x_ticks: XTicks::Data,
            y_format: TickFormat::Number,
            y_max: None,
            note: None,
            marks: vec![],
        }
        .render(),
    });

    // 2. Successful VMs (with the number requested as a reference).
    let mut series: Vec<Series> = prepared
        .iter()
        .enumerate()
        .map(|(i, p)| Series {
            name: p.label.clone(),
            color: color(i),
            dash: None,
            points: lv(p, &|l| f64::from(l.succeeded)),
            markers: true,
            step: false,
        })
        .collect();
    let mut req: Vec<(f64, f64)> = prepared
        .iter()
        .flat_map(|p| {
            p.levels
                .iter()
                .map(|l| (f64::from(l.level), f64::from(l.requested)))
        })
        .collect();
    req.sort_by(|a, b| a.0.total_cmp(&b.0));
    req.dedup_by(|a, b| a.0 == b.0);
    series.push(Series {
        name: "requested".into(),
        color: "#9aa5b1".into(),
        dash: Some("4 4".into()),
        points: req,
        markers: false,
        step: false,
    });
    charts.push(Chart {
        file: "successful-vms.svg".into(),
        title: "Successful VMs vs concurrency".into(),
        caption: "Servers that reached ACTIVE at each level; the grey dashed line is the number requested.".into(),
        svg: LineChart {
            title: "Successful VMs vs concurrency".into(),
            x_label: X_LABEL.into(),
            y_label: "servers ACTIVE".into(),
            series,
            x_ticks: XTicks::Data,
            y_format: TickFormat::Number,
            y_max: None,
            note: None,
            marks: limit_marks(prepared, &|l| f64::from(l.succeeded)),
        }
        .render(),
    });

    // 3. Throughput.
    let series = prepared
        .iter()
        .enumerate()
        .map(|(i, p)| Series {
            name: p.label.clone(),
            color: color(i),
            dash: None,
            points: lv(p, &|l| l.throughput_per_s),
            markers: true,
            step: false,
        })
        .collect();
    let per = if unit == "s" { "s" } else { "model s" };
    charts.push(Chart {
        file: "throughput.svg".into(),
        title: "Throughput vs concurrency".into(),
        caption: format!("Servers reaching ACTIVE per {per} of makespan."),
        svg: LineChart {
            title: "Throughput vs concurrency".into(),
            x_label: X_LABEL.into(),
            y_label: format!("servers ACTIVE per {per}"),
            series,
            x_ticks: XTicks::Data,
            y_format: TickFormat::Number,
            y_max: None,
            note: None,
            marks: limit_marks(prepared, &|l| l.throughput_per_s),
        }
        .render(),
    });

    // 4. Error causes, one chart per system, colours shared across systems.
    // At most MAX_CAUSES legend entries: the rarest causes are merged.
    let mut totals: Vec<(String, u64)> = Vec::new();
    for p in prepared {
        for l in &p.levels {
            for (c, n) in causes(l) {
                match totals.iter_mut().find(|(k, _)| *k == c) {
                    Some((_, t)) => *t += u64::from(n),
                    None => totals.push((c, u64::from(n))),
                }
            }
        }
    }
    let keep: Option<Vec<String>> = (totals.len() > MAX_CAUSES).then(|| {
        let mut by_count = totals.clone();
        by_count.sort_by_key(|b| std::cmp::Reverse(b.1));
        by_count
            .into_iter()
            .take(MAX_CAUSES - 1)
            .map(|(c, _)| c)
            .collect()
    });
    let folded = |l: &LevelResult| -> Vec<(String, u32)> {
        let mut out: Vec<(String, u32)> = Vec::new();
        for (c, n) in causes(l) {
            let name = match &keep {
                Some(k) if !k.contains(&c) => OTHER_CAUSES.to_string(),
                _ => c,
            };
            match out.iter_mut().find(|(k, _)| *k == name) {
                Some((_, v)) => *v += n,
                None => out.push((name, n)),
            }
        }
        out
    };
    let mut all_causes: Vec<String> = Vec::new();
    for p in prepared {
        for l in &p.levels {
            for (c, _) in folded(l) {
                if !all_causes.contains(&c) {
                    all_causes.push(c);
                }
            }
        }
    }
    let cause_color = |c: &str| {
        let i = all_causes.iter().position(|x| x == c).unwrap_or(0);
        CATEGORY[i % CATEGORY.len()].to_string()
    };
    let max_rate = prepared
        .iter()
        .flat_map(|p| p.levels.iter().map(|l| l.error_rate))
        .fold(0.0, f64::max);
    for p in prepared {
        let per_level: Vec<Vec<(String, u32)>> = p.levels.iter().map(|l| folded(l)).collect();
        let mut names: Vec<String> = Vec::new();
        for cs in &per_level {
            for (c, _) in cs {
                if !names.contains(c) {
                    names.push(c.clone());
                }
            }
        }
        let stacks = names
            .iter()
            .map(|n| Stack {
                name: n.clone(),
                color: cause_color(n),
                values: p
                    .levels
                    .iter()
                    .zip(&per_level)
                    .map(|(l, cs)| {
                        let c = cs
                            .iter()
                            .find(|(k, _)| k == n)
                            .map(|(_, v)| *v)
                            .unwrap_or(0);
                        f64::from(c) / f64::from(l.requested.max(1))
                    })
                    .collect(),
            })
            .collect();
        let note = if names.is_empty() {
            Some("no failed requests at any level".to_string())
        } else {
            None
        };
        charts.push(Chart {
            file: format!("errors-{}.svg", p.slug),
            title: format!("Error rate by cause: {}", p.label),
            caption: format!(
                "Failed requests of {} as a share of those requested, stacked by cause (same y scale for every system).",
                p.label
            ),
            svg: BarChart {
                title: format!("Error rate by cause — {}", p.label),
                x_label: X_LABEL.into(),
                y_label: "share of requests failed".into(),
                categories: p.levels.iter().map(|l| l.level.to_string()).collect(),
                stacks,
                y_format: TickFormat::Percent,
                show_legend: true,
                note,
                y_max: Some(if max_rate > 0.0 { max_rate } else { 0.1 }),
                total_labels: true,
            }
            .render(),
        });
    }

    // 5. Boot-time CDF at each system's limit.
    let mut approx = false;
    let series = prepared
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.limit_level().map(|l| (i, p, l)))
        .map(|(i, p, l)| {
            let (points, src) = cdf::points(&l.boot_time, &l.requests);
            approx |= src == CdfSource::Percentiles;
            Series {
                name: format!("{} at level {}", p.label, l.level),
                color: color(i),
                dash: None,
                points,
                markers: false,
                step: src != CdfSource::Percentiles,
            }
        })
        .collect();
    charts.push(Chart {
        file: "boot-cdf.svg".into(),
        title: "Boot-time distribution at each system's limit".into(),
        caption: format!(
            "Cumulative share of successful boots that finished within x {unit}, at each system's performance limit{}.",
            if approx { " (runs without a histogram are drawn through their percentiles)" } else { "" }
        ),
        svg: LineChart {
            title: "Boot-time CDF at each system's limit".into(),
            x_label: format!("boot time ({unit})"),
            y_label: "share of successful boots".into(),
            series,
            x_ticks: XTicks::Nice,
            y_format: TickFormat::Percent,
            y_max: Some(1.0),
            note: approx.then(|| "some curves approximated through min/p50/p90/p95/p99/max".to_string()),
            marks: vec![],
        }
        .render(),
    });

    // 6. P2P placement spread and remote share.
    for (i, p) in prepared.iter().enumerate() {
        let is_p2p = p.kind == SystemKind::P2p || p.run.system.cloudlets.unwrap_or(1) > 1;
        if !is_p2p {
            continue;
        }
        let limit = p.limit_level();
        if let Some(l) = limit.filter(|l| !l.placement.is_empty()) {
            let mut cats: Vec<(&String, u32)> = l.placement.iter().map(|(k, v)| (k, *v)).collect();
            cats.sort_by_key(|c| natural_key(c.0));
            let total: u32 = cats.iter().map(|c| c.1).sum();
            let names: Vec<String> = cats.iter().map(|c| c.0.clone()).collect();
            let (short_names, prefix) = strip_common_prefix(&names);
            let mean = f64::from(total) / cats.len() as f64;
            let (lo, hi) = (
                cats.iter().map(|c| c.1).min().unwrap_or(0),
                cats.iter().map(|c| c.1).max().unwrap_or(0),
            );
            let remote = match l.placed_remotely {
                Some(r) if l.succeeded > 0 => format!(
                    "; {r} of {} ({}) placed on another cloudlet than the entry's",
                    l.succeeded,
                    pct(f64::from(r) / f64::from(l.succeeded))
                ),
                _ => String::new(),
            };
            charts.push(Chart {
                file: format!("placement-{}.svg", p.slug),
                title: format!("VMs per cloudlet: {}", p.label),
                caption: format!(
                    "Successful boots per cloudlet at the limit (level {}): {} cloudlets, min {lo}, mean {}, max {hi}{remote}.",
                    l.level,
                    cats.len(),
                    short(mean)
                ),
                svg: BarChart {
                    title: format!("VMs per cloudlet at the limit — {} (level {})", p.label, l.level),
                    x_label: if prefix.is_empty() {
                        "cloudlet".to_string()
                    } else {
                        format!("cloudlet ({prefix}…)")
                    },
                    y_label: "servers ACTIVE".into(),
                    categories: short_names,
                    stacks: vec![Stack {
                        name: "servers ACTIVE".into(),
                        color: color(i),
                        values: cats.iter().map(|c| f64::from(c.1)).collect(),
                    }],
                    y_format: TickFormat::Number,
                    show_legend: false,
                    note: Some(format!("min {lo} · mean {} · max {hi}", short(mean))),
                    y_max: None,
                    total_labels: cats.len() <= 16,
                }
                .render(),
            });
        }
        let remote: Vec<(f64, f64)> = p
            .levels
            .iter()
            .filter_map(|l| match l.placed_remotely {
                Some(r) if l.succeeded > 0 => {
                    Some((f64::from(l.level), f64::from(r) / f64::from(l.succeeded)))
                }
                _ => None,
            })
            .collect();
        if !remote.is_empty() {
            charts.push(Chart {
                file: format!("remote-share-{}.svg", p.slug),
                title: format!("Share placed remotely: {}", p.label),
                caption: "Share of successful boots the agents placed on a cloudlet other than the one the request entered.".into(),
                svg: LineChart {
                    title: format!("Share placed remotely — {}", p.label),
                    x_label: X_LABEL.into(),
                    y_label: "share of successful boots".into(),
                    series: vec![Series {
                        name: p.label.clone(),
                        color: color(i),
                        dash: None,
                        points: remote,
                        markers: true,
                        step: false,
                    }],
                    x_ticks: XTicks::Data,
                    y_format: TickFormat::Percent,
                    y_max: Some(1.0),
                    note: None,
                    marks: vec![],
                }
                .render(),
            });
        }
    }
    charts
}

/// A ring on each system's limit level.
fn limit_marks(prepared: &[Prepared<'_>], f: &dyn Fn(&LevelResult) -> f64) -> Vec<Mark> {
    prepared
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.limit_level().map(|l| (i, p, l)))
        .map(|(i, p, l)| Mark {
            x: f64::from(l.level),
            y: f(l),
            color: system_color(p.kind, i).to_string(),
            label: format!("{} limit", p.label),
        })
        .collect()
}

/// The categories without their common prefix (`cloudlet-1` → `1`), and
/// the prefix.
fn strip_common_prefix(cats: &[String]) -> (Vec<String>, String) {
    let Some(first) = cats.first() else {
        return (vec![], String::new());
    };
    let mut prefix: &str = first;
    for c in cats {
        while !c.starts_with(prefix) {
            let mut chars = prefix.chars();
            chars.next_back();
            prefix = chars.as_str();
        }
    }
    // Cut only after a separator, and keep something of every label.
    let cut = prefix
        .rfind(['-', '_', '.', ' ', '/'])
        .map(|i| i + 1)
        .unwrap_or(0);
    if cut == 0 || cats.len() < 2 || cats.iter().any(|c| c.len() <= cut) {
        return (cats.to_vec(), String::new());
    }
    (
        cats.iter().map(|c| c[cut..].to_string()).collect(),
        first[..cut].to_string(),
    )
}

/// Sort key that orders `c2` before `c10`.
fn natural_key(s: &str) -> (String, u64, String) {
    let digits_at = s
        .char_indices()
        .find(|(_, c)| c.is_ascii_digit())
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    let (head, rest) = s.split_at(digits_at);
    let end = rest
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit())
        .map(|(i, _)| i)
        .unwrap_or(rest.len());
    let n = rest[..end].parse::<u64>().unwrap_or(0);
    (head.to_string(), n, rest[end..].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefix_is_cut_at_a_separator() {
        let v: Vec<String> = ["cloudlet-1", "cloudlet-12"].map(String::from).to_vec();
        assert_eq!(
            strip_common_prefix(&v),
            (
                vec!["1".to_string(), "12".to_string()],
                "cloudlet-".to_string()
            )
        );
        let v: Vec<String> = ["east", "eu"].map(String::from).to_vec();
        assert_eq!(strip_common_prefix(&v).1, "");
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["cloudlet-10", "cloudlet-2", "cloudlet-1"];
        v.sort_by_key(|s| natural_key(s));
        assert_eq!(v, ["cloudlet-1", "cloudlet-2", "cloudlet-10"]);
    }
}
