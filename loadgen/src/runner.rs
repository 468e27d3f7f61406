//! The experiments: `boot-burst` and `boot-delete` (closed and open).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cp_model::clock::{self, Instant};

use os_client::{compute, SharedTransport};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use results::{
    Audit, HostInfo, LevelResult, LoadModel, Outcome, RequestRecord, RunResults, TargetInfo,
    ToolInfo, SCHEMA_NAME, SCHEMA_VERSION,
};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::{BootDeleteConfig, BootDeleteModel, BurstConfig, EntryPolicy, LevelEvent};
use crate::prepare::{prepare, Prepared};
use crate::stats::{summarize, Finished};
use crate::target::Target;
use crate::workflow::{self, LevelCtx};
use crate::{procstat, LoadgenError};
use cp_model::TimeScale;

/// A start is late when it begins more than this after its intended time
/// (wall), or more than 0.01 model seconds, whichever is larger.
pub const LATE_TOLERANCE_WALL: Duration = Duration::from_millis(2);

/// State of a whole run (across levels).
struct RunState<'a> {
    cfg: &'a BurstConfig,
    prep: Prepared,
    policy: EntryPolicy,
    clock: TimeScale,
    run_id: String,
    cancel: CancellationToken,
    /// Timer lateness of the in-flight sampler, wall microseconds.
    lag: hdrhistogram::Histogram<u64>,
    entry_rng: ChaCha8Rng,
    rr_next: usize,
}

impl RunState<'_> {
    fn emit(&self, ev: LevelEvent) {
        if let Some(tx) = &self.cfg.events {
            let _ = tx.send(ev);
        }
    }

    fn pick_entry(&mut self) -> usize {
        let n = self.prep.entries.len().max(1);
        match self.policy {
            EntryPolicy::Single => 0,
            EntryPolicy::RoundRobin => {
                let i = self.rr_next % n;
                self.rr_next += 1;
                i
            }
            EntryPolicy::Random => self.entry_rng.gen_range(0..n),
        }
    }

    fn level_ctx(&self, index: usize, level: u32, len: u64) -> Arc<LevelCtx> {
        Arc::new(LevelCtx {
            clock: self.clock,
            level_start: clock::now(),
            poll_interval_s: self.cfg.poll_interval_s,
            poll_timeout_s: self.cfg.poll_timeout_s,
            delete_timeout_s: self.cfg.delete_timeout_s,
            in_flight: AtomicU32::new(0),
            posts_answered: AtomicU32::new(0),
            post_answered: tokio::sync::Notify::new(),
            cancel: self.cancel.clone(),
            seed: self.cfg.seed ^ ((index as u64) << 40),
            entries: self.prep.entries.clone(),
            progress: progress_bar(self.cfg.quiet, index, level, len),
        })
    }

    fn level_prefix(&self, index: usize) -> String {
        format!("{}-{}-l{}-", self.cfg.name_prefix, self.run_id, index)
    }
}

fn progress_bar(quiet: bool, index: usize, level: u32, len: u64) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template(
        "{prefix:>18} [{elapsed_precise}] {bar:40} {pos}/{len} final",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    pb.set_style(style);
    pb.set_prefix(format!("level {} ({level})", index + 1));
    pb
}

/// In-flight series and timer lateness samples (wall µs).
type SamplerOutput = (Vec<(f64, u32)>, Vec<u64>);

/// Samples the in-flight count and the sampler's own timer lateness.
struct Sampler {
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<SamplerOutput>,
}

