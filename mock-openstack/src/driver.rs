//! Runs the deployment on the cp-model engine. The only code that sleeps.
//!
//! The [`cp_model::Engine`] and its bookkeeping ([`Core`]) sit behind one
//! short synchronous lock. Whoever holds it submits inputs at the current
//! model time, advances the engine to "now" and applies the effects,
//! stamped with their exact model times, to the server store (under the
//! same lock, so effects land in model order whoever advanced).
//!
//! One tokio task, the engine task, sleeps until `origin +
//! clock.wall_offset(next_deadline)` (one wall origin, so timer overshoot
//! never accumulates) and advances the engine then. On real time the sleep
//! is a high-resolution timer (see [`crate::alarm`]), so a service time
//! shorter than tokio's 1 ms tick is not rounded up to it.
//!
//! API calls on a multi-thread runtime (the binary, the embedded and Docker
//! backends) skip the hand-off to that task: the handler submits its call
//! and advances the engine itself, and while the next deadline is less than
//! [`crate::alarm::SPIN`] away it yields and advances again until its call
//! is answered. A handler stops driving once the next deadline is further
//! off, and then wakes the engine task if that deadline is earlier than the
//! one the task sleeps for and no other handler is still driving. The model
//! sees the same inputs at the same model times either way; what is gone is
//! a channel send, a wake-up of the engine task and a oneshot wake-up of
//! the handler per call (`perf`: 0.3 context switches per request). On a
//! current-thread runtime (the `sim` backend's paused clock) every call
//! still goes through the engine task's channel, unchanged, so the sim's
//! results stay bit for bit what they were.
//!
//! Server actions (reboot, stop, …) are timers of this task too: a
//! [`Cmd::Action`] lands at `now + the profile's action time`, in model time,
//! so `--time-scale` and the sim backend treat them like every other stage.
//!
//! The engine is the single source of truth for capacity: after every batch
//! of effects that can change usage, its node usage is copied into the
//! mock's `Capacity` (which hypervisors, placement and `/metrics` read).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use cp_model::{ApiKind, Clock, Effect, Engine, FaultSet, Input, InstanceId, ModelTime, Stats};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;

use crate::alarm::{Alarm, SPIN};
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
    /// One API call through the API stage (current-thread runtimes only;
    /// elsewhere the handler submits it itself, see [`EngineLink::api_call`]).
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

    /// The wall instant of model time `t` (a year away at most).
    fn wall(&self, t: ModelTime) -> Instant {
        self.origin + self.clock.wall_offset(t).min(FAR)
    }
}

/// "Never" for the engine task's sleep.
const FAR: Duration = Duration::from_secs(86_400 * 365);

/// How long, on a multi-thread runtime, the engine task may let events lie
/// that no waiting call depends on (background reports, timeouts of calls
/// already answered, boot stages): every handler advances the engine to
/// now before it answers, and each effect is stamped with its own model
/// time, so no client sees the difference; waking at each of them (a dead
/// API timeout per call) would cost a timer and a wake-up per request.
const LAZY: Duration = Duration::from_millis(5);

/// What the handlers and the engine task share.
struct Shared {
    core: Mutex<Core>,
    /// Tells the engine task that its next deadline moved earlier.
    wake: Notify,
}

impl Shared {
    /// The engine lock; a panic elsewhere never poisons the mock for good.
    fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The handlers' side of the engine.
pub struct EngineLink {
    tx: mpsc::UnboundedSender<Cmd>,
    shared: Arc<Shared>,
    /// API calls are stepped by their handler (multi-thread runtime), not
    /// sent to the engine task.
    inline: bool,
    pub time: TimeBase,
    /// Effective profile name and `Profile::hash()` (for `/mock/v1/info`).
    pub profile_name: String,
    pub profile_hash: String,
    /// The profile's server-action times.
    pub actions: cp_model::profile::ActionParams,
}

fn stopped() -> (u16, String) {
    (503, "The control plane is not running.".into())
}

impl EngineLink {
    fn send(&self, cmd: Cmd) -> bool {
        self.tx.send(cmd).is_ok()
    }

