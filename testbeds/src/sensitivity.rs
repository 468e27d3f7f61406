//! `testbed sensitivity`: the comparison under each assumed parameter's
//! plausible range, one parameter at a time.
//!
//! Every setting is one run of [`crate::compare::run`] (the limit search
//! included) with one parameter changed: a profile key through `--set`
//! (both systems get the same changed profile; the mocks cannot tell a
//! cloudlet from the monolith), or a compare flag (client poll timeout,
//! agents' gossip interval). The baseline (every parameter at its default)
//! is run once and stands for the default value of every parameter. Each
//! setting's full compare report stays in `OUT/runs/<parameter>-<label>/`;
//! the sensitivity report (tornado charts, claim map, CSV) is written by
//! [`reports::sensitivity`] into `OUT/`, after every setting, so a run cut
//! short still leaves what it measured.
//!
//! Ranges and their sources are in [`PARAMETERS`] and in
//! docs/performance-model.md ("Sensitivity").

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser};
use reports::sensitivity::{ParameterInfo, RunInfo, Sensitivity, SettingResult};

use crate::backend::Backend;
use crate::compare::{self, CompareArgs};
use crate::topology::Kind;

#[derive(Debug, Clone, Args)]
pub struct SensitivityArgs {
    /// Cloudlets of the P2P testbed = compute nodes of the standard one.
    #[arg(long, default_value_t = 64)]
    pub cloudlets: u32,
    /// Parameters to vary, comma-separated (default: all; `--list` names them).
    #[arg(long, value_delimiter = ',')]
    pub params: Vec<String>,
    /// Values per parameter: odd, from the range's low end through the
    /// default to its high end (3: low, default, high; 1: the baseline only).
    #[arg(long, default_value_t = 3)]
    pub values: u32,
    /// Where the testbeds run (default: `testbed compare`'s default);
    /// `sim` is the fast, deterministic virtual-time backend.
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Base profile (name or TOML path); every setting changes one parameter of it.
    #[arg(long, default_value = "openstack-2017")]
    pub profile: String,
    /// First level of each system's limit search.
    #[arg(long, default_value_t = 64)]
    pub start_level: u32,
    /// Cap of each limit search (default: compare's for the backend).
    #[arg(long)]
    pub max_level: Option<u32>,
    /// Start the baseline's search of a system from a guess of its limit,
    /// `SYSTEM=LEVEL` (repeatable; see `testbed compare --search-from`).
    #[arg(long = "search-from", value_name = "SYSTEM=LEVEL", value_parser = compare::parse_search_from)]
    pub search_from: Vec<(Kind, u32)>,
    /// Search every setting's limits as the baseline's, from --start-level
    /// (by default the other settings start from the baseline's limits and
    /// widen a bracket around them: the same 12.5 % precision for a
    /// fraction of the boots).
    #[arg(long)]
    pub cold_search: bool,
    /// Output directory: the report, and each comparison under runs/.
    #[arg(long, default_value = "reports/sensitivity")]
    pub out: PathBuf,
    /// No per-level progress lines.
    #[arg(long)]
    pub quiet: bool,
    /// Print the parameters, their values and sources, and run nothing.
    #[arg(long)]
    pub list: bool,
    /// Comparisons at a time (default: one per CPU); above 1 each runs in
    /// a child process of this program (its own runtime and clock). The
    /// baseline runs first and alone (its two systems on two threads).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Internal (`--jobs`): run only the setting with this id.
    #[arg(long, hide = true)]
    pub only: Option<String>,
    /// Internal (`--jobs`): the baseline's limits, which a child's search
    /// starts from (before any --search-from).
    #[arg(long, hide = true, value_parser = compare::parse_search_from)]
    pub guess: Vec<(Kind, u32)>,
}