impl Sampler {
    fn start(ctx: Arc<LevelCtx>) -> Self {
        let stop = CancellationToken::new();
        let every = ctx
            .clock
            .wall(ctx.poll_interval_s / 4.0)
            .clamp(Duration::from_millis(5), Duration::from_secs(1));
        let s2 = stop.clone();
        let handle = tokio::spawn(async move {
            let mut series = Vec::new();
            let mut lags = Vec::new();
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = s2.cancelled() => break,
                    t = tick.tick() => {
                        let now = clock::now();
                        lags.push(now.saturating_duration_since(t).as_micros() as u64);
                        series.push((ctx.clock.since(ctx.level_start), ctx.in_flight.load(Ordering::Relaxed)));
                    }
                }
            }
            series.push((
                ctx.clock.since(ctx.level_start),
                ctx.in_flight.load(Ordering::Relaxed),
            ));
            (series, lags)
        });
        Self { stop, handle }
    }

    async fn finish(self, lag: &mut hdrhistogram::Histogram<u64>) -> Vec<(f64, u32)> {
        self.stop.cancel();
        match self.handle.await {
            Ok((series, lags)) => {
                for l in lags {
                    let _ = lag.record(l.max(1));
                }
                series
            }
            Err(_) => Vec::new(),
        }
    }
}

/// Deletes every created server of a level concurrently, records the time
/// to gone, then audits with a paginated server list.
async fn cleanup_and_audit(
    st: &RunState<'_>,
    ctx: &Arc<LevelCtx>,
    finished: &mut [Finished],
    index: usize,
) -> Audit {
    let mut set = tokio::task::JoinSet::new();
    for (i, f) in finished.iter().enumerate() {
        if let Some(id) = f.created.clone() {
            let ctx = ctx.clone();
            let entry = f.entry_index;
            let seed = ctx.seed ^ 0xde1e7e ^ i as u64;
            set.spawn(async move { (i, workflow::delete(&ctx, entry, &id, seed).await) });
        }
    }
    let mut delete_failures = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok((i, Ok(t))) => {
                finished[i].record.delete_time_s = Some(t);
                finished[i].created = None;
            }
            Ok((_, Err(msg))) => delete_failures.push(msg),
            Err(e) => delete_failures.push(format!("delete task failed: {e}")),
        }
    }
    let created: HashSet<String> = finished
        .iter()
        .filter_map(|f| f.record.server_id.clone())
        .collect();
    let mut audit = audit(st, &created, &st.level_prefix(index)).await;
    audit.delete_failures.extend(delete_failures);
    audit.delete_failures.sort();
    audit
}

/// Lists servers at the first entry that answers (every entry with
/// `audit_every_entry`) and reports every server this level created (by
/// ID, or by its name prefix for boots whose answer was lost) that is still
/// listed.
async fn audit(st: &RunState<'_>, created: &HashSet<String>, prefix: &str) -> Audit {
    let mut errors = Vec::new();
    let mut leftovers: Vec<String> = Vec::new();
    let mut listed_somewhere = false;
    for entry in &st.prep.entries {
        match compute::list_servers(
            &entry.session,
            st.cfg.audit_page_size,
            st.cfg.audit_all_tenants,
        )
        .await
        {
            Ok(list) => {
                listed_somewhere = true;
                leftovers.extend(
                    list.into_iter()
                        .filter(|s| {
                            created.contains(&s.id)
                                || s.name.as_deref().is_some_and(|n| n.starts_with(prefix))
                        })
                        .map(|s| s.id),
                );
                if !st.cfg.audit_every_entry {
                    errors.clear();
                    break;
                }
            }
            Err(e) => errors.push(format!("audit list at {}: {e}", entry.url)),
        }
    }
    leftovers.sort();
    leftovers.dedup();
    Audit {
        clean: listed_somewhere && leftovers.is_empty() && errors.is_empty(),
        leftovers,
        delete_failures: errors,
    }
}