    /// Passes the API stage; a stopped engine answers 503. `st` is the
    /// state this link belongs to (effects of the advance land there).
    pub async fn api_call(&self, st: &State, kind: ApiKind) -> ApiOutcome {
        let (reply, mut rx) = oneshot::channel();
        if !self.inline {
            if !self.send(Cmd::Api { kind, reply }) {
                return Err(stopped());
            }
            return rx.await.unwrap_or_else(|_| Err(stopped()));
        }
        if self.tx.is_closed() {
            return Err(stopped());
        }
        let mut reply = Some(reply);
        let mut req = 0;
        let mut reached = None;
        loop {
            let wake = {
                let mut c = self.shared.lock();
                if let Some(r) = reply.take() {
                    req = c.submit(self.time.model_now(), kind, r, false);
                }
                c.step(st, reached.take());
                match rx.try_recv() {
                    Ok(r) => return r,
                    Err(oneshot::error::TryRecvError::Closed) => return Err(stopped()),
                    Err(oneshot::error::TryRecvError::Empty) => {}
                }
                match c.next_wake() {
                    Some(d)
                        if self.time.wall(d).saturating_duration_since(Instant::now()) <= SPIN =>
                    {
                        Some((d, self.time.wall(d)))
                    }
                    // Too far off to wait for by yielding: the engine task
                    // wakes on time for it and answers through `rx`.
                    next => {
                        c.hand_over(req, next, &self.shared.wake);
                        None
                    }
                }
            };
            let Some(wake) = wake else {
                return rx.await.unwrap_or_else(|_| Err(stopped()));
            };
            // Cheaper than a timer for a few µs: let every other ready task
            // run once, then look at the clock again.
            tokio::task::yield_now().await;
            // Its wall instant has passed: that model time is reached even
            // if converting the clock back rounds a hair below it.
            if Instant::now() >= wake.1 {
                reached = Some(wake.0);
            }
        }
    }