impl SensitivityArgs {
    /// `--jobs`, or one per CPU.
    pub fn resolved_jobs(&self) -> usize {
        self.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    /// The backend, `testbed compare`'s default when not given.
    pub fn resolved_backend(&self) -> Backend {
        self.backend.unwrap_or_else(|| {
            compare_defaults()
                .map(|a| a.backend)
                .unwrap_or(Backend::Embedded)
        })
    }
}

/// How a parameter is changed.
#[derive(Debug, Clone, Copy)]
pub enum Knob {
    /// Profile keys moved together, each from `low` through the profile's
    /// value to `high`: `(key, low, high)`.
    Profile(&'static [(&'static str, f64, f64)]),
    /// Profile keys all multiplied by one factor from `low` through 1 to `high`.
    ProfileScale(&'static [&'static str], f64, f64),
    /// `compare --poll-timeout`, model seconds.
    PollTimeout(f64, f64),
    /// `compare --gossip-interval-ms`, as a factor of compare's default.
    GossipFactor(f64, f64),
}

/// One assumed parameter and its plausible range.
#[derive(Debug, Clone, Copy)]
pub struct Parameter {
    pub name: &'static str,
    pub description: &'static str,
    pub knob: Knob,
    /// Where the range comes from; `assumed` when nothing published bounds it.
    pub source: &'static str,
}

/// The parameters varied by default, in report order. [cal] =
/// shared/reference/calibration.md, [fm] = shared/reference/failure-mechanisms.md.
pub const PARAMETERS: &[Parameter] = &[
    Parameter {
        name: "api_workers",
        description: "nova-api worker processes",
        knob: Knob::Profile(&[("api.workers", 2.0, 8.0)]),
        source: "default = CPU count [cal]; 2-8 = a 2- to 8-core controller: assumed (the paper's controller size is not published)",
    },
    Parameter {
        name: "api_post_cost",
        description: "nova-api CPU time per POST /servers, s",
        knob: Knob::Profile(&[("api.post_s", 0.12, 0.4)]),
        source: "low: Keystone authenticate 0.08-0.10 s [cal] + ~0.02 s of DB work; high: twice the default, assumed",
    },
    Parameter {
        name: "api_timeout",
        description: "load-balancer / client timeout of an API call (504), s",
        knob: Knob::Profile(&[("api.timeout_s", 30.0, 120.0)]),
        source: "assumed (HAProxy `timeout server` is deployment-specific [fm §6]; no published value for the seed)",
    },
    Parameter {
        name: "conductor_workers",
        description: "nova-conductor worker processes",
        knob: Knob::Profile(&[("conductor.workers", 2.0, 8.0)]),
        source: "default = CPU count [cal]; 2-8 cores: assumed, as for the API",
    },
    Parameter {
        name: "bus_rate",
        description: "messages the RabbitMQ broker forwards per second",
        knob: Knob::Profile(&[("bus.messages_per_s", 2400.0, 6800.0)]),
        source: "measured [fm §2]: oslo.messaging simulator CALL rate, 2,400/s (HA queues on the master) to 6,800/s (client and server on different nodes); default 5,100/s",
    },
    Parameter {
        name: "db_pool",
        description: "oslo.db pool per worker process (pool_size + max_overflow)",
        knob: Knob::Profile(&[("db.pool_size", 5.0, 30.0), ("db.max_overflow", 10.0, 60.0)]),
        source: "low 5+10: eventlet-era pools (openstack-dev ML 2015-16) [fm §4]; default 5+50 (oslo.db) [cal]; high 30+60: Genestack's neutron (rackerlabs/genestack PR 1119) [fm §4]",
    },
    Parameter {
        name: "node_size",
        description: "compute node vCPUs, RAM and disk (both systems)",
        knob: Knob::ProfileScale(
            &[
                "hardware.compute_vcpus",
                "hardware.compute_ram_mb",
                "hardware.compute_disk_gb",
            ],
            0.5,
            2.0,
        ),
        source: "assumed: half to twice the 2017 lab server (2x E5-2680 v3, 48 threads [fm §2]); RAM and disk (assumed) in proportion",
    },
    Parameter {
        name: "scheduler_per_host",
        description: "scheduler cost per host considered, s",
        knob: Knob::Profile(&[("scheduler.per_host_s", 0.0001, 0.0012)]),
        source: "default 0.35 ms: Intel 2016, ~355 ms at 1,000 computes [cal]; high 1.2 ms: perf-docs host listing 1.20 s at 1,000 nodes [fm §8]; low 0.1 ms: assumed",
    },
    Parameter {
        name: "poll_timeout",
        description: "client gives up on a boot after, s (compare --poll-timeout)",
        knob: Knob::PollTimeout(150.0, 600.0),
        source: "default 300 s: Rally's boot timeout; 150-600 s: assumed",
    },
    Parameter {
        name: "gossip_interval",
        description: "agents' gossip interval, factor of compare's default (P2P only)",
        knob: Knob::GossipFactor(0.25, 4.0),
        source: "assumed: a quarter to four times compare's default (400 model ms up to 64 cloudlets, every backend)",
    },
];

