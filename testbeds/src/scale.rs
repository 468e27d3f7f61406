//! `testbed scale`: the same load per compute at growing N (issue 14).
//!
//! For each N of the list, one `testbed compare` with N cloudlets (P2P) and
//! N computes (standard) at one burst level of `boots-per-compute × N`,
//! into `OUT/n-N/` (its own report and results; its CSV rows go in scale.csv). Then one row per (N,
//! system) with makespan, boot p95, error rate and throughput, and for P2P
//! the placement quality (share placed away from the entry agent, VMs per
//! cloudlet max and mean), written as `OUT/scale.csv`, one SVG per metric
//! (the report's line charts) and `OUT/index.html`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, FromArgMatches};
use reports::svg::axes::TickFormat;
use reports::svg::line::{LineChart, Series, XTicks};
use results::{LevelResult, RunResults};

use crate::backend::Backend;
use crate::compare::{self, CompareArgs};

#[derive(Args, Debug, Clone)]
pub struct ScaleArgs {
    /// Cloudlets (P2P) = computes (standard) per step, comma-separated.
    /// 10000 can be added on `--backend sim` (with 4 boots per compute
    /// the sweep to 10,000 took 406 s and 7.2 GiB; docs/benchmarks.md).
    #[arg(long, value_delimiter = ',', default_value = "16,64,256,1024")]
    pub ns: Vec<u32>,
    /// Concurrent boots per compute (the burst is this × N). At 32 a
    /// cloudlet cannot take all of its entry agent's boots, so P2P
    /// placement is exercised (about 69 % placed remotely); the default
    /// sweep to N = 1024 took 198 s on sim (docs/benchmarks.md). At 8 or
    /// fewer every boot fits on the entry's own cloudlet.
    #[arg(long, default_value_t = 32)]
    pub boots_per_compute: u32,
    #[arg(long, value_enum, default_value_t = Backend::Sim)]
    pub backend: Backend,
    /// The agents' membership overlay (full or cyclon).
    #[arg(long, default_value = "cyclon")]
    pub overlay: agent::config::Overlay,
    /// Systems to run at each N (comma-separated: standard, cells, sharded, p2p).
    #[arg(long, default_value = "standard,p2p")]
    pub systems: String,
    #[arg(long, default_value = "openstack-2017")]
    pub profile: String,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output directory (one sub-directory per N, CSV, charts, index.html).
    #[arg(long, default_value = "reports/scale")]
    pub out: PathBuf,
    /// Extra `testbed compare` arguments for every step (e.g. `--retries 0`).
    #[arg(long = "compare-arg", allow_hyphen_values = true)]
    pub compare_args: Vec<String>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// One (N, system) point of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub n: u32,
    pub system: String,
    pub boots: u32,
    pub succeeded: u32,
    pub error_rate: f64,
    pub makespan_s: f64,
    pub boot_p95_s: f64,
    pub throughput_per_s: f64,
    /// P2P: share of successful boots placed away from the entry agent.
    pub placed_remotely: Option<f64>,
    /// VMs per cloudlet (P2P) or per compute (standard), max and mean over
    /// every member of the testbed (members with none count as 0).
    pub vms_max: Option<u32>,
    pub vms_mean: Option<f64>,
    /// Wall seconds of the whole step (both systems) and the process's
    /// peak RSS after it.
    pub wall_s: f64,
    pub peak_rss_mib: Option<f64>,
}

/// The row of one system's level.
pub fn row_of(n: u32, system: &str, l: &LevelResult, wall_s: f64, rss: Option<u64>) -> Row {
    let placed: u32 = l.placement.values().sum();
    let members = n.max(1);
    Row {
        n,
        system: system.to_string(),
        boots: l.requested,
        succeeded: l.succeeded,
        error_rate: l.error_rate,
        makespan_s: l.makespan_s,
        boot_p95_s: l.boot_time.p95_s,
        throughput_per_s: l.throughput_per_s,
        placed_remotely: l
            .placed_remotely
            .filter(|_| l.succeeded > 0)
            .map(|r| f64::from(r) / f64::from(l.succeeded)),
        vms_max: (!l.placement.is_empty())
            .then(|| l.placement.values().copied().max().unwrap_or(0)),
        vms_mean: (!l.placement.is_empty()).then(|| f64::from(placed) / f64::from(members)),
        wall_s,
        peak_rss_mib: rss.map(|b| b as f64 / (1024.0 * 1024.0)),
    }
}

