//! `testbed compare`: the project's main experiment.
//!
//! Starts the first system's testbed (`--systems`, default standard then
//! p2p; also cells and sharded), runs the boot-burst sweep, tears it down;
//! does the same for every other system with the same levels, seed, profile
//! and time scale; writes `OUT/results/<system>.json`; renders the report
//! into `OUT/` and returns the headline.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

pub use crate::backend::Backend;
use crate::backend::Testbed;
use crate::embedded::TestbedSpec;
use crate::hostmon::HostMonitor;
use crate::level_pool::Next;
use crate::levels::{Levels, LimitSearch, Step};
use crate::scenario::Scenario;
use crate::topology::{self, Kind};
use reports::LimitRule;

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Cloudlets of the P2P testbed = compute nodes of the standard one.
    #[arg(long, default_value_t = 64)]
    pub cloudlets: u32,
    /// Concurrency levels: `auto` (the default: search each system's
    /// limit, see --start-level and --max-level) or comma-separated burst
    /// sizes. `--quick` defaults to 8,32.
    #[arg(long)]
    pub levels: Option<Levels>,
    /// `--levels auto`: first level of each system's search.
    #[arg(long, default_value_t = 64)]
    pub start_level: u32,
    /// `--levels auto`: start a system's search from a guess of its limit,
    /// `SYSTEM=LEVEL` (repeatable; e.g. the limits of an earlier run):
    /// the search widens a bracket around the guess instead of doubling
    /// from --start-level, which stays its floor. Same precision (12.5 %).
    #[arg(long = "search-from", value_name = "SYSTEM=LEVEL", value_parser = parse_search_from)]
    pub search_from: Vec<(Kind, u32)>,
    /// `--levels auto`: largest level the search may run (default 131,072
    /// on sim; 2,048 on the real-time backends, where every boot holds
    /// sockets and 4,096 ran out of descriptors on a 20,000 limit).
    #[arg(long)]
    pub max_level: Option<u32>,
    /// Which level is a system's performance limit: most-successful,
    /// max-throughput or error-below:FRACTION (search and report).
    #[arg(long, default_value = "most-successful")]
    pub limit_rule: LimitRule,
    /// Control-plane profile of every mock (name or TOML path).
    #[arg(long, default_value = "openstack-2017")]
    pub profile: String,
    /// Wall seconds per model second (real-time backends; `sim` runs on a
    /// virtual clock and takes none).
    #[arg(long)]
    pub time_scale: Option<f64>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output directory of results and report.
    #[arg(long, default_value = "reports/out")]
    pub out: PathBuf,
    /// A small, fast run for smoke tests.
    #[arg(long)]
    pub quick: bool,
    /// Where the testbeds run: `sim` (virtual time, one process, no
    /// sockets; deterministic), `embedded` (real HTTP on loopback, real
    /// time) or `docker`.
    #[arg(long, value_enum, default_value_t = Backend::Embedded)]
    pub backend: Backend,
    #[arg(long, value_enum, default_value_t = Scenario::Steady)]
    pub scenario: Scenario,
    /// Share of members disturbed mid-level (cloudlet-loss: cloudlets
    /// stopped; agent-loss: agents stopped; partition: cloudlets cut off):
    /// 10%, 0.1 or a count.
    #[arg(long, default_value = "10%")]
    pub kill: String,
    /// Partition: how long the cut-off cloudlets stop answering, model
    /// seconds (longer than the agents' 30 s owner-unreachable bound, so
    /// that boots on them are re-placed elsewhere).
    #[arg(long, default_value_t = 60.0)]
    pub partition_for: f64,
    /// Chaos scenarios: model seconds the agents get to reconcile after
    /// the disturbance ended (and the level's cleanup finished) before
    /// orphaned and resurrected servers are counted (3 capacity intervals).
    #[arg(long, default_value_t = 30.0)]
    pub reconcile: f64,
    /// Agent retry bound for boots refused or failed remotely (0 = off).
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
    /// Poll interval of each boot, model seconds (the CLI polls every 5 s).
    #[arg(long, default_value_t = 2.0)]
    pub poll_interval: f64,
    /// Give up on a boot after this long, model seconds (Rally: 300 s).
    #[arg(long, default_value_t = 300.0)]
    pub poll_timeout: f64,
    /// Repeat the smallest and largest level at a second time scale and
    /// check that model-time results agree within 10%.
    #[arg(long)]
    pub check_scale: bool,
    /// Cloudlet-loss: stop the victims this many model seconds after every
    /// boot POST of a level was answered.
    #[arg(long, default_value_t = 5.0)]
    pub kill_after: f64,
    /// Results are host-bound when p99 timer lag exceeds this many model seconds.
    #[arg(long, default_value_t = 0.5)]
    pub max_lag_model_s: f64,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Change one parameter of --profile for both systems:
    /// `section.key=value` (repeatable; unknown keys and bad values are
    /// errors). The effective profile is written to OUT/profile.toml.
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub set: Vec<cp_model::Override>,
    /// Agents' gossip interval, model ms (default on every backend: 400
    /// up to 64 cloudlets, then in proportion to N).
    #[arg(long)]
    pub gossip_interval_ms: Option<u64>,
    /// The agents' membership overlay: full (every agent knows every
    /// other) or cyclon (partial view; docs/agent.md).
    #[arg(long, default_value = "full")]
    pub overlay: agent::config::Overlay,
    /// Systems to compare, in this order: standard, cells (nova cells v2),
    /// sharded (the cloudlets without agents, the client round-robins) and
    /// p2p. Every system gets the same N compute nodes, profile, seed and
    /// load.
    #[arg(long, default_value = "standard,p2p", value_parser = Kind::parse_list)]
    pub systems: std::vec::Vec<Kind>,
    /// Cells of the `cells` system (default: about 100 computes per cell,
    /// at least 2).
    #[arg(long, value_name = "K")]
    pub cells: Option<u32>,
    /// `--backend sim`: levels of one system run at once, each on its own
    /// thread and testbed (default 1: on a machine whose cores are busy,
    /// 2 measured 1.4× the wall time for 1.26× the CPU; see
    /// docs/benchmarks.md, session 10). The results are those of one at a
    /// time; only the wall time and the CPU spent on wrong guesses change.
    #[arg(long, value_name = "N")]
    pub level_jobs: Option<usize>,
}

