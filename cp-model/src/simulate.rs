//! Run a whole workload on virtual time (no sleeping): for tests, the
//! calibration example and anyone who wants numbers without the mock.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::ModelError;
use crate::faults::FaultReason;
use crate::profile::Profile;
use crate::stats::Stats;
use crate::types::{ApiKind, Effect, Input, InstanceId, ModelTime, NodeSpec, RequestId, Resources};

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
    /// When the instance was gone after a `delete_after` delete.
    pub deleted_at: Option<ModelTime>,
    /// With polling: when the user's GET first saw ACTIVE/ERROR.
    pub observed_at: Option<ModelTime>,
    /// With polling: the user gave up (poll timeout) or a poll was refused.
    pub client_error: Option<String>,
}

impl BootOutcome {
    /// Seconds from POST to ACTIVE/ERROR as the user saw it (the poll that
    /// saw it, or the model instant without polling).
    pub fn duration(&self) -> Option<f64> {
        self.observed_at
            .or(self.ended_at)
            .map(|e| e - self.posted_at)
    }

    /// ACTIVE and seen as such by the user.
    pub fn succeeded(&self) -> bool {
        matches!(self.result, BootResult::Active { .. }) && self.client_error.is_none()
    }
}

/// How simulated users watch a boot: GET the server `initial_s` after the
/// POST answered, then every `interval_s`, giving up after `timeout_s`.
/// Every poll is an API call, so polling loads the API like real clients do.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Polling {
    pub initial_s: f64,
    pub interval_s: f64,
    pub timeout_s: f64,
}

impl Polling {
    /// Rally's `boot_server` wait: sleep 1 s, poll every 2 s, 300 s limit
    /// (shared/reference/openstack-api.md, "Call sequences to expect").
    pub fn rally() -> Polling {
        Polling {
            initial_s: 1.0,
            interval_s: 2.0,
            timeout_s: 300.0,
        }
    }
}