pub const CSV_HEADER: &str = "n,system,boots,succeeded,error_rate,makespan_s,boot_p95_s,throughput_per_s,placed_remotely,vms_per_member_max,vms_per_member_mean,wall_s,peak_rss_mib";

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

pub fn csv(rows: &[Row]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{:.4},{:.2},{:.2},{:.3},{},{},{},{:.1},{}\n",
            r.n,
            r.system,
            r.boots,
            r.succeeded,
            r.error_rate,
            r.makespan_s,
            r.boot_p95_s,
            r.throughput_per_s,
            opt(r.placed_remotely.map(|v| format!("{v:.4}"))),
            opt(r.vms_max),
            opt(r.vms_mean.map(|v| format!("{v:.2}"))),
            r.wall_s,
            opt(r.peak_rss_mib.map(|v| format!("{v:.0}"))),
        ));
    }
    out
}

/// One chart per metric: a line per system over N.
pub fn charts(rows: &[Row]) -> Vec<(String, String, String)> {
    let mut systems: Vec<&str> = rows.iter().map(|r| r.system.as_str()).collect();
    systems.sort_unstable();
    systems.dedup();
    type Metric = fn(&Row) -> Option<f64>;
    let metrics: [(&str, &str, &str, Metric); 7] = [
        (
            "scale-makespan.svg",
            "Makespan vs N",
            "makespan (model s)",
            |r| Some(r.makespan_s),
        ),
        (
            "scale-boot-p95.svg",
            "Boot time p95 vs N",
            "boot p95 (model s)",
            |r| Some(r.boot_p95_s),
        ),
        (
            "scale-error-rate.svg",
            "Error rate vs N",
            "failed / requested",
            |r| Some(r.error_rate),
        ),
        (
            "scale-throughput.svg",
            "Throughput vs N",
            "boots ACTIVE per model s",
            |r| Some(r.throughput_per_s),
        ),
        (
            "scale-remote.svg",
            "Share placed away from the entry agent vs N",
            "share of ACTIVE boots",
            |r| r.placed_remotely,
        ),
        (
            "scale-vms-max.svg",
            "VMs per member, max vs N",
            "VMs on the fullest member",
            |r| r.vms_max.map(f64::from),
        ),
        (
            "scale-vms-mean.svg",
            "VMs per member, mean vs N",
            "VMs per member",
            |r| r.vms_mean,
        ),
    ];
    let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    metrics
        .iter()
        .filter_map(|(file, title, y, f)| {
            let series: Vec<Series> = systems
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let points: Vec<(f64, f64)> = rows
                        .iter()
                        .filter(|r| r.system == *s)
                        .filter_map(|r| f(r).map(|v| (f64::from(r.n), v)))
                        .collect();
                    (!points.is_empty()).then(|| Series {
                        name: (*s).to_string(),
                        color: palette[i % palette.len()].to_string(),
                        dash: None,
                        points,
                        markers: true,
                        step: false,
                    })
                })
                .collect();
            if series.is_empty() {
                return None;
            }
            let svg = LineChart {
                title: (*title).to_string(),
                x_label: "N (cloudlets = computes)".into(),
                y_label: (*y).to_string(),
                series,
                x_ticks: XTicks::Data,
                y_format: TickFormat::Number,
                y_max: None,
                note: None,
                marks: vec![],
            }
            .render();
            Some(((*file).to_string(), (*title).to_string(), svg))
        })
        .collect()
}

