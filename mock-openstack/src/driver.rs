//! Runs the deployment on the cp-model engine. The only code that sleeps.
//!
//! One tokio task owns the [`cp_model::Engine`]. Handlers talk to it through
//! an unbounded channel of [`Cmd`]s; the task submits each command at the
//! current model time, sleeps until `origin + clock.wall_offset(next_deadline)`
//! (one wall origin, so timer overshoot never accumulates), advances the
//! engine to "now" and applies the effects, stamped with their exact model
//! times, to the server store in one lock. On real time the sleep is a
//! high-resolution timer (see [`crate::alarm`]), so a service time shorter
//! than tokio's 1 ms tick is not rounded up to it.
//!
//! Server actions (reboot, stop, …) are timers of this task too: a
//! [`Cmd::Action`] lands at `now + the profile's action time`, in model time,
//! so `--time-scale` and the sim backend treat them like every other stage.
//!
//! The engine is the single source of truth for capacity: after every batch
//! of effects that can change usage, its node usage is copied into the
//! mock's `Capacity` (which hypervisors, placement and `/metrics` read).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use cp_model::{ApiKind, Clock, Effect, Engine, FaultSet, Input, InstanceId, ModelTime, Stats};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::alarm::Alarm;
use crate::capacity::Resources;
use crate::config::MockConfig;
use crate::error::MockError;
use crate::lifecycle::{Action, VmState};
use crate::state::State;

/// Answer of the engine's API stage for one call: `Err((status, message))`
/// is a 503 (backlog full, API unavailable) or 504 (waited past the timeout).
pub type ApiOutcome = Result<(), (u16, String)>;