impl CompareArgs {
    pub fn resolved_levels(&self) -> Levels {
        match &self.levels {
            Some(l) => l.clone(),
            None if self.quick => Levels::List(vec![8, 32]),
            None => Levels::Auto,
        }
    }

    /// Cap of the limit search.
    pub fn resolved_max_level(&self) -> u32 {
        self.max_level.unwrap_or(if self.backend.is_virtual() {
            crate::levels::DEFAULT_CAP
        } else {
            2048
        })
    }

    /// The largest level this comparison may run (sizes the testbeds).
    pub fn largest_level(&self) -> u32 {
        match self.resolved_levels() {
            Levels::Auto => self.resolved_max_level(),
            Levels::List(l) => l.iter().copied().max().unwrap_or(1),
        }
    }

    pub fn resolved_cloudlets(&self) -> u32 {
        if self.quick && self.cloudlets == 64 {
            4
        } else {
            self.cloudlets
        }
    }

    /// Levels of one system run at once: `--level-jobs` (default 1) on
    /// virtual time; always one on the real-time backends (their levels
    /// share a testbed and the host's time).
    pub fn resolved_level_jobs(&self) -> usize {
        if !self.backend.is_virtual() {
            return 1;
        }
        self.level_jobs.unwrap_or(1).max(1)
    }

    /// Wall seconds per model second: 1 on the virtual clock of `sim`
    /// (nothing maps to wall time there), else the flag or the default.
    pub fn resolved_time_scale(&self) -> f64 {
        if self.backend.is_virtual() {
            return 1.0;
        }
        self.time_scale
            .unwrap_or(if self.quick { 0.05 } else { 0.25 })
    }
}