fn html(rows: &[Row], charts: &[(String, String, String)], command: &str) -> String {
    let mut out = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>testbed scale</title>\
         <style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style></head><body>\
         <h1>Scaling: the same load per compute at growing N</h1>",
    );
    out.push_str(&format!("<p><code>{}</code></p>", escape(command)));
    out.push_str("<table><tr>");
    for h in CSV_HEADER.split(',') {
        out.push_str(&format!("<th>{h}</th>"));
    }
    out.push_str("</tr>");
    for line in csv(rows).lines().skip(1) {
        out.push_str("<tr>");
        for c in line.split(',') {
            out.push_str(&format!("<td>{}</td>", escape(c)));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    for (_, title, svg) in charts {
        out.push_str(&format!("<h2>{}</h2>{svg}", escape(title)));
    }
    out.push_str("<p>Each N's own report: <code>n-N/index.html</code> (its results in <code>n-N/results/</code>). CSV of the whole sweep: <code>scale.csv</code>.</p></body></html>");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The `testbed compare` arguments of one step.
fn compare_args(args: &ScaleArgs, n: u32, out: &Path) -> Result<CompareArgs> {
    let mut argv: Vec<String> = vec![
        "compare".into(),
        "--cloudlets".into(),
        n.to_string(),
        "--levels".into(),
        (args.boots_per_compute.saturating_mul(n)).to_string(),
        "--backend".into(),
        args.backend.name().into(),
        "--overlay".into(),
        args.overlay.to_string(),
        "--systems".into(),
        args.systems.clone(),
        "--profile".into(),
        args.profile.clone(),
        "--seed".into(),
        args.seed.to_string(),
        "--out".into(),
        out.display().to_string(),
    ];
    if args.quiet {
        argv.push("--quiet".into());
    }
    argv.extend(args.compare_args.iter().cloned());
    let cmd = <CompareArgs as clap::Args>::augment_args(clap::Command::new("compare"));
    let matches = cmd
        .try_get_matches_from(&argv)
        .with_context(|| format!("bad compare arguments: {}", argv.join(" ")))?;
    Ok(CompareArgs::from_arg_matches(&matches)?)
}

/// Runs the sweep; returns the rows.
pub async fn run(args: ScaleArgs) -> Result<Vec<Row>> {
    if args.ns.is_empty() || args.ns.contains(&0) {
        bail!("--ns needs at least one N, each at least 1");
    }
    if args.boots_per_compute == 0 {
        bail!("--boots-per-compute must be at least 1");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut rows = Vec::new();
    for &n in &args.ns {
        let dir = args.out.join(format!("n-{n}"));
        let cargs = compare_args(&args, n, &dir)?;
        let systems: Vec<String> = cargs
            .systems
            .iter()
            .map(|k| k.label().to_string())
            .collect();
        eprintln!(
            "scale: N = {n}, {} boots per system ({})",
            args.boots_per_compute * n,
            systems.join(", ")
        );
        let t0 = cp_model::clock::host_now();
        compare::run(cargs)
            .await
            .with_context(|| format!("the step N = {n} failed"))?;
        let wall = t0.elapsed().as_secs_f64();
        let rss = crate::hostmon::peak_rss_bytes();
        for s in &systems {
            let path = dir.join("results").join(format!("{s}.json"));
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let run: RunResults = serde_json::from_str(&text)
                .with_context(|| format!("cannot parse {}", path.display()))?;
            if let Some(l) = run.levels.first() {
                rows.push(row_of(n, s, l, wall, rss));
            }
        }
        // One CSV per sweep: the step's own summary.csv holds the same one
        // level per system that scale.csv has a row for (its details stay
        // in the step's results/*.json and summary.md). Tools that take
        // the sweep's CSV from the output tree then find only scale.csv.
        let step_csv = dir.join("summary.csv");
        if step_csv.exists() {
            std::fs::remove_file(&step_csv)
                .with_context(|| format!("cannot remove {}", step_csv.display()))?;
        }
        // Written after every step, so an interrupted sweep keeps its rows.
        write_outputs(&args.out, &rows, &command)?;
    }
    print!("{}", csv(&rows));
    println!("report: {}", args.out.join("index.html").display());
    Ok(rows)
}

fn write_outputs(out: &Path, rows: &[Row], command: &str) -> Result<()> {
    let write = |name: &str, body: &str| {
        let p = out.join(name);
        std::fs::write(&p, body).with_context(|| format!("cannot write {}", p.display()))
    };
    write("scale.csv", &csv(rows))?;
    let charts = charts(rows);
    for (file, _, svg) in &charts {
        write(file, svg)?;
    }
    write("index.html", &html(rows, &charts, command))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(requested: u32, placement: &[(&str, u32)], remote: Option<u32>) -> LevelResult {
        let latency = serde_json::to_value(results::LatencySummary::default()).expect("json");
        let audit = serde_json::to_value(results::Audit::default()).expect("json");
        let mut l: LevelResult = serde_json::from_value(serde_json::json!({
            "level": requested, "load_model": {"kind": "burst"}, "requested": requested,
            "succeeded": placement.iter().map(|(_, v)| v).sum::<u32>(), "failed": 0,
            "error_rate": 0.0, "makespan_s": 12.5, "throughput_per_s": 3.0,
            "outcomes": {}, "errors": [], "post_latency": latency, "boot_time": latency,
            "delete_time": latency, "placement": {}, "placed_remotely": null,
            "late_starts": 0, "dropped_starts": 0, "in_flight": [], "audit": audit,
            "durability": null, "requests": [],
        }))
        .expect("a minimal level");
        l.placement = placement.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        l.placed_remotely = remote;
        l
    }

    #[test]
    fn rows_count_idle_members_in_the_mean_and_charts_have_a_line_per_system() {
        let p2p = level(8, &[("cloudlet-1", 6), ("cloudlet-2", 2)], Some(2));
        let r = row_of(4, "p2p", &p2p, 1.0, None);
        assert_eq!(r.vms_max, Some(6));
        assert_eq!(r.vms_mean, Some(2.0), "8 VMs over 4 cloudlets");
        assert_eq!(r.placed_remotely, Some(0.25));
        let std = level(8, &[], None);
        let s = row_of(4, "standard", &std, 1.0, None);
        assert_eq!((s.vms_max, s.placed_remotely), (None, None));
        let rows = vec![r, s];
        let text = csv(&rows);
        assert_eq!(text.lines().count(), 3);
        assert!(text.lines().all(|l| l.split(',').count() == 13), "{text}");
        let c = charts(&rows);
        let makespan = c
            .iter()
            .find(|(f, _, _)| f == "scale-makespan.svg")
            .expect("chart");
        assert!(makespan.2.contains("p2p") && makespan.2.contains("standard"));
        // P2P-only metrics have one line.
        assert!(c.iter().any(|(f, _, _)| f == "scale-remote.svg"));
    }

    #[test]
    fn each_step_is_one_compare_at_boots_per_compute_times_n() {
        let args = ScaleArgs {
            ns: vec![16],
            boots_per_compute: 32,
            backend: Backend::Sim,
            overlay: agent::config::Overlay::Cyclon,
            systems: "standard,p2p".into(),
            profile: "openstack-2017".into(),
            seed: 3,
            out: "x".into(),
            compare_args: vec!["--retries".into(), "0".into()],
            quiet: true,
        };
        let c = compare_args(&args, 16, Path::new("x/n-16")).expect("valid");
        assert_eq!(c.cloudlets, 16);
        assert_eq!(c.overlay, agent::config::Overlay::Cyclon);
        assert_eq!(c.retries, 0);
        assert_eq!(c.seed, 3);
        assert_eq!(c.resolved_levels(), crate::levels::Levels::List(vec![512]));
    }
}