/// What handlers ask of the engine task.
pub enum Cmd {
    /// One API call through the API stage.
    Api {
        kind: ApiKind,
        reply: oneshot::Sender<ApiOutcome>,
    },
    /// An accepted server (after its POST passed the API stage).
    Boot {
        server: String,
        resources: Resources,
        name: String,
    },
    /// A delete accepted by the API.
    Delete { server: String },
    /// A server action accepted by the API (its task_state is set): it is
    /// done `after` model seconds from now.
    Action {
        server: String,
        action: Action,
        from: VmState,
        after: ModelTime,
    },
    /// Replace the fault set (`PUT /mock/v1/faults`).
    SetFaults {
        set: FaultSet,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Read the fault set.
    GetFaults { reply: oneshot::Sender<FaultSet> },
    /// A fault shortcut (`LoseNode`, `FreezeController`, `ApiUnavailable`).
    Input {
        input: Input,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Engine statistics at the current model time.
    Stats { reply: oneshot::Sender<Stats> },
}

/// Model time ↔ wall time and API timestamps.
#[derive(Debug, Clone, Copy)]
pub struct TimeBase {
    /// Wall instant of model time 0.
    pub origin: Instant,
    pub clock: Clock,
    /// Wall-clock date of model time 0: API timestamps are `epoch + t`.
    pub epoch: DateTime<Utc>,
}

impl TimeBase {
    pub fn new(time_scale: f64) -> Result<Self, MockError> {
        let clock = Clock::new(time_scale).map_err(|e| MockError::Config(e.to_string()))?;
        Ok(Self {
            origin: Instant::now(),
            clock,
            epoch: cp_model::clock::utc_now(),
        })
    }

    /// Current model time.
    pub fn model_now(&self) -> ModelTime {
        self.clock.model_time(self.origin.elapsed())
    }

    /// The API timestamp of model time `t`.
    pub fn at(&self, t: ModelTime) -> DateTime<Utc> {
        let us = (t * 1e6).clamp(0.0, 1e15) as i64;
        self.epoch + chrono::TimeDelta::microseconds(us)
    }

    /// The API timestamp of now.
    pub fn now(&self) -> DateTime<Utc> {
        self.at(self.model_now())
    }
}

/// The handlers' side of the engine task.
pub struct EngineLink {
    tx: mpsc::UnboundedSender<Cmd>,
    pub time: TimeBase,
    /// Effective profile name and `Profile::hash()` (for `/mock/v1/info`).
    pub profile_name: String,
    pub profile_hash: String,
    /// The profile's server-action times.
    pub actions: cp_model::profile::ActionParams,
}

impl EngineLink {
    fn send(&self, cmd: Cmd) -> bool {
        self.tx.send(cmd).is_ok()
    }

    /// Passes the API stage; a stopped engine answers 503.
    pub async fn api_call(&self, kind: ApiKind) -> ApiOutcome {
        let (reply, rx) = oneshot::channel();
        if !self.send(Cmd::Api { kind, reply }) {
            return Err((503, "The control plane is not running.".into()));
        }
        rx.await
            .unwrap_or_else(|_| Err((503, "The control plane is not running.".into())))
    }

    pub fn boot(&self, server: String, resources: Resources, name: String) {
        self.send(Cmd::Boot {
            server,
            resources,
            name,
        });
    }

    pub fn delete(&self, server: String) {
        self.send(Cmd::Delete { server });
    }

    /// Schedules the end of an accepted action (after the profile's time
    /// for it).
    pub fn action(&self, server: String, action: Action, from: VmState) {
        let a = &self.actions;
        let after = match action {
            Action::Reboot { hard: false } => a.reboot_soft_s,
            Action::Reboot { hard: true } => a.reboot_hard_s,
            Action::Stop => a.stop_s,
            Action::Start => a.start_s,
            Action::Pause => a.pause_s,
            Action::Unpause => a.unpause_s,
            Action::Suspend => a.suspend_s,
            Action::Resume => a.resume_s,
            Action::Rebuild => a.rebuild_s,
        };
        self.send(Cmd::Action {
            server,
            action,
            from,
            after,
        });
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Option<T> {
        let (reply, rx) = oneshot::channel();
        if !self.send(make(reply)) {
            return None;
        }
        rx.await.ok()
    }

    pub async fn set_faults(&self, set: FaultSet) -> Result<(), String> {
        self.ask(|reply| Cmd::SetFaults { set, reply })
            .await
            .unwrap_or_else(|| Err("engine stopped".into()))
    }

    pub async fn faults(&self) -> Option<FaultSet> {
        self.ask(|reply| Cmd::GetFaults { reply }).await
    }

    pub async fn input(&self, input: Input) -> Result<(), String> {
        self.ask(|reply| Cmd::Input { input, reply })
            .await
            .unwrap_or_else(|| Err("engine stopped".into()))
    }

    pub async fn stats(&self) -> Option<Stats> {
        self.ask(|reply| Cmd::Stats { reply }).await
    }
}

/// Everything the engine task needs, built before the state.
pub struct EngineParts {
    engine: Engine,
    rx: mpsc::UnboundedReceiver<Cmd>,
}

/// Builds the engine for `cfg` (profile, nodes, seed, initial faults) and
/// the link the state keeps.
pub fn build(cfg: &MockConfig) -> Result<(EngineLink, EngineParts), MockError> {
    let profile = cfg.load_profile()?;
    let (profile_name, profile_hash) = (profile.name.clone(), profile.hash());
    let actions = profile.actions.clone();
    let cells = usize::try_from(cfg.cells).unwrap_or(usize::MAX);
    let mut engine = Engine::with_cells(profile, cfg.node_specs(), cfg.seed, cells)
        .map_err(|e| MockError::Config(e.to_string()))?;
    if cfg.faults != FaultSet::default() {
        engine
            .set_faults(0.0, cfg.faults.clone())
            .map_err(|e| MockError::Config(format!("faults: {e}")))?;
    }
    let time = TimeBase::new(cfg.time_scale)?;
    let (tx, rx) = mpsc::unbounded_channel();
    Ok((
        EngineLink {
            tx,
            time,
            profile_name,
            profile_hash,
            actions,
        },
        EngineParts { engine, rx },
    ))
}

/// Starts the engine task. It holds only a weak reference to the state and
/// ends when the state (and with it the command sender) is dropped.
pub fn spawn(state: &Arc<State>, parts: EngineParts) {
    let weak = Arc::downgrade(state);
    let time = state.engine.time;
    tokio::spawn(run(weak, time, parts));
}

/// Commands handled per wake-up before advancing (keeps effects flowing
/// under a flood of requests).
const BATCH: usize = 512;

struct Task {
    engine: Engine,
    time: TimeBase,
    next_req: u64,
    pending: HashMap<u64, oneshot::Sender<ApiOutcome>>,
    next_inst: InstanceId,
    by_inst: HashMap<InstanceId, String>,
    by_server: HashMap<String, InstanceId>,
    /// A fault input may change which nodes are up without any effect.
    force_usage: bool,
    /// A model time known to be reached (the deadline just slept for).
    floor: Option<ModelTime>,
    /// Reused buffer for the engine's node loads.
    loads: Vec<cp_model::NodeLoad>,
    /// Actions in progress by (model time due in µs, arrival order): a
    /// BTreeMap so equal times land in a deterministic order.
    actions: BTreeMap<(u64, u64), (String, Action, VmState)>,
    next_action: u64,
}

/// A model time as whole microseconds (the actions' timer key).
fn micros(t: ModelTime) -> u64 {
    (t * 1e6).clamp(0.0, 1e18).round() as u64
}

async fn run(state: Weak<State>, time: TimeBase, parts: EngineParts) {
    let EngineParts { engine, mut rx } = parts;
    let mut t = Task {
        engine,
        time,
        next_req: 0,
        pending: HashMap::new(),
        next_inst: 0,
        by_inst: HashMap::new(),
        by_server: HashMap::new(),
        force_usage: true,
        floor: None,
        loads: Vec::new(),
        actions: BTreeMap::new(),
        next_action: 0,
    };
    // Apply what the initial fault set did at t = 0 (lost nodes).
    if !t.step(&state) {
        return;
    }
    let far = Duration::from_secs(86_400 * 365);
    let mut alarm = Alarm::for_current_runtime();
    tracing::debug!(precise = alarm.is_precise(), "engine driver started");
    loop {
        let next_action = t.actions.keys().next().map(|&(us, _)| us as f64 / 1e6);
        let deadline = match (t.engine.next_deadline(), next_action) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let wake = match deadline {
            Some(d) => time.origin + time.clock.wall_offset(d).min(far),
            None => Instant::now() + far,
        };
        let mut reached = None;
        tokio::select! {
            biased;
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { return };
                t.handle(cmd, &state);
                for _ in 1..BATCH {
                    match rx.try_recv() {
                        Ok(cmd) => t.handle(cmd, &state),
                        Err(_) => break,
                    }
                }
            }
            _ = alarm.wait_until(wake) => reached = deadline,
        }
        // The wall instant of `deadline` has passed: that model time is
        // reached even if converting the clock back rounds a hair below it
        // (otherwise the loop would spin on an unreachable deadline).
        t.floor = reached;
        if !t.step(&state) {
            return;
        }
    }
}

impl Task {
    /// Applies every action due by `now`, each stamped with its own time.
    fn land_actions(&mut self, now: ModelTime, state: &Weak<State>) {
        let due = micros(now);
        let mut done = Vec::new();
        while let Some(entry) = self.actions.first_entry() {
            if entry.key().0 > due {
                break;
            }
            let ((us, _), (server, action, from)) = entry.remove_entry();
            done.push((self.time.at(us as f64 / 1e6), server, action, from));
        }
        if done.is_empty() {
            return;
        }
        if let Some(st) = state.upgrade() {
            st.finish_actions(done);
        }
    }

    fn handle(&mut self, cmd: Cmd, state: &Weak<State>) {
        let now = self.time.model_now();
        match cmd {
            Cmd::Api { kind, reply } => {
                self.next_req += 1;
                let req = self.next_req;
                self.pending.insert(req, reply);
                self.engine.submit(now, Input::ApiCall { req, kind });
            }
            Cmd::Boot {
                server,
                resources,
                name,
            } => {
                self.next_inst += 1;
                let instance = self.next_inst;
                self.by_inst.insert(instance, server.clone());
                self.by_server.insert(server, instance);
                let resources = cp_model::Resources {
                    vcpus: u32::try_from(resources.vcpus).unwrap_or(u32::MAX),
                    ram_mb: resources.ram_mb,
                    disk_gb: resources.disk_gb,
                };
                self.engine.submit(
                    now,
                    Input::Boot {
                        instance,
                        resources,
                        name: Some(name),
                    },
                );
            }
            Cmd::Delete { server } => match self.by_server.get(&server) {
                Some(&instance) => self.engine.submit(now, Input::Delete { instance }),
                None => {
                    // Never given to the engine: nothing to tear down.
                    if let Some(st) = state.upgrade() {
                        st.finish_delete(&server);
                    }
                }
            },
            Cmd::Action {
                server,
                action,
                from,
                after,
            } => {
                self.next_action += 1;
                self.actions.insert(
                    (micros(now + after), self.next_action),
                    (server, action, from),
                );
            }
            Cmd::SetFaults { set, reply } => {
                let r = self.engine.set_faults(now, set).map_err(|e| e.to_string());
                self.force_usage = true;
                let _ = reply.send(r);
            }
            Cmd::GetFaults { reply } => {
                let _ = reply.send(self.engine.faults().clone());
            }
            Cmd::Input { input, reply } => {
                let r = self
                    .engine
                    .try_submit(now, input)
                    .map_err(|e| e.to_string());
                self.force_usage = true;
                let _ = reply.send(r);
            }
            Cmd::Stats { reply } => {
                // Bring the engine to now so the stats are current.
                self.step(state);
                let _ = reply.send(self.engine.stats());
            }
        }
    }

    /// Advances the engine to now and applies its effects. `false` once the
    /// state is gone.
    fn step(&mut self, state: &Weak<State>) -> bool {
        let mut now = self.time.model_now();
        if let Some(f) = self.floor.take() {
            now = now.max(f);
        }
        let effects = self.engine.advance(now);
        self.land_actions(now, state);
        let mut usage_changed = std::mem::take(&mut self.force_usage);
        if effects.is_empty() && !usage_changed {
            return state.strong_count() > 0;
        }
        let Some(st) = state.upgrade() else {
            return false;
        };
        let mut updates = Vec::with_capacity(effects.len());
        for (at, effect) in effects {
            match effect {
                Effect::ApiDone { req } => {
                    if let Some(r) = self.pending.remove(&req) {
                        let _ = r.send(Ok(()));
                    }
                }
                Effect::ApiRejected {
                    req,
                    status,
                    message,
                } => {
                    if let Some(r) = self.pending.remove(&req) {
                        let _ = r.send(Err((status, message)));
                    }
                }
                other => {
                    let instance = match &other {
                        Effect::TaskState { instance, .. }
                        | Effect::Scheduled { instance, .. }
                        | Effect::Active { instance, .. }
                        | Effect::Error { instance, .. }
                        | Effect::Deleted { instance } => *instance,
                        Effect::ApiDone { .. } | Effect::ApiRejected { .. } => continue,
                    };
                    usage_changed |= !matches!(other, Effect::TaskState { .. });
                    let server = if matches!(other, Effect::Deleted { .. }) {
                        let s = self.by_inst.remove(&instance);
                        if let Some(s) = &s {
                            self.by_server.remove(s);
                        }
                        s
                    } else {
                        self.by_inst.get(&instance).cloned()
                    };
                    if let Some(server) = server {
                        updates.push((self.time.at(at), server, other));
                    }
                }
            }
        }
        if usage_changed {
            self.engine.loads(&mut self.loads);
        }
        if usage_changed || !updates.is_empty() {
            st.apply_engine(updates, usage_changed.then_some(self.loads.as_slice()));
        }
        true
    }
}