/// One comparison to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub parameter: &'static str,
    pub label: String,
    pub value: String,
    pub baseline: bool,
    pub sets: Vec<cp_model::Override>,
    pub poll_timeout: Option<f64>,
    pub gossip_interval_ms: Option<u64>,
}

impl Setting {
    /// `baseline`, or `<parameter>-<label>`.
    pub fn id(&self) -> String {
        if self.baseline {
            "baseline".into()
        } else {
            format!("{}-{}", self.parameter, self.label)
        }
    }

    /// Directory of this setting's comparison.
    pub fn run_dir(&self) -> String {
        format!("runs/{}", self.id())
    }

    /// `api_workers = 2 (low)`, or `baseline`.
    pub fn describe(&self) -> String {
        if self.baseline {
            "baseline (every parameter at its default)".into()
        } else {
            format!("{} = {} ({})", self.parameter, self.value, self.label)
        }
    }

    /// The baseline comparison's arguments with this setting applied.
    pub fn apply(&self, base: &CompareArgs, out: &Path) -> CompareArgs {
        let mut a = base.clone();
        a.out = out.join(self.run_dir());
        a.set.extend(self.sets.iter().cloned());
        if let Some(t) = self.poll_timeout {
            a.poll_timeout = t;
        }
        if let Some(g) = self.gossip_interval_ms {
            a.gossip_interval_ms = Some(g);
        }
        a
    }
}

/// Positions along a range for `k` values (odd): −1 = low end, 0 = the
/// default, 1 = high end, evenly spaced between.
pub fn positions(k: u32) -> Vec<f64> {
    let m = (k / 2) as i64;
    if m == 0 {
        return vec![0.0];
    }
    (-m..=m).map(|i| i as f64 / m as f64).collect()
}

/// The value at position `t` of a range `low … default … high`,
/// geometrically (every range here is a factor around the default).
pub fn at(t: f64, low: f64, default: f64, high: f64) -> f64 {
    if t == 0.0 || default <= 0.0 {
        return default;
    }
    let end = if t < 0.0 { low } else { high };
    if end <= 0.0 {
        return default;
    }
    default * (end / default).powf(t.abs())
}

/// `0.00035`, `2400`, `0.12`: three significant digits, no float noise.
fn num(v: f64) -> String {
    let r: f64 = format!("{v:.2e}").parse().unwrap_or(v);
    format!("{r}")
}

fn label(t: f64, i: usize) -> String {
    if t == 0.0 {
        "default".into()
    } else if t == -1.0 {
        "low".into()
    } else if t == 1.0 {
        "high".into()
    } else {
        format!("v{}", i + 1)
    }
}

/// A profile key's current value (`None`: not a number or no such key).
fn key_value(profile: &serde_json::Value, key: &str) -> Option<serde_json::Value> {
    let mut at = profile;
    for part in key.split('.') {
        at = at.get(part)?;
    }
    at.is_number().then(|| at.clone())
}