async fn run_burst_level(st: &mut RunState<'_>, index: usize, level: u32) -> LevelResult {
    let ctx = st.level_ctx(index, level, u64::from(level));
    st.emit(LevelEvent::Started { index, level });
    let sampler = Sampler::start(ctx.clone());
    let prefix = st.level_prefix(index);
    let mut set = tokio::task::JoinSet::new();
    let start = ctx.level_start;
    for i in 0..level {
        let entry = st.pick_entry();
        let ctx = ctx.clone();
        let name = format!("{prefix}{i}");
        set.spawn(async move { workflow::boot(&ctx, i, entry, name, start).await });
    }
    st.emit(LevelEvent::AllSent { index, level });
    let mut finished = Vec::with_capacity(level as usize);
    let mut announced = false;
    loop {
        tokio::select! {
            // Fixed order: the same run on virtual time repeats exactly.
            biased;
            r = set.join_next() => match r {
                Some(Ok(f)) => finished.push(f),
                Some(Err(_)) => {}
                None => break,
            },
            _ = ctx.post_answered.notified(), if !announced => {
                if ctx.posts_answered.load(Ordering::Relaxed) >= level {
                    announced = true;
                    st.emit(LevelEvent::AllAnswered { index, level });
                }
            }
        }
    }
    if !announced {
        // Cancelled before every POST was sent: still tell the listener.
        st.emit(LevelEvent::AllAnswered { index, level });
    }
    ctx.progress.finish_and_clear();
    let succeeded = finished
        .iter()
        .filter(|f| f.record.outcome.is_success())
        .count() as u32;
    st.emit(LevelEvent::BootsFinal {
        index,
        level,
        succeeded,
    });
    let in_flight = sampler.finish(&mut st.lag).await;
    let lost = if st.cfg.check_lost {
        Some(
            crate::durability::find_lost(&st.prep.entries, &finished, st.cfg.audit_page_size).await,
        )
    } else {
        None
    };
    let audit = cleanup_and_audit(st, &ctx, &mut finished, index).await;
    st.emit(LevelEvent::Finished {
        index,
        level,
        clean: audit.clean,
    });
    let mut result = summarize(
        level,
        LoadModel::Burst,
        &finished,
        in_flight,
        audit,
        st.cfg.record_requests,
    );
    result.durability = lost.map(|(lost, unchecked)| results::Durability {
        lost,
        unchecked,
        ..Default::default()
    });
    result
}

/// Boot then delete, in one task (closed and open models).
async fn boot_then_delete(
    ctx: Arc<LevelCtx>,
    index: u32,
    entry: usize,
    name: String,
    intended: Instant,
) -> Finished {
    let mut f = workflow::boot(&ctx, index, entry, name, intended).await;
    if let Some(id) = f.created.clone() {
        match workflow::delete(&ctx, entry, &id, ctx.seed ^ u64::from(index)).await {
            Ok(t) => {
                f.record.delete_time_s = Some(t);
                f.created = None;
            }
            Err(m) => {
                if f.record.message.is_none() {
                    f.record.message = Some(format!("delete: {m}"));
                }
            }
        }
        f.final_s = ctx.clock.since(ctx.level_start);
    }
    f
}

async fn run_closed_level(
    st: &mut RunState<'_>,
    index: usize,
    concurrency: u32,
    duration_s: f64,
) -> LevelResult {
    let ctx = st.level_ctx(index, concurrency, 0);
    st.emit(LevelEvent::Started {
        index,
        level: concurrency,
    });
    let sampler = Sampler::start(ctx.clone());
    let end = ctx.level_start + ctx.clock.wall(duration_s);
    let counter = Arc::new(AtomicU32::new(0));
    let prefix = st.level_prefix(index);
    let mut set = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let entry = st.pick_entry();
        let ctx = ctx.clone();
        let counter = counter.clone();
        let prefix = prefix.clone();
        let _ = w;
        set.spawn(async move {
            let mut done = Vec::new();
            while clock::now() < end && !ctx.cancel.is_cancelled() {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                ctx.progress.inc_length(1);
                let f =
                    boot_then_delete(ctx.clone(), i, entry, format!("{prefix}{i}"), clock::now())
                        .await;
                done.push(f);
            }
            done
        });
    }
    st.emit(LevelEvent::AllSent {
        index,
        level: concurrency,
    });
    let mut finished = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(v) = r {
            finished.extend(v);
        }
    }
    finish_model_level(
        st,
        ctx,
        sampler,
        finished,
        index,
        concurrency,
        LoadModel::Closed {
            concurrency,
            duration_s,
        },
    )
    .await
}