/// A run secret for the agents' cluster: 32 bytes from the OS's secure
/// random source (never derived from the seed, the pid or the time).
pub fn random_secret() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex(&b)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the whole experiment; returns the headline table text.
pub async fn run(args: CompareArgs) -> Result<String> {
    let args = crate::profile_set::apply(args)?;
    let levels = args.resolved_levels();
    let n = args.resolved_cloudlets();
    if n == 0 {
        bail!("--cloudlets must be at least 1");
    }
    // Fixed hardware: the profile's node, whatever the levels.
    let sizing = topology::for_profile(n, &args.profile, topology::M1_TINY)?;
    if let Levels::Auto = levels {
        if args.start_level == 0 || args.start_level > args.resolved_max_level() {
            bail!("--start-level must be between 1 and --max-level");
        }
    }
    if args.backend.is_virtual() && args.time_scale.is_some() {
        bail!("--time-scale does not apply to --backend sim (virtual time has no wall clock); drop it or use --backend embedded");
    }
    if args.backend.is_virtual() && args.check_scale {
        bail!("--check-scale compares two wall-time scales; --backend sim has none (its results do not depend on the host); use --backend embedded");
    }
    let time_scale = args.resolved_time_scale();
    if !time_scale.is_finite() || time_scale <= 0.0 {
        bail!("--time-scale must be positive");
    }
    for (flag, v) in [
        ("--partition-for", args.partition_for),
        ("--reconcile", args.reconcile),
    ] {
        if !(v.is_finite() && (0.0..=86_400.0).contains(&v)) {
            bail!("{flag} must be a number of model seconds within 0..=86400");
        }
    }
    if args.scenario.is_chaos() && args.check_scale {
        bail!("--check-scale compares both systems at two time scales; --scenario {} runs the P2P system only", args.scenario.name());
    }
    if args.scenario.is_chaos() && args.backend == Backend::Docker {
        bail!("--scenario {} runs on --backend sim or embedded (the docker backend cannot stop an agent alone or reach its cloudlets for the checks yet)", args.scenario.name());
    }
    let results_dir = args.out.join("results");
    std::fs::create_dir_all(&results_dir)
        .with_context(|| format!("cannot create {}", results_dir.display()))?;

    let spec_for = |kind: Kind, time_scale: f64| TestbedSpec {
        kind,
        members: n,
        cells: args.cells,
        sizing,
        profile: args.profile.clone(),
        time_scale,
        seed: args.seed,
        retries: args.retries,
        cluster_secret: random_secret(),
        // By default the same model-time gossip interval on every backend
        // (what the embedded backend runs at its default scale, 0.25: 100
        // wall ms up to 64 members): the view's staleness shapes P2P
        // placement, so a wall-time interval made backends at other
        // scales disagree.
        gossip_interval_ms: Some(args.gossip_interval_ms.unwrap_or_else(|| {
            crate::sim::gossip_interval_model_ms(crate::embedded::interval_members(n, args.overlay))
        })),
        overlay: args.overlay,
    };
    let mut scale_disagrees = false;
    let mut runs = Vec::new();
    let mut search_report = String::new();
    let plan = |kind: Kind| match &levels {
        Levels::List(l) => Plan::Fixed(l.clone()),
        Levels::Auto => Plan::Search(match args.search_from.iter().find(|(k, _)| *k == kind) {
            Some(&(_, guess)) => LimitSearch::around(
                guess,
                args.start_level,
                args.resolved_max_level(),
                args.limit_rule.clone(),
            ),
            None => LimitSearch::new(
                args.start_level,
                args.resolved_max_level(),
                args.limit_rule.clone(),
            ),
        }),
    };
    // A chaos scenario runs only the systems it applies to, and says why not.
    let systems: Vec<Kind> = args
        .systems
        .iter()
        .copied()
        .filter(|&k| match args.scenario.not_applicable(k) {
            Some(why) => {
                println!("{}: {why}", k.label());
                false
            }
            None => true,
        })
        .collect();
    let mut outcomes = Vec::new();
    if args.backend.is_virtual() {
        // Two systems at a time, each walking its own plan; every level runs
        // on its own thread, runtime, virtual clock and testbed
        // (`run_one_sim`), so each result stays deterministic.
        let (args, plan, spec_for) = (&args, &plan, &spec_for);
        for pair in systems.chunks(2) {
            std::thread::scope(|s| {
                let handles: Vec<_> = pair
                    .iter()
                    .map(|&kind| {
                        let spec = spec_for(kind, time_scale);
                        s.spawn(move || run_one_sim(args, spec, &plan(kind)))
                    })
                    .collect();
                for h in handles {
                    outcomes.push(
                        h.join()
                            .unwrap_or_else(|_| Err(anyhow::anyhow!("a system's run panicked"))),
                    );
                }
            });
        }
    } else {
        for &kind in &systems {
            outcomes
                .push(run_one(&args, spec_for(kind, time_scale), &plan(kind), time_scale).await);
        }
    }
    for (kind, outcome) in systems.iter().copied().zip(outcomes) {
        let (run, end) = outcome?;
        if let Some(end) = end {
            let line = format!("{}: {end}\n", kind.label());
            print!("{line}");
            search_report.push_str(&line);
        }
        let path = results_dir.join(format!("{}.json", kind.label()));
        write_json(&path, &run)?;
        runs.push(run);
    }
    let mut scale_check = reports::ScaleCheck::NotRun;
    if args.check_scale {
        // Twice as much wall time per model second: less timer lag.
        let second_scale = time_scale * 2.0;
        let mut report = String::new();
        let mut all_agree = true;
        for (kind, first) in args.systems.iter().copied().zip(&runs) {
            // The smallest and largest level this system ran.
            let check_levels: Vec<u32> = [first.levels.first(), first.levels.last()]
                .into_iter()
                .flatten()
                .map(|l| l.level)
                .collect::<std::collections::BTreeSet<u32>>()
                .into_iter()
                .collect();
            let (again, _) = run_one(
                &args,
                spec_for(kind, second_scale),
                &Plan::Fixed(check_levels.clone()),
                second_scale,
            )
            .await?;
            write_json(
                &results_dir.join(format!("{}-scale-check.json", kind.label())),
                &again,
            )?;
            let mut rows = Vec::new();
            for l in &again.levels {
                if let Some(f) = first.levels.iter().find(|f| f.level == l.level) {
                    rows.extend(crate::scale_check::compare_levels(f, l));
                }
            }
            all_agree &= rows.iter().all(|r| r.within_tolerance);
            report.push_str(&crate::scale_check::table(
                kind.label(),
                (time_scale, second_scale),
                &rows,
            ));
        }
        scale_check = if all_agree {
            reports::ScaleCheck::Agree
        } else {
            reports::ScaleCheck::Disagree
        };
        report.push_str(if all_agree {
            "scale check: model-time results agree within 10% at both time scales\n"
        } else {
            "scale check: results DISAGREE between time scales: the host, not the system, shaped them; rerun with a larger --time-scale\n"
        });
        print!("{report}");
        std::fs::write(args.out.join("scale-check.txt"), &report).with_context(|| {
            format!(
                "cannot write {}",
                args.out.join("scale-check.txt").display()
            )
        })?;
        scale_disagrees = !all_agree;
    }
    if !search_report.is_empty() {
        let path = args.out.join("limit-search.txt");
        std::fs::write(&path, &search_report)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let opts = reports::ReportOptions {
        scale_check,
        limit: args.limit_rule.clone(),
        ..reports::ReportOptions::default()
    };
    // The scenarios with durability checks: their counts per system.
    let durability = if args.scenario.checks_durability() {
        reports::tables::durability_text(&runs)
    } else {
        String::new()
    };
    let table = if runs.len() == 2 && args.systems == [Kind::Standard, Kind::P2p] {
        let t = reports::compare(&runs[0], &runs[1], &args.out, &opts)
            .context("cannot render the report")?
            .table();
        format!("{t}{durability}")
    } else {
        // Any set of systems: the seed's headline when standard and P2P
        // both ran, and every system against P2P.
        let headline =
            reports::render(&runs, &args.out, &opts).context("cannot render the report")?;
        let prepared = reports::prepare(&runs, &opts.limit).context("cannot render the report")?;
        let versus = reports::versus::markdown(&reports::versus::compute(&prepared));
        format!(
            "{}{versus}{durability}",
            headline.map(|h| h.table()).unwrap_or_default()
        )
    };
    println!("{table}");
    println!("report: {}", args.out.join("index.html").display());
    if scale_disagrees {
        bail!(
            "the scale check disagrees (see {}): the host shaped these results; rerun with a larger --time-scale or --backend sim",
            args.out.join("scale-check.txt").display()
        );
    }
    Ok(table)
}

/// `--search-from SYSTEM=LEVEL`.
pub(crate) fn parse_search_from(text: &str) -> Result<(Kind, u32), String> {
    let (system, level) = text
        .split_once('=')
        .ok_or_else(|| format!("--search-from {text:?}: expected SYSTEM=LEVEL, e.g. p2p=16384"))?;
    let kinds = Kind::parse_list(system)?;
    let [kind] = kinds[..] else {
        return Err(format!("--search-from {text:?}: name one system"));
    };
    match level.trim().parse::<u32>() {
        Ok(l) if l > 0 => Ok((kind, l)),
        _ => Err(format!(
            "--search-from {text:?}: {level:?} is not a positive burst size"
        )),
    }
}

pub use crate::level_pool::Plan;

/// Runs one system's levels (a fixed list, or its limit search) on a
/// real-time backend, one after another on one testbed. Returns its results
/// and, for a search, how the search ended. (Virtual time: [`run_one_sim`].)
async fn run_one(
    args: &CompareArgs,
    spec: TestbedSpec,
    plan: &Plan,
    time_scale: f64,
) -> Result<(results::RunResults, Option<Step>)> {
    let kind = spec.kind;
    // Watches the host once the first testbed is up: its start-up (gossip
    // converging) belongs to no level. In cloudlet-loss the later start-ups
    // fall inside the window.
    let mut monitor: Option<HostMonitor> = None;
    let host_t0 = cp_model::clock::host_now();
    let cpu_t0 = crate::hostmon::process_cpu_seconds();
    // In cloudlet-loss every level starts whole: a fresh testbed per level,
    // so that a level measures losing its share of members, not the
    // accumulated losses of the levels before it.
    // The chaos scenarios too, so that what a level leaves behind is its own.
    let fresh_per_level = args.scenario.disturbs();
    let mut merged: Option<results::RunResults> = None;
    let mut reported: Option<results::ReportedCapacity> = None;
    let mut tb: Option<Testbed> = None;
    let mut end = None;
    loop {
        let done: &[results::LevelResult] = merged.as_ref().map_or(&[], |m| &m.levels);
        let level = match plan.next(done) {
            Next::Run(l) => l,
            Next::End(e) => {
                end = e;
                break;
            }
        };
        if fresh_per_level {
            if let Some(old) = tb.take() {
                old.shutdown().await;
            }
        }
        let testbed = match tb.as_mut() {
            Some(t) => t,
            None => {
                let t = Testbed::start(args.backend, spec.clone())
                    .await
                    .with_context(|| format!("cannot start the {} testbed", kind.label()))?;
                tb.insert(t)
            }
        };
        if reported.is_none() {
            reported = report_capacity(testbed).await;
        }
        monitor.get_or_insert_with(HostMonitor::start);
        let part = match sweep_level(args, testbed, level, time_scale).await {
            Ok(p) => p,
            Err(e) => {
                if let Some(t) = tb.take() {
                    t.shutdown().await;
                }
                return Err(e.context(format!("the {} sweep failed", kind.label())));
            }
        };
        print_level(args, kind, &part);
        let complete = part.complete;
        merged = Some(match merged {
            None => part,
            Some(run) => append_levels(run, part),
        });
        if !complete {
            break;
        }
    }
    if let Some(t) = tb.take() {
        t.shutdown().await;
    }
    let host = match monitor {
        Some(m) => m.stop(),
        None => {
            let wall = host_t0.elapsed().as_secs_f64();
            let cpu = match (cpu_t0, crate::hostmon::process_cpu_seconds()) {
                (Some(a), Some(b)) => (b - a).max(0.0),
                _ => 0.0,
            };
            crate::hostmon::HostReport {
                cpu_utilization: if wall > 0.0 { cpu / wall } else { 0.0 },
                cpu_seconds: cpu,
                wall_seconds: wall,
                peak_rss_bytes: crate::hostmon::peak_rss_bytes().unwrap_or(0),
                ..Default::default()
            }
        }
    };
    let host_bound = host.host_bound(time_scale, args.max_lag_model_s);
    let run = finish_run(args, &spec, merged, &end, reported, &host, Some(host_bound))?;
    Ok((run, end))
}

/// One level of a sweep on `testbed`, with the durability checks of the
/// chaos scenarios.
async fn sweep_level(
    args: &CompareArgs,
    testbed: &mut Testbed,
    level: u32,
    time_scale: f64,
) -> Result<results::RunResults> {
    let mut outcome = crate::sweep::run_sweep(args, testbed, &[level], time_scale).await;
    if args.scenario.checks_durability() {
        if let Ok((part, end)) = &mut outcome {
            let scale = cp_model::TimeScale::new(time_scale).map_err(anyhow::Error::msg)?;
            let prefix = format!(
                "{}-",
                crate::sweep::burst_config(args, &[], time_scale).name_prefix
            );
            for l in &mut part.levels {
                let checked = crate::chaos::check_level(
                    testbed,
                    l,
                    &prefix,
                    *end,
                    scale.wall(args.reconcile),
                    args.reconcile,
                )
                .await;
                if let Err(e) = checked {
                    let d = l.durability.get_or_insert_with(Default::default);
                    d.unchecked
                        .push(format!("orphan/resurrection checks: {e:#}"));
                }
            }
        }
    }
    outcome.map(|(p, _)| p)
}

fn print_level(args: &CompareArgs, kind: Kind, part: &results::RunResults) {
    if !args.quiet {
        if let Some(l) = part.levels.first() {
            eprintln!(
                "{} level {}: {}/{} ACTIVE, makespan {:.1} model s",
                kind.label(),
                l.level,
                l.succeeded,
                l.requested,
                l.makespan_s
            );
        }
    }
}

/// One level on virtual time, as [`crate::level_pool`] runs it.
struct SimLevel {
    part: results::RunResults,
    reported: Option<results::ReportedCapacity>,
}

impl crate::level_pool::LevelRun for SimLevel {
    fn level(&self) -> Option<&results::LevelResult> {
        self.part.levels.first()
    }
    fn complete(&self) -> bool {
        self.part.complete
    }
}

/// One level on a testbed of its own (started, asked for its capacity,
/// swept, stopped): on virtual time its result is then a function of the
/// spec, the arguments and the level alone, whichever levels ran before
/// it or beside it.
async fn sim_level(args: &CompareArgs, spec: TestbedSpec, level: u32) -> Result<SimLevel> {
    let kind = spec.kind;
    let mut testbed = Testbed::start(args.backend, spec)
        .await
        .with_context(|| format!("cannot start the {} testbed", kind.label()))?;
    let reported = report_capacity(&testbed).await;
    let part = sweep_level(args, &mut testbed, level, 1.0).await;
    testbed.shutdown().await;
    let part = part?;
    print_level(args, kind, &part);
    Ok(SimLevel { part, reported })
}

/// Runs one system's levels on virtual time: each level on its own thread,
/// runtime, clock and testbed, up to `--level-jobs` at once (the levels
/// the plan will need next run beside the current one; see
/// [`crate::level_pool`]). The results are those of a run one level at a
/// time.
fn run_one_sim(
    args: &CompareArgs,
    spec: TestbedSpec,
    plan: &Plan,
) -> Result<(results::RunResults, Option<Step>)> {
    let kind = spec.kind;
    let host_t0 = cp_model::clock::host_now();
    let ran = crate::level_pool::run_plan(plan, args.resolved_level_jobs(), |level, cancel| {
        let rt = crate::sim::runtime().context("cannot start a sim runtime")?;
        rt.block_on(async {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => Ok(None),
                r = sim_level(args, spec.clone(), level) => r.map(Some),
            }
        })
    })
    .map_err(|e| e.context(format!("the {} sweep failed", kind.label())))?;
    if !ran.wasted.is_empty() {
        tracing::info!(system = kind.label(), levels = ?ran.wasted, "levels run ahead and not needed");
    }
    let mut reported = None;
    let mut merged: Option<results::RunResults> = None;
    for (i, level) in ran.runs.into_iter().enumerate() {
        if i == 0 {
            reported = level.reported;
        }
        merged = Some(match merged {
            None => level.part,
            Some(run) => append_levels(run, level.part),
        });
    }
    let wall = host_t0.elapsed().as_secs_f64();
    let host = crate::hostmon::HostReport {
        cpu_utilization: if wall > 0.0 {
            ran.cpu_seconds / wall
        } else {
            0.0
        },
        cpu_seconds: ran.cpu_seconds,
        wall_seconds: wall,
        peak_rss_bytes: crate::hostmon::peak_rss_bytes().unwrap_or(0),
        ..Default::default()
    };
    // Virtual time: the host cannot shape a result (the clock waits for
    // the work) and timer lag is zero by construction.
    let run = finish_run(args, &spec, merged, &ran.end, reported, &host, None)?;
    Ok((run, ran.end))
}