/// The key set to `v`, rounded when the key takes an integer (at least 1).
fn key_override(key: &str, current: &serde_json::Value, v: f64) -> Result<cp_model::Override> {
    let text = if current.is_f64() {
        // `{:?}` keeps the decimal point: the key takes a float.
        let r: f64 = num(v).parse().unwrap_or(v);
        format!("{key}={r:?}")
    } else {
        format!("{key}={}", (v.round() as i64).max(1))
    };
    text.parse()
        .with_context(|| format!("cannot build the override {text}"))
}

/// An override's value as the report shows it (`30`, not `30.0`).
fn shown_value(o: &cp_model::Override) -> String {
    match o.value.as_float() {
        Some(f) => num(f),
        None => o.value.to_string(),
    }
}

fn as_f64(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// The settings of one parameter (the default among them, marked
/// baseline), lowest value first, duplicates (after rounding) dropped.
pub fn settings(
    p: &Parameter,
    k: u32,
    profile: &cp_model::Profile,
    base: &CompareArgs,
) -> Result<Vec<Setting>> {
    let table = serde_json::to_value(profile).context("cannot read the profile's values")?;
    let mut out: Vec<Setting> = Vec::new();
    for (i, t) in positions(k).into_iter().enumerate() {
        let mut s = Setting {
            parameter: p.name,
            label: label(t, i),
            value: String::new(),
            baseline: t == 0.0,
            sets: Vec::new(),
            poll_timeout: None,
            gossip_interval_ms: None,
        };
        match p.knob {
            Knob::Profile(keys) => {
                let mut shown = Vec::new();
                for &(key, low, high) in keys {
                    let cur = key_value(&table, key)
                        .with_context(|| format!("profile {} has no number {key}", profile.name))?;
                    let o = key_override(key, &cur, at(t, low, as_f64(&cur), high))?;
                    shown.push(shown_value(&o));
                    if t != 0.0 {
                        s.sets.push(o);
                    }
                }
                s.value = shown.join("+");
            }
            Knob::ProfileScale(keys, low, high) => {
                let f = at(t, low, 1.0, high);
                let mut shown = Vec::new();
                for &key in keys {
                    let cur = key_value(&table, key)
                        .with_context(|| format!("profile {} has no number {key}", profile.name))?;
                    let o = key_override(key, &cur, as_f64(&cur) * f)?;
                    let name = key.rsplit('.').next().unwrap_or(key);
                    shown.push(format!(
                        "{} {}",
                        shown_value(&o),
                        name.trim_start_matches("compute_")
                    ));
                    if t != 0.0 {
                        s.sets.push(o);
                    }
                }
                s.value = format!("×{} ({})", num(f), shown.join(", "));
            }
            Knob::PollTimeout(low, high) => {
                let v = at(t, low, base.poll_timeout, high).round();
                s.value = num(v);
                if t != 0.0 {
                    s.poll_timeout = Some(v);
                }
            }
            Knob::GossipFactor(low, high) => {
                let default = default_gossip_ms(base);
                let f = at(t, low, 1.0, high);
                let ms = ((default as f64) * f).round().max(1.0) as u64;
                s.value = format!("{ms} ms");
                if t != 0.0 {
                    s.gossip_interval_ms = Some(ms);
                }
            }
        }
        // Rounding can make a value repeat the default or its neighbour.
        if out.iter().any(|o| o.value == s.value) {
            if s.baseline {
                out.retain(|o| o.value != s.value);
            } else {
                continue;
            }
        }
        out.push(s);
    }
    Ok(out)
}

/// The agents' gossip interval compare uses when none is given, model ms
/// (the same on every backend).
pub fn default_gossip_ms(base: &CompareArgs) -> u64 {
    crate::sim::gossip_interval_model_ms(base.resolved_cloudlets())
}

/// `testbed compare`'s defaults, as its command line would give them.
pub fn compare_defaults() -> Result<CompareArgs> {
    #[derive(Parser)]
    struct Defaults {
        #[command(flatten)]
        args: CompareArgs,
    }
    Defaults::try_parse_from(["compare"])
        .map(|d| d.args)
        .context("cannot build compare's defaults")
}

/// The baseline comparison of a sensitivity run.
pub fn baseline_args(args: &SensitivityArgs) -> Result<CompareArgs> {
    let mut base = compare_defaults()?;
    base.cloudlets = args.cloudlets;
    base.backend = args.resolved_backend();
    base.seed = args.seed;
    base.profile = args.profile.clone();
    base.start_level = args.start_level;
    base.max_level = args.max_level;
    // The baseline's limits (children of --jobs) come before the user's guesses.
    base.search_from = args
        .guess
        .iter()
        .chain(&args.search_from)
        .copied()
        .collect();
    base.levels = None; // the limit search
    base.quiet = args.quiet;
    Ok(base)
}

/// The parameters chosen by `--params`, in [`PARAMETERS`] order.
pub fn selected(names: &[String]) -> Result<Vec<&'static Parameter>> {
    let known: Vec<&str> = PARAMETERS.iter().map(|p| p.name).collect();
    for n in names {
        if !known.contains(&n.trim()) {
            bail!(
                "--params: unknown parameter {n:?}; known: {}",
                known.join(", ")
            );
        }
    }
    Ok(PARAMETERS
        .iter()
        .filter(|p| names.is_empty() || names.iter().any(|n| n.trim() == p.name))
        .collect())
}