/// Options of a simulated run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimOptions {
    pub polling: Option<Polling>,
    /// Stop at this model time even if boots are unfinished.
    pub horizon: ModelTime,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            polling: None,
            horizon: 1e7,
        }
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
            .filter(|o| o.succeeded())
            .filter_map(BootOutcome::duration)
            .collect();
        ok.sort_by(f64::total_cmp);
        let mut errors_by_reason = BTreeMap::new();
        for o in &self.outcomes {
            let key = match (&o.result, &o.client_error) {
                (_, Some(e)) => e.clone(),
                (BootResult::Active { .. }, None) => continue,
                (BootResult::Error { fault }, None) => {
                    FaultReason::classify(fault).label().to_string()
                }
                // The engine's only 500 is a DB pool checkout timeout.
                (BootResult::ApiRejected { status: 500 }, None) => "api_500_db_pool".to_string(),
                (BootResult::ApiRejected { status }, None) => format!("api_{status}"),
                (BootResult::Unfinished, None) => "unfinished".to_string(),
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
            .filter_map(|o| o.observed_at.or(o.ended_at))
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

/// Build an engine and run `workload` to completion (or `horizon`) on
/// virtual time, without polling (times are the model's ACTIVE instants).
pub fn simulate(
    profile: Profile,
    nodes: Vec<NodeSpec>,
    seed: u64,
    workload: &Workload,
    horizon: ModelTime,
) -> Result<SimReport, ModelError> {
    let opts = SimOptions {
        polling: None,
        horizon,
    };
    simulate_with(profile, nodes, seed, workload, &opts)
}

/// [`simulate`] with options (e.g. Rally-like polling).
pub fn simulate_with(
    profile: Profile,
    nodes: Vec<NodeSpec>,
    seed: u64,
    workload: &Workload,
    opts: &SimOptions,
) -> Result<SimReport, ModelError> {
    let engine = Engine::new(profile, nodes, seed)?;
    Ok(run(engine, workload, opts))
}

/// Drive an existing engine (e.g. with faults already installed).
pub fn run(mut engine: Engine, workload: &Workload, opts: &SimOptions) -> SimReport {
    let mut d = Driver {
        polling: opts.polling,
        ..Driver::default()
    };
    let start = engine.now();
    match workload {
        Workload::Burst { boots, flavor } => {
            for _ in 0..*boots {
                d.post(&mut engine, start, *flavor);
            }
        }
        Workload::Closed {
            concurrency,
            total,
            flavor,
            delete_after,
        } => {
            d.remaining = *total;
            d.delete_after = *delete_after;
            d.flavor = *flavor;
            for _ in 0..(*concurrency).min(*total) {
                d.remaining -= 1;
                d.post(&mut engine, start, *flavor);
            }
        }
        Workload::At { times, flavor } => {
            for t in times {
                d.timer(start + t.max(0.0), Timer::Post(*flavor));
            }
        }
    }
    let mut end = start;
    while !d.done() {
        let next_timer = d.timers.peek().map(|t| t.at);
        let Some(deadline) = [engine.next_deadline(), next_timer]
            .into_iter()
            .flatten()
            .min_by(f64::total_cmp)
        else {
            break;
        };
        if deadline > opts.horizon {
            break;
        }
        while d.timers.peek().is_some_and(|t| t.at <= deadline) {
            let Some(t) = d.timers.pop() else { break };
            d.fire(&mut engine, t.at, t.what);
        }
        for (t, effect) in engine.advance(deadline) {
            d.react(&mut engine, t, effect);
            end = end.max(t);
        }
    }
    let mut outcomes: Vec<BootOutcome> = d.outcomes.into_values().collect();
    outcomes.sort_by_key(|o| o.instance);
    SimReport {
        outcomes,
        end,
        stats: engine.stats(),
    }
}

#[derive(Clone, Copy, Debug)]
enum Timer {
    Post(Resources),
    Poll(InstanceId),
}

struct Timed {
    at: ModelTime,
    seq: u64,
    what: Timer,
}

impl PartialEq for Timed {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Timed {}
impl PartialOrd for Timed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timed {
    // Reversed for a min-heap; ties in insertion order.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .at
            .total_cmp(&self.at)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// The simulated users: POST through the API, then Boot; watch it (polling
/// or the model's own effect); maybe delete; start the next boot when one
/// finishes (closed loop).
#[derive(Default)]
struct Driver {
    next_id: u64,
    next_req: u64,
    seq: u64,
    remaining: u32,
    delete_after: bool,
    flavor: Resources,
    polling: Option<Polling>,
    timers: BinaryHeap<Timed>,
    /// POST request id (= instance id) → flavor.
    posts: BTreeMap<RequestId, Resources>,
    deletes: BTreeMap<RequestId, InstanceId>,
    polls: BTreeMap<RequestId, InstanceId>,
    /// Users currently busy (booting, watching or deleting).
    open: usize,
    outcomes: BTreeMap<InstanceId, BootOutcome>,
}

/// Request ids above this are polls and deletes; below are POSTs (= instance ids).
const REQ_BASE: u64 = 1 << 40;

impl Driver {
    fn done(&self) -> bool {
        self.open == 0 && self.remaining == 0 && self.timers.is_empty()
    }

    fn timer(&mut self, at: ModelTime, what: Timer) {
        self.seq += 1;
        self.timers.push(Timed {
            at,
            seq: self.seq,
            what,
        });
    }

    fn req(&mut self) -> RequestId {
        self.next_req += 1;
        REQ_BASE + self.next_req
    }

    fn post(&mut self, engine: &mut Engine, t: ModelTime, flavor: Resources) {
        self.next_id += 1;
        let id = self.next_id;
        self.posts.insert(id, flavor);
        self.open += 1;
        self.outcomes.insert(
            id,
            BootOutcome {
                instance: id,
                posted_at: t,
                ended_at: None,
                result: BootResult::Unfinished,
                deleted_at: None,
                observed_at: None,
                client_error: None,
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

    fn fire(&mut self, engine: &mut Engine, t: ModelTime, what: Timer) {
        match what {
            Timer::Post(flavor) => self.post(engine, t, flavor),
            Timer::Poll(inst) => {
                let (Some(p), Some(o)) = (self.polling, self.outcomes.get_mut(&inst)) else {
                    return;
                };
                if t - o.posted_at > p.timeout_s {
                    o.client_error = Some("client_timeout".into());
                    self.user_free(engine, t);
                    return;
                }
                let req = self.req();
                self.polls.insert(req, inst);
                engine.submit(
                    t,
                    Input::ApiCall {
                        req,
                        kind: ApiKind::Get,
                    },
                );
            }
        }
    }

    /// The user has seen the final state of `inst` at `t`.
    fn seen(&mut self, engine: &mut Engine, t: ModelTime, inst: InstanceId) {
        let active = self
            .outcomes
            .get(&inst)
            .is_some_and(|o| matches!(o.result, BootResult::Active { .. }));
        if self.delete_after && active {
            // The user keeps its slot until the delete is done (boot_and_delete).
            let req = self.req();
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

    fn ended(&mut self, engine: &mut Engine, t: ModelTime, inst: InstanceId, result: BootResult) {
        let Some(o) = self.outcomes.get_mut(&inst) else {
            return;
        };
        if o.ended_at.is_some() {
            return;
        }
        o.ended_at = Some(t);
        o.result = result;
        if self.polling.is_none() {
            self.seen(engine, t, inst);
        }
    }

    fn react(&mut self, engine: &mut Engine, t: ModelTime, effect: Effect) {
        match effect {
            Effect::ApiDone { req } => {
                if let Some(resources) = self.posts.remove(&req) {
                    let name = Some(format!("sim-{req}"));
                    engine.submit(
                        t,
                        Input::Boot {
                            instance: req,
                            resources,
                            name,
                        },
                    );
                    if let Some(p) = self.polling {
                        self.timer(t + p.initial_s, Timer::Poll(req));
                    }
                } else if let Some(instance) = self.deletes.remove(&req) {
                    engine.submit(t, Input::Delete { instance });
                } else if let Some(inst) = self.polls.remove(&req) {
                    let finished = self
                        .outcomes
                        .get(&inst)
                        .is_some_and(|o| o.ended_at.is_some_and(|e| e <= t));
                    if finished {
                        if let Some(o) = self.outcomes.get_mut(&inst) {
                            o.observed_at = Some(t);
                        }
                        self.seen(engine, t, inst);
                    } else if let Some(p) = self.polling {
                        self.timer(t + p.interval_s, Timer::Poll(inst));
                    }
                }
            }
            Effect::ApiRejected { req, status, .. } => {
                if self.posts.remove(&req).is_some() {
                    if let Some(o) = self.outcomes.get_mut(&req) {
                        o.ended_at = Some(t);
                        o.result = BootResult::ApiRejected { status };
                    }
                    self.user_free(engine, t);
                } else if self.deletes.remove(&req).is_some() {
                    self.user_free(engine, t);
                } else if let Some(inst) = self.polls.remove(&req) {
                    // A failed GET fails the client's wait (Rally raises).
                    if let Some(o) = self.outcomes.get_mut(&inst) {
                        o.client_error = Some(format!("poll_api_{status}"));
                    }
                    self.user_free(engine, t);
                }
            }
            Effect::Active { instance, host } => {
                self.ended(engine, t, instance, BootResult::Active { host })
            }
            Effect::Error {
                instance, fault, ..
            } => self.ended(engine, t, instance, BootResult::Error { fault }),
            Effect::Deleted { instance } => {
                if let Some(o) = self.outcomes.get_mut(&instance) {
                    o.deleted_at = Some(t);
                }
                if self.delete_after {
                    self.user_free(engine, t);
                }
            }
            Effect::TaskState { .. } | Effect::Scheduled { .. } => {}
        }
    }
}