/// The system's results from its levels: the search's record, the system's
/// description, its capacity and the host. `host_bound` is `None` on
/// virtual time (no host figures apply).
fn finish_run(
    args: &CompareArgs,
    spec: &TestbedSpec,
    merged: Option<results::RunResults>,
    end: &Option<Step>,
    reported: Option<results::ReportedCapacity>,
    host: &crate::hostmon::HostReport,
    host_bound: Option<bool>,
) -> Result<results::RunResults> {
    let kind = spec.kind;
    let members = spec.members;
    let watch_host = host_bound.is_some();
    let mut run = merged.context("no level to run")?;
    // The levels actually run, in the order they ran.
    let ran: Vec<u32> = run.levels.iter().map(|l| l.level).collect();
    if let Some(b) = run.config.get_mut("burst") {
        b["levels"] = serde_json::json!(ran);
    }
    if let Some(e) = &end {
        run.config["limit_search"] = serde_json::json!({
            "rule": args.limit_rule.to_string(),
            "start": args.start_level,
            "from_guess": args.search_from.iter().find(|(k, _)| *k == kind).map(|(_, g)| g),
            "cap": args.resolved_max_level(),
            "tolerance": crate::levels::DEFAULT_TOLERANCE,
            "ended": e.to_string(),
            "past_limit": matches!(e, Step::PastLimit { .. }),
        });
    }
    run.levels.sort_by_key(|l| l.level);
    run.system.label = kind.label().to_string();
    run.system.kind = Some(kind.label().to_string());
    run.system.backend = Some(args.backend.name().to_string());
    run.system.cloudlets = Some(kind.deployments(members).0);
    if kind == Kind::Cells {
        run.config["deployment"] = serde_json::json!({
            "cells": spec.resolved_cells(),
            "computes_per_cell": members.div_ceil(spec.resolved_cells().max(1)),
        });
    }
    run.system.computes = Some(members);
    run.system.profile = Some(args.profile.clone());
    run.system.profile_hash = cp_model::Profile::load(&args.profile)
        .ok()
        .map(|p| p.hash());
    if run.tool.git_revision.is_none() {
        run.tool.git_revision = git_revision();
    }
    run.system.retries = kind.has_agents().then_some(args.retries);
    run.system.scenario = Some(args.scenario.name().to_string());
    run.system.scenario_detail = crate::scenario::detail(args, kind, members);
    let node_source = cp_model::Profile::load(&args.profile)
        .map(|p| p.hardware.source)
        .unwrap_or_default();
    let mut capacity = crate::capacity::deployed(spec, &node_source);
    capacity.reported = reported;
    run.system.capacity = Some(capacity);
    run.command_line = std::env::args().collect();
    // The one writer of `host.*` for a comparison (loadgen leaves them
    // empty: `host_measured_by_caller`).
    run.host = results::HostInfo {
        cpus: std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1),
        host_bound: Some(host_bound.unwrap_or(false)),
        scheduler_lag_p99_ms: watch_host.then_some(host.lag_p99_ms),
        scheduler_lag_max_ms: watch_host.then_some(host.lag_max_ms),
        cpu_utilization: Some(host.cpu_utilization),
        loadgen_cpu_seconds: None,
        peak_rss_bytes: Some(host.peak_rss_bytes),
    };
    Ok(run)
}