/// Every selected parameter with its settings, in report order.
pub type Plan = Vec<(ParameterInfo, Vec<Setting>)>;

/// The baseline comparison and the plan.
pub fn plan(args: &SensitivityArgs) -> Result<(CompareArgs, Plan)> {
    if args.values == 0 || args.values.is_multiple_of(2) {
        bail!("--values must be odd (low … default … high), e.g. 3");
    }
    if args.cloudlets == 0 {
        bail!("--cloudlets must be at least 1");
    }
    let base = baseline_args(args)?;
    let profile = cp_model::Profile::load(&args.profile)
        .with_context(|| format!("profile {:?}", args.profile))?;
    let mut out = Vec::new();
    for p in selected(&args.params)? {
        let settings = settings(p, args.values, &profile, &base)?;
        let info = ParameterInfo {
            name: p.name.into(),
            description: p.description.into(),
            changes: match p.knob {
                Knob::Profile(keys) => keys.iter().map(|k| k.0).collect::<Vec<_>>().join(" + "),
                Knob::ProfileScale(keys, ..) => keys.join(", "),
                Knob::PollTimeout(..) => "compare --poll-timeout".into(),
                Knob::GossipFactor(..) => "compare --gossip-interval-ms".into(),
            },
            values: settings
                .iter()
                .map(|s| {
                    if s.baseline {
                        format!("{} (default)", s.value)
                    } else {
                        s.value.clone()
                    }
                })
                .collect(),
            source: p.source.into(),
        };
        out.push((info, settings));
    }
    Ok((base, out))
}

/// One comparison; its headline as the compare report wrote it.
async fn run_setting(
    base: &CompareArgs,
    setting: &Setting,
    out: &Path,
) -> Result<reports::Headline> {
    let args = setting.apply(base, out);
    let dir = args.out.clone();
    compare::run(args).await?;
    read_headline(&dir)
}