async fn run_open_level(
    st: &mut RunState<'_>,
    index: usize,
    rate: f64,
    duration_s: f64,
    max_in_flight: u32,
    max_lateness_s: f64,
) -> LevelResult {
    let arrivals = (rate * duration_s).floor().max(0.0) as u32;
    let ctx = st.level_ctx(index, arrivals, u64::from(arrivals));
    st.emit(LevelEvent::Started {
        index,
        level: arrivals,
    });
    let sampler = Sampler::start(ctx.clone());
    let sem = Arc::new(Semaphore::new(max_in_flight.max(1) as usize));
    let tolerance = LATE_TOLERANCE_WALL.max(ctx.clock.wall(0.01));
    let prefix = st.level_prefix(index);
    let mut set = tokio::task::JoinSet::new();
    let mut finished = Vec::new();
    for k in 0..arrivals {
        let intended = ctx.level_start + ctx.clock.wall(f64::from(k) / rate);
        tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            _ = tokio::time::sleep_until(intended) => {}
        }
        let give_up = intended + ctx.clock.wall(max_lateness_s);
        let permit = tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            p = tokio::time::timeout_at(give_up, sem.clone().acquire_owned()) => p,
        };
        let entry = st.pick_entry();
        let permit = match permit {
            Ok(Ok(p)) => p,
            _ => {
                ctx.progress.inc(1);
                let start_s = ctx.clock.between(ctx.level_start, intended);
                finished.push(Finished {
                    record: RequestRecord {
                        index: k,
                        server_id: None,
                        entry: ctx.entries[entry].url.clone(),
                        outcome: Outcome::Dropped,
                        message: Some(format!(
                            "dropped: {max_in_flight} workflows in flight for {max_lateness_s} model s"
                        )),
                        start_s,
                        post_latency_s: None,
                        boot_time_s: None,
                        delete_time_s: None,
                        host: None,
                        cloudlet: None,
                    },
                    sent_s: None,
                    final_s: start_s,
                    created: None,
                    entry_index: entry,
                    agent: None,
                    late: false,
                });
                continue;
            }
        };
        let late = clock::now().saturating_duration_since(intended) > tolerance;
        let ctx2 = ctx.clone();
        let name = format!("{prefix}{k}");
        set.spawn(async move {
            let mut f = boot_then_delete(ctx2, k, entry, name, intended).await;
            drop(permit);
            f.late = late;
            f
        });
    }
    st.emit(LevelEvent::AllSent {
        index,
        level: arrivals,
    });
    while let Some(r) = set.join_next().await {
        if let Ok(f) = r {
            finished.push(f);
        }
    }
    finish_model_level(
        st,
        ctx,
        sampler,
        finished,
        index,
        arrivals,
        LoadModel::Open {
            rate_per_s: rate,
            duration_s,
        },
    )
    .await
}

async fn finish_model_level(
    st: &mut RunState<'_>,
    ctx: Arc<LevelCtx>,
    sampler: Sampler,
    mut finished: Vec<Finished>,
    index: usize,
    level: u32,
    model: LoadModel,
) -> LevelResult {
    ctx.progress.finish_and_clear();
    let succeeded = finished
        .iter()
        .filter(|f| f.record.outcome.is_success())
        .count() as u32;
    st.emit(LevelEvent::BootsFinal {
        index,
        level,
        succeeded,
    });
    let in_flight = sampler.finish(&mut st.lag).await;
    // Anything whose in-loop delete failed is retried here, then audited.
    let audit = cleanup_and_audit(st, &ctx, &mut finished, index).await;
    st.emit(LevelEvent::Finished {
        index,
        level,
        clean: audit.clean,
    });
    summarize(
        level,
        model,
        &finished,
        in_flight,
        audit,
        st.cfg.record_requests,
    )
}

fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

fn now_rfc3339() -> String {
    os_wire::time::rfc3339(chrono::Utc::now())
}

/// What a level loop is.
enum Plan {
    Burst(Vec<u32>),
    Closed(Vec<u32>, f64),
    Open(Vec<f64>, f64, u32, f64),
}

async fn run(
    experiment: &str,
    cfg: &BurstConfig,
    config_json: serde_json::Value,
    plan: Plan,
    target: &Target,
    transport: SharedTransport,
    cancel: CancellationToken,
) -> Result<RunResults, LoadgenError> {
    let started_at = now_rfc3339();
    let wall0 = clock::host_now();
    let cpu0 = procstat::cpu_seconds();
    let prep = prepare(cfg, target, transport).await?;
    let clock = prep.time_scale;
    let entries_info: Vec<String> = prep.entries.iter().map(|e| e.url.clone()).collect();
    let time_scale = prep.time_scale.get();
    let time_scale_source = prep.time_scale_source.clone();
    let mut st = RunState {
        cfg,
        prep,
        policy: target.entry_policy,
        clock,
        run_id: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
        cancel: cancel.clone(),
        lag: results::new_histogram(),
        entry_rng: ChaCha8Rng::seed_from_u64(cfg.seed),
        rr_next: 0,
    };
    let mut levels = Vec::new();
    let n_levels = match &plan {
        Plan::Burst(l) | Plan::Closed(l, _) => l.len(),
        Plan::Open(r, ..) => r.len(),
    };
    for index in 0..n_levels {
        if cancel.is_cancelled() {
            break;
        }
        if index > 0 && cfg.pause_between_levels_s > 0.0 {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(clock.wall(cfg.pause_between_levels_s)) => {}
            }
        }
        let r = match &plan {
            Plan::Burst(l) => run_burst_level(&mut st, index, l[index]).await,
            Plan::Closed(c, d) => run_closed_level(&mut st, index, c[index], *d).await,
            Plan::Open(r, d, m, late) => {
                run_open_level(&mut st, index, r[index], *d, *m, *late).await
            }
        };
        tracing::info!(
            level = r.level,
            succeeded = r.succeeded,
            failed = r.failed,
            makespan_s = r.makespan_s,
            clean = r.audit.clean,
            "level done"
        );
        levels.push(r);
    }
    let interrupted = cancel.is_cancelled();
    let complete = !interrupted && levels.len() == n_levels;
    let wall = wall0.elapsed().as_secs_f64();
    let cpu = match (cpu0, procstat::cpu_seconds()) {
        (Some(a), Some(b)) => Some((b - a).max(0.0)),
        _ => None,
    };
    let lag_p99_ms = (!st.lag.is_empty()).then(|| st.lag.value_at_quantile(0.99) as f64 / 1000.0);
    let lag_max_ms = (!st.lag.is_empty()).then(|| st.lag.max() as f64 / 1000.0);
    let host = if cfg.host_measured_by_caller {
        HostInfo::default()
    } else {
        HostInfo {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            // Host-bound when timers ran late by more than a quarter poll interval.
            host_bound: lag_p99_ms.map(|ms| {
                let lag =
                    Duration::try_from_secs_f64(ms.max(0.0) / 1000.0).unwrap_or(Duration::MAX);
                clock.model_s(lag) > cfg.poll_interval_s / 4.0
            }),
            scheduler_lag_p99_ms: lag_p99_ms,
            scheduler_lag_max_ms: lag_max_ms,
            cpu_utilization: cpu.map(|c| if wall > 0.0 { c / wall } else { 0.0 }),
            loadgen_cpu_seconds: cpu,
            peak_rss_bytes: procstat::peak_rss_bytes(),
        }
    };
    Ok(RunResults {
        schema: SCHEMA_NAME.to_string(),
        schema_version: SCHEMA_VERSION,
        tool: ToolInfo {
            name: "loadgen".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            git_revision: option_env!("P2PSTACK_GIT_REVISION").map(str::to_string),
        },
        experiment: experiment.to_string(),
        system: cfg.system.clone(),
        target: TargetInfo {
            entries: entries_info,
            entry_policy: target.entry_policy.name().to_string(),
            region: target.credentials.region_name.clone(),
            flavor: Some(cfg.flavor.clone()),
            image: Some(cfg.image.clone()),
            network: cfg.network.clone(),
        },
        config: config_json,
        command_line: cfg.command_line.clone(),
        seed: cfg.seed,
        time_scale,
        time_scale_source,
        started_at,
        finished_at: now_rfc3339(),
        complete,
        incomplete_reason: if interrupted {
            Some("interrupted (Ctrl-C or cancelled); created servers were deleted".into())
        } else if !complete {
            Some("not every level ran".into())
        } else {
            None
        },
        host,
        levels,
    })
}