    /// Brings the engine to now (on a multi-thread runtime the engine task
    /// may let events nobody waits for lie for up to [`LAZY`]).
    pub fn sync(&self, st: &State) {
        if self.inline {
            self.shared.lock().step(st, None);
        }
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
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<Cmd>,
    inline: bool,
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
    // A paused clock exists only on a current-thread runtime; there every
    // call keeps going through the engine task (see the module docs).
    let inline = tokio::runtime::Handle::try_current().is_ok_and(|h| {
        matches!(
            h.runtime_flavor(),
            tokio::runtime::RuntimeFlavor::MultiThread
        )
    });
    let shared = Arc::new(Shared {
        core: Mutex::new(Core::new(engine, time)),
        wake: Notify::new(),
    });
    let (tx, rx) = mpsc::unbounded_channel();
    Ok((
        EngineLink {
            tx,
            shared: shared.clone(),
            inline,
            time,
            profile_name,
            profile_hash,
            actions,
        },
        EngineParts { shared, rx, inline },
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

/// The engine and what the mock keeps beside it, behind `Shared::core`.
struct Core {
    engine: Engine,
    time: TimeBase,
    next_req: u64,
    pending: HashMap<u64, Pending>,
    next_inst: InstanceId,
    by_inst: HashMap<InstanceId, String>,
    by_server: HashMap<String, InstanceId>,
    /// A fault input may change which nodes are up without any effect.
    force_usage: bool,
    /// Reused buffer for the engine's node loads.
    loads: Vec<cp_model::NodeLoad>,
    /// Actions in progress by (model time due in µs, arrival order): a
    /// BTreeMap so equal times land in a deterministic order.
    actions: BTreeMap<(u64, u64), (String, Action, VmState)>,
    next_action: u64,
    /// The deadline the engine task sleeps until (`None`: none).
    armed: Option<ModelTime>,
    /// Calls whose handler waits for the engine task to answer them.
    waiting: u32,
}

/// A call in the API stage: who to answer, and whether its handler left it
/// to the engine task (`Core::waiting` counts those).
struct Pending {
    reply: oneshot::Sender<ApiOutcome>,
    handed_over: bool,
}

/// A model time as whole microseconds (the actions' timer key).
fn micros(t: ModelTime) -> u64 {
    (t * 1e6).clamp(0.0, 1e18).round() as u64
}

async fn run(state: Weak<State>, time: TimeBase, parts: EngineParts) {
    let EngineParts {
        shared,
        mut rx,
        inline,
    } = parts;
    // Apply what the initial fault set did at t = 0 (lost nodes).
    {
        let Some(st) = state.upgrade() else { return };
        shared.lock().step(&st, None);
    }
    let mut alarm = Alarm::for_current_runtime();
    tracing::debug!(
        precise = alarm.is_precise(),
        inline,
        "engine driver started"
    );
    loop {
        let (deadline, wake) = {
            let mut c = shared.lock();
            let d = c.next_wake();
            let mut wake = d.map(|d| time.wall(d));
            if inline && c.waiting == 0 {
                let lazy = Instant::now() + LAZY;
                wake = wake.map(|w| w.max(lazy));
            }
            c.armed = wake.map(|w| {
                time.clock
                    .model_time(w.saturating_duration_since(time.origin))
            });
            (d, wake.unwrap_or_else(|| Instant::now() + FAR))
        };
        let mut reached = None;
        tokio::select! {
            biased;
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { return };
                let Some(st) = state.upgrade() else { return };
                let mut c = shared.lock();
                c.handle(cmd, &st);
                for _ in 1..BATCH {
                    match rx.try_recv() {
                        Ok(cmd) => c.handle(cmd, &st),
                        Err(_) => break,
                    }
                }
            }
            () = shared.wake.notified(), if inline => {}
            () = alarm.wait_until(wake) => reached = deadline,
        }
        // The wall instant of `deadline` has passed: that model time is
        // reached even if converting the clock back rounds a hair below it
        // (otherwise the loop would spin on an unreachable deadline).
        let Some(st) = state.upgrade() else { return };
        shared.lock().step(&st, reached);
    }
}

impl Core {
    fn new(engine: Engine, time: TimeBase) -> Self {
        Self {
            engine,
            time,
            next_req: 0,
            pending: HashMap::new(),
            next_inst: 0,
            by_inst: HashMap::new(),
            by_server: HashMap::new(),
            force_usage: true,
            loads: Vec::new(),
            actions: BTreeMap::new(),
            next_action: 0,
            armed: None,
            waiting: 0,
        }
    }

    /// The earliest engine deadline or action due.
    fn next_wake(&self) -> Option<ModelTime> {
        let next_action = self.actions.keys().next().map(|&(us, _)| us as f64 / 1e6);
        match (self.engine.next_deadline(), next_action) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Submits an API call at `now`; its request number. `handed_over`:
    /// the engine task answers it (the channel path, counted in
    /// `waiting`); otherwise its handler steps the engine itself (inline)
    /// until it is answered or handed over.
    fn submit(
        &mut self,
        now: ModelTime,
        kind: ApiKind,
        reply: oneshot::Sender<ApiOutcome>,
        handed_over: bool,
    ) -> u64 {
        self.next_req += 1;
        let req = self.next_req;
        self.pending.insert(req, Pending { reply, handed_over });
        if handed_over {
            self.waiting += 1;
        }
        self.engine.submit(now, Input::ApiCall { req, kind });
        req
    }

    /// The handler of `req` stops stepping the engine (its next deadline
    /// `next` is too far off to yield for): the engine task answers it, and
    /// is woken if it sleeps past `next`.
    fn hand_over(&mut self, req: u64, next: Option<ModelTime>, wake: &Notify) {
        if let Some(p) = self.pending.get_mut(&req) {
            if !p.handed_over {
                p.handed_over = true;
                self.waiting += 1;
            }
        }
        if let Some(d) = next {
            if self.armed.is_none_or(|a| d < a) {
                self.armed = Some(d);
                wake.notify_one();
            }
        }
    }

    /// Answers call `req` (if its handler still listens).
    fn answer(&mut self, req: u64, outcome: ApiOutcome) {
        if let Some(p) = self.pending.remove(&req) {
            if p.handed_over {
                self.waiting = self.waiting.saturating_sub(1);
            }
            let _ = p.reply.send(outcome);
        }
    }

    /// Applies every action due by `now`, each stamped with its own time.
    fn land_actions(&mut self, now: ModelTime, st: &State) {
        let due = micros(now);
        let mut done = Vec::new();
        while let Some(entry) = self.actions.first_entry() {
            if entry.key().0 > due {
                break;
            }
            let ((us, _), (server, action, from)) = entry.remove_entry();
            done.push((self.time.at(us as f64 / 1e6), server, action, from));
        }
        if !done.is_empty() {
            st.finish_actions(done);
        }
    }

    fn handle(&mut self, cmd: Cmd, st: &State) {
        let now = self.time.model_now();
        match cmd {
            Cmd::Api { kind, reply } => {
                self.submit(now, kind, reply, true);
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
                // Never given to the engine: nothing to tear down.
                None => st.finish_delete(&server),
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
                self.step(st, None);
                let _ = reply.send(self.engine.stats());
            }
        }
    }

    /// Advances the engine to now (at least to `reached`, a model time
    /// whose wall instant has passed) and applies its effects.
    fn step(&mut self, st: &State, reached: Option<ModelTime>) {
        let mut now = self.time.model_now();
        if let Some(f) = reached {
            now = now.max(f);
        }
        let effects = self.engine.advance(now);
        self.land_actions(now, st);
        let mut usage_changed = std::mem::take(&mut self.force_usage);
        if effects.is_empty() && !usage_changed {
            return;
        }
        let mut updates = Vec::with_capacity(effects.len());
        for (at, effect) in effects {
            match effect {
                Effect::ApiDone { req } => self.answer(req, Ok(())),
                Effect::ApiRejected {
                    req,
                    status,
                    message,
                } => self.answer(req, Err((status, message))),
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
    }
}