/// The headline a comparison's report wrote into `dir`.
fn read_headline(dir: &Path) -> Result<reports::Headline> {
    let path = dir.join("headline.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("cannot parse {}", path.display()))
}

/// What became of one comparison: its headline, or why it failed.
type Outcome = std::result::Result<reports::Headline, String>;

/// Runs every setting and writes the report; returns what it wrote.
pub async fn run(args: SensitivityArgs) -> Result<Sensitivity> {
    let (base, plan) = plan(&args)?;
    bail_if_nothing(&plan)?;
    if args.list {
        for (p, _) in &plan {
            println!(
                "{:<20} {:<34} {}\n{:<20} source: {}",
                p.name,
                p.changes,
                p.values.join(" | "),
                "",
                p.source
            );
        }
        return Ok(empty(&args, &base, plan));
    }
    // The comparisons to run: the baseline once, then every other value.
    let mut todo: Vec<Setting> = Vec::new();
    for (_, settings) in &plan {
        for s in settings {
            if !todo.iter().any(|t| t.id() == s.id()) {
                todo.push(s.clone());
            }
        }
    }
    todo.sort_by_key(|s| !s.baseline);
    if let Some(id) = &args.only {
        // A child of `--jobs`: one comparison, in this process.
        let s = todo
            .iter()
            .find(|s| &s.id() == id)
            .with_context(|| format!("--only: no setting {id:?}"))?;
        run_setting(&base, s, &args.out).await?;
        return Ok(empty(&args, &base, plan));
    }
    let jobs = args.resolved_jobs();
    if jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let started = cp_model::clock::host_now();
    let total = todo.len();
    let mut report = empty(&args, &base, plan.clone());
    let mut outcomes: Vec<Option<Outcome>> = vec![None; total];
    let mut finished = 0usize;
    // Called as each comparison ends: record it, say so, rewrite the report.
    let mut record = |i: usize, outcome: Outcome| -> Result<()> {
        finished += 1;
        let s = &todo[i];
        match &outcome {
            Ok(_) => eprintln!(
                "sensitivity [{finished}/{total}] {} done ({:.0} s so far)",
                s.describe(),
                started.elapsed().as_secs_f64()
            ),
            Err(e) => eprintln!(
                "sensitivity [{finished}/{total}] {} FAILED: {e}",
                s.describe()
            ),
        }
        outcomes[i] = Some(outcome);
        assemble(&mut report, &plan, &todo, &outcomes);
        reports::sensitivity::write(&report, &args.out).context("cannot write the report")
    };
    // The baseline first and alone (`todo` starts with it): the other
    // settings' searches start from its limits, and nothing else is worth
    // running if it fails.
    let baseline = if jobs == 1 {
        eprintln!("sensitivity: running {}", todo[0].describe());
        run_setting(&base, &todo[0], &args.out)
            .await
            .map_err(|e| format!("{e:#}"))
    } else {
        run_child(&args.out, &todo[0], &[])
    };
    record(0, baseline.clone())?;
    let baseline = match baseline {
        Ok(h) => h,
        Err(e) => bail!("the baseline comparison failed: {e}"),
    };
    let guesses = if args.cold_search {
        Vec::new()
    } else {
        vec![
            (Kind::Standard, baseline.standard.limit_level),
            (Kind::P2p, baseline.p2p.limit_level),
        ]
    };
    if jobs == 1 {
        let mut guided = base.clone();
        guided.search_from = guesses.iter().chain(&base.search_from).copied().collect();
        for (i, s) in todo.iter().enumerate().skip(1) {
            eprintln!("sensitivity: running {}", s.describe());
            let outcome = run_setting(&guided, s, &args.out)
                .await
                .map_err(|e| format!("{e:#}"));
            record(i, outcome)?;
        }
    } else {
        let extra: Vec<String> = guesses
            .iter()
            .flat_map(|(k, l)| ["--guess".to_string(), format!("{}={l}", k.label())])
            .collect();
        run_children(&args.out, &todo, jobs, &extra, &mut record)?;
    }
    println!(
        "sensitivity: {} comparisons in {:.0} s (wall), {} at a time; report: {}",
        report.run.comparisons,
        started.elapsed().as_secs_f64(),
        jobs,
        args.out.join("index.html").display()
    );
    Ok(report)
}

/// The report's settings from the comparisons finished so far, in plan
/// order; each parameter's default value repeats the baseline.
fn assemble(report: &mut Sensitivity, plan: &Plan, todo: &[Setting], outcomes: &[Option<Outcome>]) {
    let outcome_of = |s: &Setting| {
        todo.iter()
            .position(|t| t.id() == s.id())
            .and_then(|i| outcomes[i].clone())
    };
    report.run.comparisons = outcomes.iter().filter(|o| o.is_some()).count() as u32;
    report.baseline = todo
        .iter()
        .find(|s| s.baseline)
        .and_then(outcome_of)
        .and_then(|o| o.ok());
    report.settings = plan
        .iter()
        .flat_map(|(p, settings)| settings.iter().map(move |s| (p, s)))
        .filter_map(|(p, s)| {
            let outcome = outcome_of(s)?;
            Some(SettingResult {
                parameter: p.name.clone(),
                label: s.label.clone(),
                value: s.value.clone(),
                baseline: s.baseline,
                run_dir: s.run_dir(),
                error: outcome.as_ref().err().cloned(),
                headline: outcome.ok(),
            })
        })
        .collect();
}

/// `--jobs N`: every setting but the baseline (`todo[0]`) in a child
/// process of this program (`testbed … sensitivity … --only <id>`, which
/// runs it through [`compare::run`] like the sequential path), N at a
/// time, each with `extra` arguments. Each child has its own runtime and
/// clock; its output goes to `runs/<id>/log.txt`.
fn run_children(
    out: &Path,
    todo: &[Setting],
    jobs: usize,
    extra: &[String],
    record: &mut dyn FnMut(usize, Outcome) -> Result<()>,
) -> Result<()> {
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Mutex};

    let queue = Mutex::new((1..todo.len()).collect::<VecDeque<usize>>());
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<(usize, Outcome)>();
    let mut result = Ok(());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(todo.len().saturating_sub(1)) {
            let tx = tx.clone();
            let (queue, stop) = (&queue, &stop);
            scope.spawn(move || loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some(i) = next else { break };
                let outcome = run_child(out, &todo[i], extra);
                if tx.send((i, outcome)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for (i, outcome) in rx {
            if let Err(e) = record(i, outcome) {
                stop.store(true, Ordering::SeqCst);
                result = Err(e);
            }
        }
    });
    result
}

/// One setting in a child process of this program: this command line with
/// `--only <id>` and `extra`.
fn run_child(out: &Path, s: &Setting, extra: &[String]) -> Outcome {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find this program to run its children: {e}"))?;
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let dir = out.join(s.run_dir());
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let log_path = dir.join("log.txt");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let err = log
        .try_clone()
        .map_err(|e| format!("cannot share {}: {e}", log_path.display()))?;
    let status = std::process::Command::new(&exe)
        .args(argv)
        .args(["--only", &s.id()])
        .args(extra)
        .stdout(log)
        .stderr(err)
        .status()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    if !status.success() {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let last = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!("{status}: {last} (see {})", log_path.display()));
    }
    read_headline(&dir).map_err(|e| format!("{e:#}"))
}