/// Runs the `boot-burst` sweep: for each level, `level` boots at once, poll
/// until final, delete all, wait until gone, audit.
///
/// Returns `Err` only when the run cannot start (bad target or
/// configuration). A cancelled run returns `Ok` with `complete: false`
/// after deleting what it created.
pub async fn run_boot_burst(
    cfg: &BurstConfig,
    target: &Target,
    transport: SharedTransport,
    cancel: CancellationToken,
) -> Result<RunResults, LoadgenError> {
    if cfg.levels.is_empty() || cfg.levels.contains(&0) {
        return Err(LoadgenError::Config(
            "--levels needs at least one positive level".into(),
        ));
    }
    let config_json = serde_json::json!({
        "experiment": "boot-burst",
        "burst": cfg,
        "target": {"entries": target.entry_urls(), "entry_policy": target.entry_policy,
                   "username": target.credentials.username,
                   "project_name": target.credentials.project_name,
                   "region": target.credentials.region_name},
    });
    run(
        "boot-burst",
        cfg,
        config_json,
        Plan::Burst(cfg.levels.clone()),
        target,
        transport,
        cancel,
    )
    .await
}

/// Runs `boot-delete` in the closed or open load model.
pub async fn run_boot_delete(
    cfg: &BootDeleteConfig,
    target: &Target,
    transport: SharedTransport,
    cancel: CancellationToken,
) -> Result<RunResults, LoadgenError> {
    let plan = match &cfg.model {
        BootDeleteModel::Closed {
            concurrency,
            duration_s,
        } => {
            if concurrency.is_empty() || concurrency.contains(&0) || !positive(*duration_s) {
                return Err(LoadgenError::Config(
                    "closed model needs --concurrency > 0 and --duration > 0".into(),
                ));
            }
            Plan::Closed(concurrency.clone(), *duration_s)
        }
        BootDeleteModel::Open {
            rates,
            duration_s,
            max_in_flight,
            max_lateness_s,
        } => {
            if rates.is_empty()
                || rates.iter().any(|r| !(r.is_finite() && *r > 0.0))
                || !positive(*duration_s)
                || !(positive(*max_lateness_s) || *max_lateness_s == 0.0)
            {
                return Err(LoadgenError::Config(
                    "open model needs --rate > 0, --duration > 0 and --max-lateness >= 0".into(),
                ));
            }
            Plan::Open(rates.clone(), *duration_s, *max_in_flight, *max_lateness_s)
        }
    };
    let config_json = serde_json::json!({
        "experiment": "boot-delete",
        "boot_delete": cfg,
        "target": {"entries": target.entry_urls(), "entry_policy": target.entry_policy,
                   "username": target.credentials.username,
                   "project_name": target.credentials.project_name,
                   "region": target.credentials.region_name},
    });
    run(
        "boot-delete",
        &cfg.base,
        config_json,
        plan,
        target,
        transport,
        cancel,
    )
    .await
}
