//! Run a whole workload on virtual time (no sleeping): for tests, the
//! calibration example and anyone who wants numbers without the mock.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::ModelError;
use crate::faults::FaultReason;
use crate::profile::Profile;
use crate::stats::Stats;
use crate::types::{ApiKind, Effect, Input, InstanceId, ModelTime, NodeSpec, Resources};

/// What the simulated users do. Every boot first goes through the API
/// (`POST /servers`) and is timed from that POST, like Rally's `boot_server`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Workload {
    /// `boots` POSTs all at t = 0 (the seed experiment's concurrent boots).
    Burst { boots: u32, flavor: Resources },
    /// `concurrency` users, each booting (then optionally deleting) until
    /// `total` boots have been started (Rally's constant runner).
    Closed {
        concurrency: u32,
        total: u32,
        flavor: Resources,
        delete_after: bool,
    },
    /// Boots at fixed model times (open loop).
    At {
        times: Vec<ModelTime>,
        flavor: Resources,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum BootResult {
    Active {
        host: String,
    },
    Error {
        fault: String,
    },
    ApiRejected {
        status: u16,
    },
    /// Still building when the horizon was reached (e.g. cast to a lost node).
    Unfinished,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BootOutcome {
    pub instance: InstanceId,
    pub posted_at: ModelTime,
    pub ended_at: Option<ModelTime>,
    pub result: BootResult,
}

impl BootOutcome {
    /// Seconds from POST to ACTIVE/ERROR.
    pub fn duration(&self) -> Option<f64> {
        self.ended_at.map(|e| e - self.posted_at)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimReport {
    pub outcomes: Vec<BootOutcome>,
    /// Model time when the last boot ended (or the horizon).
    pub end: ModelTime,
    pub stats: Stats,
}

/// Percentiles and error counts of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub boots: usize,
    pub active: usize,
    pub errors_by_reason: BTreeMap<String, usize>,
    pub error_rate: f64,
    pub min_s: f64,
    pub mean_s: f64,
    pub p50_s: f64,
    pub p90_s: f64,
    pub p95_s: f64,
    pub max_s: f64,
    /// Time until the last boot ended.
    pub makespan_s: f64,
    /// ACTIVE instances per model second over the makespan.
    pub throughput_per_s: f64,
}

impl SimReport {
    /// Statistics of the time from POST to ACTIVE over successful boots.
    pub fn summary(&self) -> Summary {
        let mut ok: Vec<f64> = self
            .outcomes
            .iter()
            .filter(|o| matches!(o.result, BootResult::Active { .. }))
            .filter_map(BootOutcome::duration)
            .collect();
        ok.sort_by(f64::total_cmp);
        let mut errors_by_reason = BTreeMap::new();
        for o in &self.outcomes {
            let key = match &o.result {
                BootResult::Active { .. } => continue,
                BootResult::Error { fault } => FaultReason::classify(fault).label().to_string(),
                BootResult::ApiRejected { status } => format!("api_{status}"),
                BootResult::Unfinished => "unfinished".to_string(),
            };
            *errors_by_reason.entry(key).or_insert(0) += 1;
        }
        let pct = |p: f64| -> f64 {
            if ok.is_empty() {
                return 0.0;
            }
            // Nearest-rank percentile.
            let rank = ((p / 100.0) * ok.len() as f64).ceil() as usize;
            ok[rank.clamp(1, ok.len()) - 1]
        };
        let n = self.outcomes.len();
        let makespan = self
            .outcomes
            .iter()
            .filter_map(|o| o.ended_at)
            .fold(0.0, f64::max);
        Summary {
            boots: n,
            active: ok.len(),
            error_rate: if n > 0 {
                (n - ok.len()) as f64 / n as f64
            } else {
                0.0
            },
            errors_by_reason,
            min_s: ok.first().copied().unwrap_or(0.0),
            mean_s: if ok.is_empty() {
                0.0
            } else {
                ok.iter().sum::<f64>() / ok.len() as f64
            },
            p50_s: pct(50.0),
            p90_s: pct(90.0),
            p95_s: pct(95.0),
            max_s: ok.last().copied().unwrap_or(0.0),
            makespan_s: makespan,
            throughput_per_s: if makespan > 0.0 {
                ok.len() as f64 / makespan
            } else {
                0.0
            },
        }
    }
}

/// Build an engine and run `workload` to completion (or `horizon`) on virtual time.
pub fn simulate(
    profile: Profile,
    nodes: Vec<NodeSpec>,
    seed: u64,
    workload: &Workload,
    horizon: ModelTime,
) -> Result<SimReport, ModelError> {
    let engine = Engine::new(profile, nodes, seed)?;
    Ok(run(engine, workload, horizon))
}

/// Drive an existing engine (e.g. with faults already installed).
pub fn run(mut engine: Engine, workload: &Workload, horizon: ModelTime) -> SimReport {
    let mut driver = Driver::default();
    let start = engine.now();
    match workload {
        Workload::Burst { boots, flavor } => {
            for _ in 0..*boots {
                driver.post(&mut engine, start, *flavor);
            }
            driver.remaining = 0;
        }
        Workload::Closed {
            concurrency,
            total,
            flavor,
            delete_after,
        } => {
            driver.remaining = *total;
            driver.delete_after = *delete_after;
            driver.flavor = *flavor;
            for _ in 0..(*concurrency).min(*total) {
                driver.remaining -= 1;
                driver.post(&mut engine, start, *flavor);
            }
        }
        Workload::At { times, flavor } => {
            let mut ts = times.clone();
            ts.sort_by(f64::total_cmp);
            driver.scheduled = ts.into_iter().rev().map(|t| (start + t, *flavor)).collect();
        }
    }
    let mut end = start;
    loop {
        if driver.done() {
            break;
        }
        let next_input = driver.scheduled.last().map(|(t, _)| *t);
        let Some(deadline) = [engine.next_deadline(), next_input]
            .into_iter()
            .flatten()
            .min_by(f64::total_cmp)
        else {
            break;
        };
        if deadline > horizon {
            break;
        }
        while let Some((t, flavor)) = driver.scheduled.last().copied() {
            if t > deadline {
                break;
            }
            driver.scheduled.pop();
            driver.post(&mut engine, t, flavor);
        }
        for (t, effect) in engine.advance(deadline) {
            driver.react(&mut engine, t, effect);
            end = end.max(t);
        }
    }
    let mut outcomes: Vec<BootOutcome> = driver.outcomes.into_values().collect();
    outcomes.sort_by_key(|o| o.instance);
    SimReport {
        outcomes,
        end,
        stats: engine.stats(),
    }
}

/// The simulated users: POST through the API, then Boot; on ACTIVE maybe
/// delete; start the next boot when one finishes (closed loop).
#[derive(Default)]
struct Driver {
    next_id: u64,
    remaining: u32,
    delete_after: bool,
    flavor: Resources,
    scheduled: Vec<(ModelTime, Resources)>,
    /// req id → instance and flavor of a POST in flight.
    posts: BTreeMap<u64, (InstanceId, Resources)>,
    deletes: BTreeMap<u64, InstanceId>,
    open: usize,
    outcomes: BTreeMap<InstanceId, BootOutcome>,
}

impl Driver {
    fn done(&self) -> bool {
        self.open == 0 && self.remaining == 0 && self.scheduled.is_empty()
    }

    fn post(&mut self, engine: &mut Engine, t: ModelTime, flavor: Resources) {
        self.next_id += 1;
        let id = self.next_id;
        self.posts.insert(id, (id, flavor));
        self.open += 1;
        self.outcomes.insert(
            id,
            BootOutcome {
                instance: id,
                posted_at: t,
                ended_at: None,
                result: BootResult::Unfinished,
            },
        );
        engine.submit(
            t,
            Input::ApiCall {
                req: id,
                kind: ApiKind::Post,
            },
        );
    }

    fn end(&mut self, engine: &mut Engine, t: ModelTime, inst: InstanceId, result: BootResult) {
        if let Some(o) = self.outcomes.get_mut(&inst) {
            if o.ended_at.is_some() {
                return;
            }
            o.ended_at = Some(t);
            o.result = result.clone();
        }
        let deleting = self.delete_after && matches!(result, BootResult::Active { .. });
        if deleting {
            // The user keeps its slot until the delete is done (boot_and_delete).
            let req = 1_000_000_000 + inst;
            self.deletes.insert(req, inst);
            engine.submit(
                t,
                Input::ApiCall {
                    req,
                    kind: ApiKind::Delete,
                },
            );
        } else {
            self.user_free(engine, t);
        }
    }

    fn user_free(&mut self, engine: &mut Engine, t: ModelTime) {
        self.open = self.open.saturating_sub(1);
        if self.remaining > 0 {
            self.remaining -= 1;
            let f = self.flavor;
            self.post(engine, t, f);
        }
    }

    fn react(&mut self, engine: &mut Engine, t: ModelTime, effect: Effect) {
        match effect {
            Effect::ApiDone { req } => {
                if let Some((instance, resources)) = self.posts.remove(&req) {
                    let name = Some(format!("sim-{instance}"));
                    engine.submit(
                        t,
                        Input::Boot {
                            instance,
                            resources,
                            name,
                        },
                    );
                } else if let Some(instance) = self.deletes.remove(&req) {
                    engine.submit(t, Input::Delete { instance });
                }
            }
            Effect::ApiRejected { req, status, .. } => {
                if self.posts.remove(&req).is_some() {
                    self.end(engine, t, req, BootResult::ApiRejected { status });
                } else if self.deletes.remove(&req).is_some() {
                    self.user_free(engine, t);
                }
            }
            Effect::Active { instance, host } => {
                self.end(engine, t, instance, BootResult::Active { host })
            }
            Effect::Error {
                instance, fault, ..
            } => self.end(engine, t, instance, BootResult::Error { fault }),
            Effect::Deleted { instance } => {
                let was_active = self
                    .outcomes
                    .get(&instance)
                    .is_some_and(|o| matches!(o.result, BootResult::Active { .. }));
                if was_active && self.delete_after {
                    self.user_free(engine, t);
                }
            }
            Effect::TaskState { .. } => {}
        }
    }
}