fn bail_if_nothing(plan: &Plan) -> Result<()> {
    if plan.is_empty() {
        bail!("no parameter selected");
    }
    Ok(())
}

fn empty(args: &SensitivityArgs, base: &CompareArgs, plan: Plan) -> Sensitivity {
    Sensitivity {
        schema: reports::sensitivity::SCHEMA.into(),
        schema_version: reports::sensitivity::SCHEMA_VERSION,
        run: RunInfo {
            cloudlets: args.cloudlets,
            backend: base.backend.name().into(),
            seed: args.seed,
            profile: args.profile.clone(),
            limit_rule: base.limit_rule.to_string(),
            values: args.values,
            comparisons: 0,
            command_line: std::env::args().collect(),
        },
        parameters: plan.into_iter().map(|(p, _)| p).collect(),
        baseline: None,
        settings: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> SensitivityArgs {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            a: SensitivityArgs,
        }
        let mut v = vec!["sensitivity"];
        v.extend_from_slice(extra);
        Cli::try_parse_from(v).expect("parses").a
    }

    #[test]
    fn three_values_are_low_default_high() {
        assert_eq!(positions(3), vec![-1.0, 0.0, 1.0]);
        assert_eq!(positions(1), vec![0.0]);
        assert_eq!(positions(5), vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
        assert_eq!(at(-1.0, 2.0, 4.0, 8.0), 2.0);
        assert_eq!(at(1.0, 2.0, 4.0, 8.0), 8.0);
        assert!((at(0.5, 2.0, 4.0, 16.0) - 8.0).abs() < 1e-9);
    }

    #[test]
    fn every_parameter_plans_three_distinct_settings_from_the_profile() {
        let a = args(&["--backend", "sim", "--cloudlets", "4"]);
        let (base, plan) = plan(&a).expect("plan");
        assert_eq!(plan.len(), PARAMETERS.len());
        for (p, settings) in &plan {
            assert_eq!(settings.len(), 3, "{}: {settings:?}", p.name);
            assert_eq!(settings.iter().filter(|s| s.baseline).count(), 1);
            assert!(!p.source.is_empty());
            // The default is the baseline: it changes nothing.
            let d = settings.iter().find(|s| s.baseline).expect("default");
            assert_eq!(d.apply(&base, Path::new("o")).set, Vec::new());
        }
        let workers = &plan[0].1;
        assert_eq!(
            workers.iter().map(|s| s.value.as_str()).collect::<Vec<_>>(),
            ["2", "4", "8"]
        );
        assert_eq!(workers[0].sets[0].to_string(), "api.workers=2");
        let pool = plan
            .iter()
            .find(|(p, _)| p.name == "db_pool")
            .expect("db_pool");
        assert_eq!(
            pool.1.iter().map(|s| s.value.as_str()).collect::<Vec<_>>(),
            ["5+10", "5+50", "30+60"]
        );
        // Every override applies to the profile (keys exist, types fit).
        let profile = cp_model::Profile::load("openstack-2017").expect("profile");
        for (_, settings) in &plan {
            for s in settings {
                profile.with_overrides(&s.sets).expect("valid override");
            }
        }
        let gossip = plan
            .iter()
            .find(|(p, _)| p.name == "gossip_interval")
            .expect("gossip");
        assert_eq!(gossip.1[0].gossip_interval_ms, Some(100));
        assert_eq!(gossip.1[2].gossip_interval_ms, Some(1600));
        let poll = plan
            .iter()
            .find(|(p, _)| p.name == "poll_timeout")
            .expect("poll");
        assert_eq!(poll.1[2].apply(&base, Path::new("o")).poll_timeout, 600.0);
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(plan(&args(&["--values", "2"])).is_err());
        assert!(plan(&args(&["--params", "api_workers,nope"])).is_err());
        let (_, p) = plan(&args(&[
            "--params",
            "db_pool,api_workers",
            "--backend",
            "sim",
        ]))
        .expect("plan");
        let names: Vec<&str> = p.iter().map(|(p, _)| p.name.as_str()).collect();
        assert_eq!(names, ["api_workers", "db_pool"]);
    }

    #[test]
    fn the_baseline_is_compare_with_the_limit_search() {
        let base = baseline_args(&args(&["--backend", "sim", "--cloudlets", "8"])).expect("base");
        let defaults = compare_defaults().expect("defaults");
        assert_eq!(base.levels, None);
        assert_eq!(base.cloudlets, 8);
        assert_eq!(base.poll_timeout, defaults.poll_timeout);
        assert_eq!(base.profile, defaults.profile);
        assert!(matches!(
            base.resolved_levels(),
            crate::levels::Levels::Auto
        ));
    }
}