/// The testbed's compute capacity as its first entry point reports it;
/// `None` (with a warning) when it cannot be read.
async fn report_capacity(tb: &Testbed) -> Option<results::ReportedCapacity> {
    let entry = tb.entries().into_iter().next()?;
    let transport: os_client::SharedTransport =
        match tb.client_transport(std::time::Duration::from_secs(30)) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "cannot create the HTTP client");
                return None;
            }
        };
    match crate::capacity::reported(transport, &entry).await {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot read the deployed capacity");
            None
        }
    }
}

/// `first` followed by the levels of `next` (a run of later levels).
fn append_levels(mut first: results::RunResults, next: results::RunResults) -> results::RunResults {
    first.levels.extend(next.levels);
    first.finished_at = next.finished_at;
    first.complete &= next.complete;
    if first.incomplete_reason.is_none() {
        first.incomplete_reason = next.incomplete_reason;
    }
    first
}

fn write_json(path: &Path, run: &results::RunResults) -> Result<()> {
    let text = serde_json::to_vec_pretty(run).context("cannot serialize results")?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The checkout's revision, when the experiment runs from a git checkout
/// (with `-dirty` when it has local changes), so a report can be rerun.
fn git_revision() -> Option<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: CompareArgs,
    }

    /// A results file without the fields that record the host and the date.
    fn without_host_and_date(out: &Path, system: &str) -> serde_json::Value {
        let path = out.join("results").join(format!("{system}.json"));
        let text = std::fs::read_to_string(&path).expect("results file");
        let mut v: serde_json::Value = serde_json::from_str(&text).expect("json");
        if let Some(o) = v.as_object_mut() {
            for k in ["host", "started_at", "finished_at", "command_line"] {
                o.remove(k);
            }
        }
        v
    }

    #[test]
    fn levels_run_side_by_side_give_the_results_of_one_at_a_time() {
        let compare = |jobs: &str, out: &Path| {
            let out = out.to_str().expect("utf-8 path");
            let cmd = Cmd::try_parse_from([
                "compare",
                "--backend",
                "sim",
                "--quick",
                "--quiet",
                "--seed",
                "5",
                "--levels",
                "auto",
                "--start-level",
                "8",
                "--max-level",
                "32",
                "--level-jobs",
                jobs,
                "--out",
                out,
            ])
            .expect("arguments");
            let rt = crate::sim::runtime().expect("runtime");
            rt.block_on(run(cmd.args)).expect("compare");
        };
        let (one, three) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        compare("1", one.path());
        compare("3", three.path());
        for system in ["standard", "p2p"] {
            let a = without_host_and_date(one.path(), system);
            assert_eq!(
                a["config"]["burst"]["levels"],
                serde_json::json!([8, 16, 32]),
                "{system}: the search ran 8, 16 and 32"
            );
            assert_eq!(a, without_host_and_date(three.path(), system), "{system}");
        }
    }

    #[test]
    fn search_from_names_one_system_and_a_positive_level() {
        assert_eq!(parse_search_from("p2p=16384"), Ok((Kind::P2p, 16_384)));
        assert_eq!(
            parse_search_from("standard= 1408"),
            Ok((Kind::Standard, 1_408))
        );
        for bad in ["p2p", "p2p=0", "p2p=x", "nova=64", "p2p,standard=64", "=64"] {
            assert!(parse_search_from(bad).is_err(), "{bad}");
        }
    }
}
