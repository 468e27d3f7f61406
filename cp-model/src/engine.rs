//! The discrete-event engine: one event heap, the stations, the nodes and the
//! instances, and the rules that move a boot from one stage to the next.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, StandardNormal};

use crate::error::ModelError;
use crate::faults::{
    CompiledFaults, FaultReason, FaultSet, Window, DB_POOL_TIMEOUT, NO_VALID_HOST,
    NO_VALID_HOST_RETRIES, VIF_FAILED,
};
use crate::layout::{Kind, Layout, Stage};
use crate::profile::Profile;
use crate::stages::admission::Admission;
use crate::stages::node::{ImageCache, Node};
use crate::stages::scheduler::{self, HostView};
use crate::stages::station::{JobId, Station};
use crate::stats::{ApiStats, BackgroundStats, BootStats, BusStats, ComputeStats, Stats};
use crate::types::{
    ApiKind, Effect, Input, InstanceId, ModelTime, NodeSpec, NodeUsage, RequestId, Resources,
    TaskState,
};

/// Where an RPC message goes once the bus has forwarded it.
#[derive(Clone, Debug)]
enum Hop {
    /// A job of a controller station; a call keeps its absolute deadline.
    Station {
        stage: Stage,
        kind: JobKind,
        base_s: f64,
        deadline: Option<ModelTime>,
    },
    /// `build_and_run_instance` reaching a compute node.
    Node {
        inst: InstanceId,
        gen: u32,
        node: usize,
    },
}

/// What a station job is for; decides what happens when it completes.
#[derive(Clone, Debug)]
enum JobKind {
    Api {
        req: RequestId,
    },
    Build {
        inst: InstanceId,
        gen: u32,
    },
    Schedule {
        inst: InstanceId,
        gen: u32,
    },
    Cast {
        inst: InstanceId,
        gen: u32,
        node: usize,
    },
    Complete {
        inst: InstanceId,
        gen: u32,
    },
    DeleteRecord {
        inst: InstanceId,
        gen: u32,
    },
    PortCreate {
        inst: InstanceId,
        gen: u32,
    },
    DeviceUp {
        inst: InstanceId,
        gen: u32,
    },
    PortDelete {
        inst: InstanceId,
        gen: u32,
    },
    Report {
        node: usize,
    },
    Tracker {
        node: usize,
        usage: Resources,
    },
    AgentReport {
        node: usize,
    },
    /// Messages in the broker on their way to `hop`.
    Bus {
        hop: Box<Hop>,
    },
}

impl JobKind {
    fn background(&self) -> bool {
        match self {
            JobKind::Report { .. } | JobKind::Tracker { .. } | JobKind::AgentReport { .. } => true,
            JobKind::Bus { hop } => match hop.as_ref() {
                Hop::Station { kind, .. } => kind.background(),
                Hop::Node { .. } => false,
            },
            _ => false,
        }
    }

    /// The job the caller waits for (through the bus when in transit).
    fn target(&self) -> &JobKind {
        match self {
            JobKind::Bus { hop } => match hop.as_ref() {
                Hop::Station { kind, .. } => kind,
                Hop::Node { .. } => self,
            },
            _ => self,
        }
    }
}

#[derive(Debug)]
struct Job {
    stage: Stage,
    kind: JobKind,
    enqueued_at: ModelTime,
    service_s: f64,
    worker: Option<u32>,
    abandoned: bool,
    done: bool,
    holds_thread: bool,
    holds_conn: bool,
    waiting_conn: bool,
}

#[derive(Clone, Debug)]
enum Ev {
    Input(Input),
    StageDone { job: JobId },
    JobTimeout { job: JobId },
    PoolTimeout { job: JobId },
    Kick,
    ImageReady { node: usize },
    SpawnDone { inst: InstanceId, gen: u32 },
    AgentSeen { inst: InstanceId, gen: u32 },
    VifTimeout { inst: InstanceId, gen: u32 },
    DestroyDone { inst: InstanceId, gen: u32 },
    ReportDue { node: usize },
    TrackerDue { node: usize },
    AgentReportDue { node: usize },
}

struct Scheduled {
    at: ModelTime,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Scheduled {
    /// Whether `self` comes before `other`: earlier, then first scheduled.
    fn before(&self, other: &Scheduled) -> bool {
        self.at
            .total_cmp(&other.at)
            .then_with(|| self.seq.cmp(&other.seq))
            == Ordering::Less
    }
}

impl Ord for Scheduled {
    // Reversed: BinaryHeap is a max-heap and we want the earliest (then the
    // first scheduled) on top, so ties resolve in submission order.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .at
            .total_cmp(&self.at)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Building,
    Active,
    Error,
    Deleting,
    /// Cast to a node that was already lost: nothing will ever answer.
    Stuck,
}

#[derive(Debug)]
struct Instance {
    resources: Resources,
    gen: u32,
    phase: Phase,
    host: Option<usize>,
    claimed: bool,
    holds_slot: bool,
    attempts: u32,
    tried: Vec<usize>,
    delete_requested: bool,
    spawn_done: bool,
    vif_done: bool,
    injected: Option<String>,
    submitted_at: ModelTime,
}

/// One OpenStack control plane: 1 controller + the given compute nodes, or
/// (with [`Engine::with_cells`]) a cells v2 deployment.
pub struct Engine {
    profile: Profile,
    profile_hash: String,
    seed: u64,
    rng: ChaCha8Rng,
    now: ModelTime,
    seq: u64,
    heap: BinaryHeap<Scheduled>,
    /// Timeouts in the order they fall due (see [`Engine::push_timeout`]):
    /// nearly every job has one, nearly all of them fire after the job is
    /// done, and most are set a constant delay after they are scheduled, so
    /// they arrive in time order and a FIFO keeps them in O(1) instead of
    /// swelling the heap. Events are taken from the heap and this queue in
    /// one (time, sequence) order, so the model's course is unchanged.
    timeouts: VecDeque<Scheduled>,
    out: Vec<(ModelTime, Effect)>,
    layout: Layout,
    stations: Vec<Station>,
    /// One per station; a bus's is never used (a broker has no threads or DB).
    admission: Vec<Admission>,
    jobs: HashMap<JobId, Job>,
    next_job: JobId,
    nodes: Vec<Node>,
    views: Vec<Vec<HostView>>,
    instances: BTreeMap<InstanceId, Instance>,
    faults: CompiledFaults,
    boots: BootStats,
    api: ApiStats,
    background: BackgroundStats,
    bus: BusStats,
    spawns_started: u64,
    image_downloads: u64,
    active_time_total: f64,
    invalid_inputs: u64,
}

impl Engine {
    /// Build an engine; periodic background work of every node starts at a
    /// seeded random phase so that reports do not all land at once.
    pub fn new(profile: Profile, nodes: Vec<NodeSpec>, seed: u64) -> Result<Engine, ModelError> {
        Engine::with_cells(profile, nodes, seed, 1)
    }

    /// A nova cells v2 deployment: the nodes split into `cells` contiguous
    /// cells, each with its own conductor and message bus, under one global
    /// API, super-conductor, scheduler and neutron-server (see `layout`).
    /// Every station uses the profile's parameters for its service; one cell
    /// is the monolith of [`Engine::new`].
    pub fn with_cells(
        profile: Profile,
        nodes: Vec<NodeSpec>,
        seed: u64,
        cells: usize,
    ) -> Result<Engine, ModelError> {
        profile.validate()?;
        let mut seen = std::collections::BTreeSet::new();
        for n in &nodes {
            let bad = |m: &str| ModelError::InvalidNode {
                name: n.name.clone(),
                message: m.to_string(),
            };
            if !seen.insert(n.name.clone()) {
                return Err(bad("duplicate node name"));
            }
            for r in [
                n.cpu_allocation_ratio,
                n.ram_allocation_ratio,
                n.disk_allocation_ratio,
            ] {
                if !(r.is_finite() && r > 0.0) {
                    return Err(bad("allocation ratios must be finite and > 0"));
                }
            }
        }
        let layout = Layout::new(nodes.len(), cells);
        let conns = profile.db.per_worker();
        let t = &profile.threads;
        let (mut stations, mut admission) = (Vec::new(), Vec::new());
        for s in layout.all() {
            let (workers, threads) = match layout.kind(s) {
                Kind::Api => (profile.api.workers, t.api),
                Kind::Conductor => (profile.conductor.workers, t.conductor),
                Kind::Scheduler => (profile.scheduler.workers, t.scheduler),
                Kind::Networking => (profile.networking.workers, t.networking),
                Kind::Bus => (1, 0),
            };
            stations.push(Station::new(workers));
            admission.push(Admission::new(workers, threads, conns));
        }
        let views =
            vec![vec![HostView::default(); nodes.len()]; profile.scheduler.workers as usize];
        let mut engine = Engine {
            profile_hash: profile.hash(),
            profile,
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: 0.0,
            seq: 0,
            heap: BinaryHeap::new(),
            timeouts: VecDeque::new(),
            out: Vec::new(),
            layout,
            stations,
            admission,
            jobs: HashMap::new(),
            next_job: 0,
            nodes: nodes.into_iter().map(Node::new).collect(),
            views,
            instances: BTreeMap::new(),
            faults: CompiledFaults::default(),
            boots: BootStats::default(),
            api: ApiStats::default(),
            background: BackgroundStats::default(),
            bus: BusStats::default(),
            spawns_started: 0,
            image_downloads: 0,
            active_time_total: 0.0,
            invalid_inputs: 0,
        };
        // Broker connections: nodes past their broker's limit are refused,
        // never report and are never chosen (they show as down). Each broker
        // (the top one and each cell's) also holds the controller's connections.
        let b = engine.profile.bus.clone();
        let controller = u64::from(b.controller_connections).min(u64::from(b.max_connections));
        let brokers = engine.layout.buses();
        engine.bus.connections = controller * brokers.len() as u64;
        let mut used: Vec<u64> = vec![controller; engine.layout.stations()];
        let per = u64::from(b.connections_per_compute);
        for (i, n) in engine.nodes.iter_mut().enumerate() {
            let broker = engine.layout.cell_bus(i).0;
            if used[broker] + per <= u64::from(b.max_connections) {
                used[broker] += per;
                engine.bus.connections += per;
            } else {
                n.up = false;
                n.last_report = f64::NEG_INFINITY;
                engine.bus.computes_refused += 1;
                engine.bus.connections_refused += per;
            }
        }
        let bg = engine.profile.background.clone();
        for node in 0..engine.nodes.len() {
            let r = engine.rng.gen::<f64>();
            engine.push(r * bg.report_interval_s, Ev::ReportDue { node });
            let r = engine.rng.gen::<f64>();
            engine.push(r * bg.resource_tracker_interval_s, Ev::TrackerDue { node });
            let r = engine.rng.gen::<f64>();
            engine.push(r * bg.agent_report_interval_s, Ev::AgentReportDue { node });
        }
        Ok(engine)
    }

    /// Number of cells (1: the monolith).
    pub fn cells(&self) -> usize {
        self.layout.cells()
    }

    /// The cell (0-based) of the node at `index` in the engine's node order.
    pub fn node_cell(&self, index: usize) -> usize {
        self.layout.cell_of(index)
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Model time of the last processed event or `advance` target.
    pub fn now(&self) -> ModelTime {
        self.now
    }

    /// Queue an input at model time `now` (clamped to the engine's time, so
    /// an input can never land in the past). Invalid inputs are counted in
    /// `Stats::invalid_inputs` and otherwise ignored; see [`Engine::try_submit`].
    pub fn submit(&mut self, now: ModelTime, input: Input) {
        if self.try_submit(now, input).is_err() {
            self.invalid_inputs += 1;
        }
    }

    /// Like [`Engine::submit`] but says why an input is refused.
    pub fn try_submit(&mut self, now: ModelTime, input: Input) -> Result<(), ModelError> {
        if !now.is_finite() {
            return Err(ModelError::InvalidInput(format!(
                "time {now} is not finite"
            )));
        }
        match &input {
            Input::LoseNode { name } if !self.nodes.iter().any(|n| &n.spec.name == name) => {
                return Err(ModelError::InvalidInput(format!("unknown node `{name}`")));
            }
            Input::FreezeController { duration_s } | Input::ApiUnavailable { duration_s }
                if !(duration_s.is_finite() && *duration_s >= 0.0) =>
            {
                return Err(ModelError::InvalidInput(format!(
                    "bad duration {duration_s}"
                )));
            }
            Input::SetFaults(set) => {
                CompiledFaults::compile(set.clone())?;
            }
            _ => {}
        }
        let at = now.max(self.now);
        self.push(at, Ev::Input(input));
        Ok(())
    }

    /// Install a fault set now (compiles regexes; errors leave the old set).
    pub fn set_faults(&mut self, now: ModelTime, faults: FaultSet) -> Result<(), ModelError> {
        CompiledFaults::compile(faults.clone())?;
        self.try_submit(now, Input::SetFaults(faults))
    }

    pub fn faults(&self) -> &FaultSet {
        &self.faults.set
    }

    /// Earliest pending event. Background work never stops, so this is
    /// `Some` as long as there is at least one compute node.
    pub fn next_deadline(&self) -> Option<ModelTime> {
        self.peek_next().map(|(s, _)| s.at)
    }

    /// Takes the next event if it falls due no later than `to`.
    fn pop_due(&mut self, to: ModelTime) -> Option<Scheduled> {
        let (top, from_timeouts) = self.peek_next()?;
        if top.at > to {
            return None;
        }
        if from_timeouts {
            self.timeouts.pop_front()
        } else {
            self.heap.pop()
        }
    }

    /// The next event, and whether it is the timeout queue's.
    fn peek_next(&self) -> Option<(&Scheduled, bool)> {
        match (self.heap.peek(), self.timeouts.front()) {
            (Some(h), Some(t)) if t.before(h) => Some((t, true)),
            (Some(h), _) => Some((h, false)),
            (None, Some(t)) => Some((t, true)),
            (None, None) => None,
        }
    }

    /// Process every event with time <= `to`, in time order (ties in the
    /// order they were scheduled), and return the effects with their times.
    pub fn advance(&mut self, to: ModelTime) -> Vec<(ModelTime, Effect)> {
        // Background work never ends: an infinite or NaN target would never return.
        if !to.is_finite() {
            self.invalid_inputs += 1;
            return std::mem::take(&mut self.out);
        }
        while let Some(s) = self.pop_due(to) {
            self.now = s.at.max(self.now);
            self.handle(s.ev);
        }
        if to > self.now {
            self.now = to;
        }
        std::mem::take(&mut self.out)
    }

    pub fn nodes(&self) -> Vec<NodeUsage> {
        self.nodes.iter().map(Node::usage).collect()
    }

    /// Every node's load in node order, without allocating names: what a
    /// driver copies after each change (`nodes()` has the specs too).
    pub fn loads(&self, out: &mut Vec<crate::types::NodeLoad>) {
        out.clear();
        out.extend(self.nodes.iter().map(Node::load));
    }

    pub fn stats(&self) -> Stats {
        let mut stages = BTreeMap::new();
        for (i, st) in self.stations.iter().enumerate() {
            stages.insert(self.layout.name(Stage(i)), st.stats(self.now));
        }
        let bg = &self.profile.background;
        let n = self.nodes.iter().filter(|n| n.up).count() as f64;
        let mut boots = self.boots.clone();
        boots.mean_time_to_active_s = if boots.active > 0 {
            self.active_time_total / boots.active as f64
        } else {
            0.0
        };
        for (i, a) in self.admission.iter().enumerate() {
            if self.layout.kind(Stage(i)) == Kind::Bus {
                continue;
            }
            if let Some(st) = stages.get_mut(&self.layout.name(Stage(i))) {
                st.threads = a.threads;
                st.threads_in_use = a.threads_used;
                st.thread_queue_len = a.thread_wait.len() as u64;
                st.max_thread_queue_len = a.max_thread_wait;
                st.db_connections = a.conns;
                st.db_connections_in_use = a.conns_used;
                st.max_db_connections_in_use = a.max_conns_used;
                st.db_waiting = a.conn_waiting;
                st.max_db_waiting = a.max_conn_waiting;
                st.db_pool_timeouts = a.pool_timeouts;
            }
        }
        let b = &self.profile.bus;
        let bus = BusStats {
            messages_per_s: b.messages_per_s,
            max_connections: u64::from(b.max_connections),
            offered_background_messages_per_s: n
                * (f64::from(b.report_msgs) / bg.report_interval_s
                    + f64::from(b.tracker_msgs) / bg.resource_tracker_interval_s
                    + f64::from(b.agent_report_msgs) / bg.agent_report_interval_s),
            ..self.bus.clone()
        };
        Stats {
            now: self.now,
            profile: self.profile.name.clone(),
            profile_hash: self.profile_hash.clone(),
            seed: self.seed,
            stages,
            bus,
            api: self.api.clone(),
            boots,
            compute: ComputeStats {
                nodes: self.nodes.len() as u64,
                nodes_up: n as u64,
                builds_in_flight: self.nodes.iter().map(|n| u64::from(n.building)).sum(),
                builds_queued: self.nodes.iter().map(|n| n.build_queue.len() as u64).sum(),
                max_concurrent_builds_seen: self
                    .nodes
                    .iter()
                    .map(|n| n.max_building_seen)
                    .max()
                    .unwrap_or(0),
                spawns_started: self.spawns_started,
                image_downloads: self.image_downloads,
            },
            background: BackgroundStats {
                offered_conductor_workers: n
                    * (bg.report_cost_s / bg.report_interval_s
                        + bg.resource_tracker_cost_s / bg.resource_tracker_interval_s),
                offered_networking_workers: n * bg.agent_report_cost_s / bg.agent_report_interval_s,
                ..self.background.clone()
            },
            invalid_inputs: self.invalid_inputs,
        }
    }

    // ----- plumbing -------------------------------------------------------

    fn push(&mut self, at: ModelTime, ev: Ev) {
        self.seq += 1;
        self.heap.push(Scheduled {
            at,
            seq: self.seq,
            ev,
        });
    }

    /// Like [`Engine::push`], for a timeout: onto the FIFO of timeouts when
    /// it falls due no earlier than the last one there (the usual case: a
    /// stage's timeouts are all the same delay from now), else onto the heap.
    fn push_timeout(&mut self, at: ModelTime, ev: Ev) {
        self.seq += 1;
        let s = Scheduled {
            at,
            seq: self.seq,
            ev,
        };
        match self.timeouts.back() {
            Some(last) if s.before(last) => self.heap.push(s),
            _ => self.timeouts.push_back(s),
        }
    }

    fn emit(&mut self, effect: Effect) {
        self.out.push((self.now, effect));
    }

    /// Log-normal multiplier with mean 1 and the profile's coefficient of variation.
    fn jitter(&mut self) -> f64 {
        let cv = self.profile.service_time_cv;
        if cv <= 0.0 {
            return 1.0;
        }
        let sigma2 = (1.0 + cv * cv).ln();
        let z: f64 = self.rng.sample(StandardNormal);
        (-sigma2 / 2.0 + sigma2.sqrt() * z).exp()
    }

    fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        if sigma <= 0.0 || median <= 0.0 {
            return median.max(0.0);
        }
        match LogNormal::new(median.ln(), sigma) {
            Ok(d) => d.sample(&mut self.rng),
            Err(_) => median,
        }
    }

    fn enqueue(
        &mut self,
        stage: Stage,
        kind: JobKind,
        base_s: f64,
        timeout_s: Option<f64>,
    ) -> JobId {
        self.enqueue_job(stage, kind, base_s, timeout_s, false)
    }

    /// A new job of `stage`: through the service's threads and DB pool (the
    /// bus has neither), then its FIFO queue. `abandoned` jobs run but their
    /// result is discarded (the caller already gave up).
    fn enqueue_job(
        &mut self,
        stage: Stage,
        kind: JobKind,
        base_s: f64,
        timeout_s: Option<f64>,
        abandoned: bool,
    ) -> JobId {
        let kind_of = self.layout.kind(stage);
        let service_s = if kind_of == Kind::Bus {
            // The broker forwards at a fixed rate: no variability, no RNG draw.
            base_s
        } else {
            let extra = {
                let l = &self.faults.set.extra_latency;
                match kind_of {
                    Kind::Api => l.api_s,
                    Kind::Conductor => l.conductor_s,
                    Kind::Scheduler => l.scheduler_s,
                    Kind::Networking => l.networking_s,
                    Kind::Bus => 0.0,
                }
            };
            base_s * self.jitter() + extra
        };
        let id = self.next_job;
        self.next_job += 1;
        self.jobs.insert(
            id,
            Job {
                stage,
                kind,
                enqueued_at: self.now,
                service_s,
                worker: None,
                abandoned,
                done: false,
                holds_thread: false,
                holds_conn: false,
                waiting_conn: false,
            },
        );
        if let Some(t) = timeout_s {
            self.push_timeout(self.now + t, Ev::JobTimeout { job: id });
        }
        if kind_of == Kind::Bus {
            self.stations[stage.0].enqueue(self.now, id);
            self.try_start(stage);
        } else if self.admission[stage.0].take_thread(id) {
            if let Some(j) = self.jobs.get_mut(&id) {
                j.holds_thread = true;
            }
            self.checkout(stage, id);
        }
        id
    }

    /// Check out a DB connection for job `id` (which holds a thread), or
    /// wait for one until the pool timeout.
    fn checkout(&mut self, stage: Stage, id: JobId) {
        let i = stage.0;
        if self.admission[i].take_conn(id) {
            if let Some(j) = self.jobs.get_mut(&id) {
                j.holds_conn = true;
            }
            self.stations[i].enqueue(self.now, id);
            self.try_start(stage);
        } else {
            if let Some(j) = self.jobs.get_mut(&id) {
                j.waiting_conn = true;
            }
            let t = self.profile.db.pool_timeout_s;
            self.push_timeout(self.now + t, Ev::PoolTimeout { job: id });
        }
    }

    /// A job left `stage` (served or failed): its connection goes to the
    /// first job waiting for one, its thread to the first job waiting for one.
    fn release_admission(&mut self, stage: Stage, holds_conn: bool, holds_thread: bool) {
        if self.layout.kind(stage) == Kind::Bus {
            return;
        }
        let i = stage.0;
        if holds_conn {
            let mut handed = false;
            while let Some(next) = self.admission[i].conn_wait.pop_front() {
                let Some(j) = self.jobs.get_mut(&next) else {
                    continue;
                };
                if !j.waiting_conn {
                    continue;
                }
                j.waiting_conn = false;
                j.holds_conn = true;
                self.admission[i].conn_waiting = self.admission[i].conn_waiting.saturating_sub(1);
                self.stations[i].enqueue(self.now, next);
                handed = true;
                break;
            }
            if !handed {
                self.admission[i].conns_used = self.admission[i].conns_used.saturating_sub(1);
            }
        }
        if holds_thread {
            let mut handed = None;
            while let Some(next) = self.admission[i].thread_wait.pop_front() {
                if let Some(j) = self.jobs.get_mut(&next) {
                    j.holds_thread = true;
                    handed = Some(next);
                    break;
                }
            }
            match handed {
                Some(next) => self.checkout(stage, next),
                None => {
                    self.admission[i].threads_used =
                        self.admission[i].threads_used.saturating_sub(1);
                }
            }
        }
    }

    /// `msgs` RPC messages through the broker `bus`, then `hop`. Without a
    /// bus (`messages_per_s` 0) or without messages, `hop` happens at once.
    fn send(&mut self, bus: Stage, msgs: u32, hop: Hop) {
        let rate = self.profile.bus.messages_per_s;
        if rate <= 0.0 || msgs == 0 {
            self.deliver(hop, false);
            return;
        }
        self.bus.messages += u64::from(msgs);
        let timeout = match &hop {
            Hop::Station { deadline, .. } => deadline.map(|d| (d - self.now).max(0.0)),
            Hop::Node { .. } => None,
        };
        self.enqueue_job(
            bus,
            JobKind::Bus { hop: Box::new(hop) },
            f64::from(msgs) / rate,
            timeout,
            false,
        );
    }

    /// The broker has forwarded the messages of `hop`.
    fn deliver(&mut self, hop: Hop, abandoned: bool) {
        match hop {
            Hop::Station {
                stage,
                kind,
                base_s,
                deadline,
            } => {
                let timeout = if abandoned {
                    None
                } else {
                    deadline.map(|d| (d - self.now).max(0.0))
                };
                self.enqueue_job(stage, kind, base_s, timeout, abandoned);
            }
            Hop::Node { inst, gen, node } => self.on_cast_arrived(inst, gen, node),
        }
    }

    /// The broker and conductor of `node`'s cell (the top ones without a node).
    fn cell_of(&self, node: Option<usize>) -> (Stage, Stage) {
        match node {
            Some(n) => (self.layout.cell_bus(n), self.layout.cell_conductor(n)),
            None => (Stage::BUS, Stage::CONDUCTOR),
        }
    }

    /// Nova's error when a checkout waited `pool_timeout_s`.
    fn db_pool_fault(&self) -> String {
        let d = &self.profile.db;
        format!(
            "{DB_POOL_TIMEOUT} of size {} overflow {} reached, connection timed out, timeout {}",
            d.pool_size, d.max_overflow, d.pool_timeout_s
        )
    }

    fn frozen(&self) -> Option<Window> {
        self.faults.frozen_at(self.now)
    }

    fn try_start(&mut self, stage: Stage) {
        if self.frozen().is_some() {
            return;
        }
        loop {
            let st = &mut self.stations[stage.0];
            let Some(worker) = st.free_worker() else {
                return;
            };
            let Some(id) = st.start(self.now, worker) else {
                return;
            };
            let Some(job) = self.jobs.get_mut(&id) else {
                // Cannot happen (jobs leave the map only when served), but
                // never leave a worker busy forever.
                self.stations[stage.0].release(worker);
                continue;
            };
            job.worker = Some(worker);
            let wait = self.now - job.enqueued_at;
            let (service, bgnd) = (job.service_s, job.kind.background());
            self.stations[stage.0].record_start(wait, service, bgnd);
            self.push(self.now + service, Ev::StageDone { job: id });
        }
    }

    fn try_start_all(&mut self) {
        for s in 0..self.stations.len() {
            self.try_start(Stage(s));
        }
    }

    // ----- event dispatch -------------------------------------------------

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Input(input) => self.on_input(input),
            Ev::StageDone { job } => self.on_stage_done(job),
            Ev::JobTimeout { job } => self.on_job_timeout(job),
            Ev::PoolTimeout { job } => self.on_pool_timeout(job),
            Ev::Kick => self.try_start_all(),
            Ev::ImageReady { node } => self.on_image_ready(node),
            Ev::SpawnDone { inst, gen } => {
                if let Some(i) = self.live(inst, gen) {
                    i.spawn_done = true;
                    self.maybe_finish_spawn(inst);
                }
            }
            Ev::AgentSeen { inst, gen } => {
                if self.live(inst, gen).is_some() {
                    let s = self.profile.networking.device_up_s;
                    let msgs = self.profile.bus.vif_msgs;
                    self.send(
                        Stage::BUS,
                        msgs,
                        Hop::Station {
                            stage: Stage::NETWORKING,
                            kind: JobKind::DeviceUp { inst, gen },
                            base_s: s,
                            deadline: None,
                        },
                    );
                }
            }
            Ev::VifTimeout { inst, gen } => self.on_vif_timeout(inst, gen),
            Ev::DestroyDone { inst, gen } => {
                if self.live(inst, gen).is_some() {
                    let s = self.profile.networking.port_delete_s;
                    self.enqueue(
                        Stage::NETWORKING,
                        JobKind::PortDelete { inst, gen },
                        s,
                        None,
                    );
                }
            }
            Ev::ReportDue { node } => self.on_report_due(node),
            Ev::TrackerDue { node } => self.on_tracker_due(node),
            Ev::AgentReportDue { node } => self.on_agent_report_due(node),
        }
    }

    /// The instance if it still exists and `gen` is current (older events
    /// belong to an abandoned attempt and are ignored).
    fn live(&mut self, inst: InstanceId, gen: u32) -> Option<&mut Instance> {
        self.instances.get_mut(&inst).filter(|i| i.gen == gen)
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::ApiCall { req, kind } => self.on_api_call(req, kind),
            Input::Boot {
                instance,
                resources,
                name,
            } => self.on_boot(instance, resources, name),
            Input::Delete { instance } => self.on_delete(instance),
            Input::SetFaults(set) => match CompiledFaults::compile(set) {
                Ok(c) => {
                    let lost = c.set.lost_nodes.clone();
                    let ends: Vec<f64> = c.set.controller_frozen.iter().map(|w| w.end_s).collect();
                    self.faults = c;
                    for end in ends {
                        if end >= self.now {
                            self.push(end, Ev::Kick);
                        }
                    }
                    for name in lost {
                        self.lose_node(&name);
                    }
                }
                Err(_) => self.invalid_inputs += 1,
            },
            Input::LoseNode { name } => {
                if !self.faults.set.lost_nodes.contains(&name) {
                    self.faults.set.lost_nodes.push(name.clone());
                }
                self.lose_node(&name);
            }
            Input::FreezeController { duration_s } => {
                let w = Window {
                    start_s: self.now,
                    end_s: self.now + duration_s,
                };
                self.faults.set.controller_frozen.push(w);
                self.push(w.end_s, Ev::Kick);
            }
            Input::ApiUnavailable { duration_s } => {
                let w = Window {
                    start_s: self.now,
                    end_s: self.now + duration_s,
                };
                self.faults.set.api_unavailable.push(w);
            }
        }
    }

    fn on_api_call(&mut self, req: RequestId, kind: ApiKind) {
        if self.faults.api_unavailable(self.now) {
            self.api.rejected_unavailable_503 += 1;
            self.emit(Effect::ApiRejected {
                req,
                status: 503,
                message: "Service Unavailable: the compute API is not available".into(),
            });
            return;
        }
        let api = &self.profile.api;
        // The socket backlog: calls no worker thread has accepted yet.
        if self.admission[Stage::API.0].thread_wait.len() >= api.backlog as usize {
            self.api.rejected_backlog_503 += 1;
            self.emit(Effect::ApiRejected {
                req,
                status: 503,
                message: "Service Unavailable: API backlog is full".into(),
            });
            return;
        }
        let base = match kind {
            ApiKind::Get => api.get_s,
            ApiKind::Post => api.post_s,
            ApiKind::Delete => api.delete_s,
        };
        let timeout = api.timeout_s;
        self.enqueue(Stage::API, JobKind::Api { req }, base, Some(timeout));
    }

    fn on_boot(&mut self, id: InstanceId, resources: Resources, name: Option<String>) {
        if self.instances.contains_key(&id) {
            self.invalid_inputs += 1;
            return;
        }
        // Draw the injected-fault decision now so the RNG stream does not
        // depend on how far the build gets.
        let injected = match name.as_deref().and_then(|n| self.faults.boot_rule(n)) {
            Some((rate, fault)) => {
                let fault = fault.to_string();
                (self.rng.gen::<f64>() < rate).then_some(fault)
            }
            None => None,
        };
        self.boots.submitted += 1;
        self.instances.insert(
            id,
            Instance {
                resources,
                gen: 0,
                phase: Phase::Building,
                host: None,
                claimed: false,
                holds_slot: false,
                attempts: 0,
                tried: Vec::new(),
                delete_requested: false,
                spawn_done: false,
                vif_done: false,
                injected,
                submitted_at: self.now,
            },
        );
        self.emit(Effect::TaskState {
            instance: id,
            task_state: TaskState::Scheduling,
        });
        let s = self.profile.conductor.build_s;
        let msgs = self.profile.bus.build_msgs;
        self.send(
            Stage::BUS,
            msgs,
            Hop::Station {
                stage: Stage::CONDUCTOR,
                kind: JobKind::Build { inst: id, gen: 0 },
                base_s: s,
                deadline: None,
            },
        );
    }

    fn on_stage_done(&mut self, id: JobId) {
        // A frozen controller finishes nothing: the rest of the service runs
        // after the freeze.
        if let Some(w) = self.frozen() {
            self.push(w.end_s + (self.now - w.start_s), Ev::StageDone { job: id });
            return;
        }
        let Some(mut job) = self.jobs.remove(&id) else {
            return;
        };
        job.done = true;
        let worker = job.worker.unwrap_or(0);
        self.stations[job.stage.0].finish(worker, job.abandoned);
        self.release_admission(job.stage, job.holds_conn, job.holds_thread);
        let abandoned = job.abandoned;
        self.dispatch_done(job.kind, worker, abandoned);
        self.try_start(job.stage);
    }

    /// A job waited `pool_timeout_s` for a DB connection: it fails
    /// (`QueuePool limit … reached`), and so does what it was for.
    fn on_pool_timeout(&mut self, id: JobId) {
        if let Some(w) = self.frozen() {
            self.push(
                w.end_s + (self.now - w.start_s),
                Ev::PoolTimeout { job: id },
            );
            return;
        }
        if !self.jobs.get(&id).is_some_and(|j| j.waiting_conn) {
            return;
        }
        let Some(job) = self.jobs.remove(&id) else {
            return;
        };
        let i = job.stage.0;
        if let Some(a) = self.admission.get_mut(i) {
            a.conn_waiting = a.conn_waiting.saturating_sub(1);
            a.pool_timeouts += 1;
        }
        self.release_admission(job.stage, false, job.holds_thread);
        self.try_start(job.stage);
        let fault = self.db_pool_fault();
        let abandoned = job.abandoned;
        match job.kind {
            JobKind::Api { req } => {
                if !abandoned {
                    self.api.rejected_db_pool_500 += 1;
                    self.emit(Effect::ApiRejected {
                        req,
                        status: 500,
                        message: format!(
                            "Unexpected API Error. <class 'sqlalchemy.exc.TimeoutError'>: {fault}"
                        ),
                    });
                }
            }
            JobKind::Build { inst, gen } | JobKind::Cast { inst, gen, .. } => {
                if self.live(inst, gen).is_some() {
                    self.fail_build(inst, fault);
                }
            }
            JobKind::Schedule { inst, gen } | JobKind::Complete { inst, gen } => {
                if !abandoned && self.live(inst, gen).is_some() {
                    self.fail_build(inst, fault);
                }
            }
            JobKind::PortCreate { inst, gen } => {
                if self.live(inst, gen).is_some() {
                    self.fail_build(inst, format!("Build of instance {inst} aborted: {fault}"));
                }
            }
            // The device-up never reaches nova: the VIF timeout decides.
            JobKind::DeviceUp { .. } => {}
            // Deletes are not failed here (their retries are not modelled).
            kind @ (JobKind::PortDelete { .. } | JobKind::DeleteRecord { .. }) => {
                self.dispatch_done(kind, 0, abandoned);
            }
            JobKind::Report { node } => {
                if let Some(n) = self.nodes.get_mut(node) {
                    n.report_outstanding = false;
                }
            }
            JobKind::Tracker { node, .. } => {
                if let Some(n) = self.nodes.get_mut(node) {
                    n.tracker_outstanding = false;
                }
            }
            JobKind::AgentReport { node } => {
                if let Some(n) = self.nodes.get_mut(node) {
                    n.agent_outstanding = false;
                }
            }
            JobKind::Bus { .. } => {}
        }
    }

    fn dispatch_done(&mut self, kind: JobKind, worker: u32, abandoned: bool) {
        match kind {
            JobKind::Api { req } => {
                if !abandoned {
                    self.api.done += 1;
                    self.emit(Effect::ApiDone { req });
                }
            }
            JobKind::Build { inst, gen } => self.on_build_done(inst, gen),
            JobKind::Schedule { inst, gen } => {
                if !abandoned {
                    self.on_schedule_done(inst, gen, worker);
                }
            }
            JobKind::Cast { inst, gen, node } => {
                let msgs = self.profile.bus.compute_cast_msgs;
                let bus = self.layout.cell_bus(node);
                self.send(bus, msgs, Hop::Node { inst, gen, node });
            }
            JobKind::Bus { hop } => self.deliver(*hop, abandoned),
            JobKind::PortCreate { inst, gen } => self.on_port_created(inst, gen),
            JobKind::DeviceUp { inst, gen } => {
                if let Some(i) = self.live(inst, gen) {
                    i.vif_done = true;
                    self.maybe_finish_spawn(inst);
                }
            }
            JobKind::Complete { inst, gen } => {
                if !abandoned {
                    self.on_complete_done(inst, gen);
                }
            }
            JobKind::PortDelete { inst, gen } => {
                if let Some(host) = self.live(inst, gen).map(|i| i.host) {
                    let s = self.profile.conductor.delete_s;
                    let msgs = self.profile.bus.delete_msgs;
                    let (bus, conductor) = self.cell_of(host);
                    self.send(
                        bus,
                        msgs,
                        Hop::Station {
                            stage: conductor,
                            kind: JobKind::DeleteRecord { inst, gen },
                            base_s: s,
                            deadline: None,
                        },
                    );
                }
            }
            JobKind::DeleteRecord { inst, gen } => {
                if self.live(inst, gen).is_some() {
                    self.finish_delete(inst);
                }
            }
            JobKind::Report { node } => {
                if let Some(n) = self.nodes.get_mut(node) {
                    n.report_outstanding = false;
                    if n.up {
                        n.last_report = self.now;
                    }
                }
            }
            JobKind::Tracker { node, usage } => {
                let lag = self.profile.scheduler.host_state_lag_s;
                let now = self.now;
                if let Some(n) = self.nodes.get_mut(node) {
                    n.tracker_outstanding = false;
                    if n.up {
                        n.write_record(now, usage, lag);
                    }
                }
            }
            JobKind::AgentReport { node } => {
                if let Some(n) = self.nodes.get_mut(node) {
                    n.agent_outstanding = false;
                }
            }
        }
    }

    fn on_job_timeout(&mut self, id: JobId) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if job.done {
            return;
        }
        job.abandoned = true;
        match job.kind.target().clone() {
            JobKind::Api { req } => {
                self.api.rejected_timeout_504 += 1;
                self.emit(Effect::ApiRejected {
                    req,
                    status: 504,
                    message: "Gateway Timeout: the compute API did not answer in time".into(),
                });
            }
            JobKind::Schedule { inst, gen } | JobKind::Complete { inst, gen }
                if self.live(inst, gen).is_some() =>
            {
                let msg_id: u128 = self.rng.gen();
                let fault = format!(
                    "MessagingTimeout: Timed out waiting for a reply to message ID {msg_id:032x}"
                );
                self.fail_build(inst, fault);
            }
            _ => {}
        }
    }

    // ----- boot path ------------------------------------------------------

    fn on_build_done(&mut self, inst: InstanceId, gen: u32) {
        let max_attempts = self.profile.scheduler.max_attempts;
        let Some(i) = self.live(inst, gen) else {
            return;
        };
        if i.delete_requested {
            self.finish_delete(inst);
            return;
        }
        // populate_retry: the conductor refuses a further attempt.
        if i.attempts >= max_attempts {
            self.fail_build(inst, NO_VALID_HOST_RETRIES.to_string());
            return;
        }
        i.attempts += 1;
        let considered = self
            .nodes
            .len()
            .min(self.profile.scheduler.max_hosts_considered as usize);
        let s =
            self.profile.scheduler.base_s + self.profile.scheduler.per_host_s * considered as f64;
        let timeout = self.profile.conductor.rpc_response_timeout_s;
        let msgs = self.profile.bus.schedule_msgs;
        self.send(
            Stage::BUS,
            msgs,
            Hop::Station {
                stage: Stage::SCHEDULER,
                kind: JobKind::Schedule { inst, gen },
                base_s: s,
                deadline: Some(self.now + timeout),
            },
        );
    }

    fn on_schedule_done(&mut self, inst: InstanceId, gen: u32, worker: u32) {
        let considered = self
            .nodes
            .len()
            .min(self.profile.scheduler.max_hosts_considered as usize);
        let down = self.profile.background.service_down_time_s;
        let now = self.now;
        let Some(i) = self.instances.get(&inst).filter(|i| i.gen == gen) else {
            return;
        };
        if i.delete_requested {
            self.finish_delete(inst);
            return;
        }
        let (req, tried) = (i.resources, i.tried.clone());
        // Only draw from the RNG when the cap bites, so small runs keep their stream.
        let offset = if considered < self.nodes.len() {
            self.rng.gen_range(0..self.nodes.len())
        } else {
            0
        };
        let Some(views) = self.views.get_mut(worker as usize) else {
            return;
        };
        let chosen = scheduler::choose(
            views,
            &mut self.nodes,
            offset,
            considered,
            &req,
            &tried,
            now,
            down,
        );
        let Some(node) = chosen else {
            self.fail_build(inst, NO_VALID_HOST.to_string());
            return;
        };
        // The conductor creates the instance records and casts to the compute;
        // until that cast is claimed, other scheduler workers cannot see it.
        let s = self.profile.conductor.after_schedule_s;
        self.enqueue(Stage::CONDUCTOR, JobKind::Cast { inst, gen, node }, s, None);
    }

    /// `build_and_run_instance` reached the compute: queue for a build slot.
    fn on_cast_arrived(&mut self, inst: InstanceId, gen: u32, node: usize) {
        let up = self.nodes.get(node).is_some_and(|n| n.up);
        let Some(i) = self.live(inst, gen) else {
            return;
        };
        if i.delete_requested {
            self.finish_delete(inst);
            return;
        }
        i.host = Some(node);
        if !up {
            // The cast sits in a queue nobody reads: the instance stays in BUILD.
            i.phase = Phase::Stuck;
            self.boots.lost_in_transit += 1;
            return;
        }
        self.nodes[node].build_queue.push_back(inst);
        self.start_builds(node);
    }

    /// Give free build slots to queued builds; each claims on entry.
    fn start_builds(&mut self, node: usize) {
        let max = self.profile.compute.max_concurrent_builds;
        while self.nodes[node].up && self.nodes[node].building < max {
            let Some(inst) = self.nodes[node].build_queue.pop_front() else {
                return;
            };
            let Some(i) = self.instances.get(&inst) else {
                continue;
            };
            if i.delete_requested {
                self.finish_delete(inst);
                continue;
            }
            let req = i.resources;
            let lag = self.profile.scheduler.host_state_lag_s;
            let now = self.now;
            let n = &mut self.nodes[node];
            if n.claim(&req) {
                n.building += 1;
                n.max_building_seen = n.max_building_seen.max(n.building);
                let used = n.used;
                n.write_record(now, used, lag);
                let gen = match self.instances.get_mut(&inst) {
                    Some(i) => {
                        i.claimed = true;
                        i.holds_slot = true;
                        i.gen
                    }
                    None => continue,
                };
                let host = self.nodes[node].spec.name.clone();
                self.emit(Effect::Scheduled {
                    instance: inst,
                    host,
                });
                self.emit(Effect::TaskState {
                    instance: inst,
                    task_state: TaskState::Networking,
                });
                let s = self.profile.networking.port_create_s;
                self.enqueue(
                    Stage::NETWORKING,
                    JobKind::PortCreate { inst, gen },
                    s,
                    None,
                );
            } else {
                // RescheduledException: back to the conductor, this host excluded.
                self.boots.reschedules += 1;
                let gen = match self.instances.get_mut(&inst) {
                    Some(i) => {
                        i.tried.push(node);
                        i.host = None;
                        i.gen
                    }
                    None => continue,
                };
                let s = self.profile.conductor.build_s;
                let msgs = self.profile.bus.build_msgs;
                // Cells v2 retries an alternate host from the cell conductor;
                // the model (monolith and cells alike) goes back to the
                // scheduler, so a reschedule is a new build at the top.
                self.send(
                    Stage::BUS,
                    msgs,
                    Hop::Station {
                        stage: Stage::CONDUCTOR,
                        kind: JobKind::Build { inst, gen },
                        base_s: s,
                        deadline: None,
                    },
                );
            }
        }
    }

    fn on_port_created(&mut self, inst: InstanceId, gen: u32) {
        let Some(i) = self.live(inst, gen) else {
            return;
        };
        let Some(node) = i.host else { return };
        self.emit(Effect::TaskState {
            instance: inst,
            task_state: TaskState::Spawning,
        });
        match &mut self.nodes[node].image {
            ImageCache::Cached => self.start_spawn(inst),
            ImageCache::Downloading(waiters) => waiters.push(inst),
            ImageCache::Absent => {
                self.nodes[node].image = ImageCache::Downloading(vec![inst]);
                self.image_downloads += 1;
                let at = self.now + self.profile.compute.first_boot_image_s;
                self.push(at, Ev::ImageReady { node });
            }
        }
    }

    fn on_image_ready(&mut self, node: usize) {
        let waiters = match std::mem::replace(&mut self.nodes[node].image, ImageCache::Cached) {
            ImageCache::Downloading(w) => w,
            _ => Vec::new(),
        };
        for inst in waiters {
            if self
                .instances
                .get(&inst)
                .is_some_and(|i| i.phase == Phase::Building)
            {
                self.start_spawn(inst);
            }
        }
    }

    /// Spawn and VIF plugging run in parallel; nova waits for both
    /// (the domain starts paused until `network-vif-plugged` arrives).
    fn start_spawn(&mut self, inst: InstanceId) {
        let Some(gen) = self.instances.get(&inst).map(|i| i.gen) else {
            return;
        };
        self.spawns_started += 1;
        let c = self.profile.compute.clone();
        let n = self.profile.networking.clone();
        let spawn = self.lognormal(c.spawn_median_s, c.spawn_sigma)
            + self.faults.set.extra_latency.compute_s;
        let agent = self.lognormal(n.agent_delay_median_s, n.agent_delay_sigma);
        self.push(self.now + spawn, Ev::SpawnDone { inst, gen });
        self.push(self.now + agent, Ev::AgentSeen { inst, gen });
        self.push(
            self.now + n.vif_plugging_timeout_s,
            Ev::VifTimeout { inst, gen },
        );
    }

    fn on_vif_timeout(&mut self, inst: InstanceId, gen: u32) {
        let fatal = self.profile.networking.vif_plugging_is_fatal;
        let Some(i) = self.live(inst, gen) else {
            return;
        };
        if i.vif_done || i.phase != Phase::Building {
            return;
        }
        if fatal {
            self.fail_build(
                inst,
                format!("Build of instance {inst} aborted: {VIF_FAILED}"),
            );
        } else {
            i.vif_done = true;
            self.maybe_finish_spawn(inst);
        }
    }

    fn maybe_finish_spawn(&mut self, inst: InstanceId) {
        let Some(i) = self.instances.get_mut(&inst) else {
            return;
        };
        if !(i.spawn_done && i.vif_done) || i.phase != Phase::Building {
            return;
        }
        // Guard against a second trigger (both flags already set).
        i.spawn_done = false;
        let gen = i.gen;
        if let Some(fault) = i.injected.take() {
            self.fail_build(inst, fault);
            return;
        }
        let host = i.host;
        let s = self.profile.conductor.complete_s;
        let timeout = self.profile.conductor.rpc_response_timeout_s;
        let msgs = self.profile.bus.complete_msgs;
        let (bus, conductor) = self.cell_of(host);
        self.send(
            bus,
            msgs,
            Hop::Station {
                stage: conductor,
                kind: JobKind::Complete { inst, gen },
                base_s: s,
                deadline: Some(self.now + timeout),
            },
        );
    }

    fn on_complete_done(&mut self, inst: InstanceId, gen: u32) {
        let now = self.now;
        let Some(i) = self.live(inst, gen) else {
            return;
        };
        let node = i.host;
        let delete = i.delete_requested;
        i.phase = Phase::Active;
        let took = now - i.submitted_at;
        self.release_slot(inst);
        let Some(node) = node else { return };
        if delete {
            self.begin_delete(inst);
            return;
        }
        self.boots.active += 1;
        self.active_time_total += took;
        let host = self.nodes[node].spec.name.clone();
        self.emit(Effect::Active {
            instance: inst,
            host,
        });
    }

    fn release_slot(&mut self, inst: InstanceId) {
        let Some(i) = self.instances.get_mut(&inst) else {
            return;
        };
        if !i.holds_slot {
            return;
        }
        i.holds_slot = false;
        if let Some(node) = i.host {
            self.nodes[node].building = self.nodes[node].building.saturating_sub(1);
            self.start_builds(node);
        }
    }

    /// Free what a build held and put it in ERROR (or just delete it if the
    /// user already asked for that).
    fn fail_build(&mut self, inst: InstanceId, fault: String) {
        self.release_slot(inst);
        let lag = self.profile.scheduler.host_state_lag_s;
        let now = self.now;
        let Some(i) = self.instances.get_mut(&inst) else {
            return;
        };
        i.gen += 1;
        i.phase = Phase::Error;
        let host = if i.claimed { i.host } else { None };
        if i.claimed {
            i.claimed = false;
            if let Some(node) = i.host {
                let n = &mut self.nodes[node];
                n.release(&i.resources);
                let used = n.used;
                n.write_record(now, used, lag);
            }
        }
        if i.delete_requested {
            self.remove_deleted(inst);
            return;
        }
        self.boots.errors += 1;
        *self
            .boots
            .errors_by_reason
            .entry(FaultReason::classify(&fault).label().to_string())
            .or_insert(0) += 1;
        let host = host.map(|n| self.nodes[n].spec.name.clone());
        self.emit(Effect::Error {
            instance: inst,
            fault,
            host,
        });
    }

    // ----- delete path ----------------------------------------------------

    fn on_delete(&mut self, inst: InstanceId) {
        self.boots.deletes += 1;
        let Some(i) = self.instances.get_mut(&inst) else {
            self.invalid_inputs += 1;
            return;
        };
        match i.phase {
            Phase::Deleting => {}
            // A local delete; it still returns a claim the instance held
            // (an ACTIVE instance whose host was lost keeps its claim).
            Phase::Error | Phase::Stuck => self.finish_delete(inst),
            Phase::Building => {
                if !i.delete_requested {
                    i.delete_requested = true;
                    self.emit(Effect::TaskState {
                        instance: inst,
                        task_state: TaskState::Deleting,
                    });
                }
            }
            Phase::Active => {
                self.emit(Effect::TaskState {
                    instance: inst,
                    task_state: TaskState::Deleting,
                });
                self.begin_delete(inst);
            }
        }
    }

    /// Compute destroys the domain, neutron deletes the port, the conductor
    /// destroys the record; a lost host means a local delete at the API.
    fn begin_delete(&mut self, inst: InstanceId) {
        let destroy = self.profile.compute.destroy_s;
        let Some(i) = self.instances.get_mut(&inst) else {
            return;
        };
        i.phase = Phase::Deleting;
        i.gen += 1;
        let gen = i.gen;
        match i.host {
            Some(node) if self.nodes[node].up => {
                self.push(self.now + destroy, Ev::DestroyDone { inst, gen });
            }
            _ => self.finish_delete(inst),
        }
    }

    fn finish_delete(&mut self, inst: InstanceId) {
        self.release_slot(inst);
        let lag = self.profile.scheduler.host_state_lag_s;
        let now = self.now;
        if let Some(i) = self.instances.get_mut(&inst) {
            if i.claimed {
                i.claimed = false;
                if let Some(node) = i.host {
                    let n = &mut self.nodes[node];
                    n.release(&i.resources);
                    let used = n.used;
                    n.write_record(now, used, lag);
                }
            }
        }
        self.remove_deleted(inst);
    }

    fn remove_deleted(&mut self, inst: InstanceId) {
        if self.instances.remove(&inst).is_some() {
            self.boots.deleted += 1;
            self.emit(Effect::Deleted { instance: inst });
        }
    }

    // ----- faults ---------------------------------------------------------

    fn lose_node(&mut self, name: &str) {
        let Some(node) = self.nodes.iter().position(|n| n.spec.name == name) else {
            self.invalid_inputs += 1;
            return;
        };
        if !self.nodes[node].up {
            return;
        }
        self.nodes[node].up = false;
        let fault = format!("Compute host {name} lost");
        let on_node: Vec<InstanceId> = self
            .instances
            .iter()
            .filter(|(_, i)| {
                i.host == Some(node) && i.phase != Phase::Stuck && i.phase != Phase::Error
            })
            .map(|(id, _)| *id)
            .collect();
        self.nodes[node].build_queue.clear();
        for inst in on_node {
            let Some(i) = self.instances.get_mut(&inst) else {
                continue;
            };
            match i.phase {
                Phase::Building => {
                    // The build slot and claim die with the node.
                    i.holds_slot = false;
                    self.fail_build(inst, fault.clone());
                }
                Phase::Active => {
                    i.phase = Phase::Error;
                    i.gen += 1;
                    self.boots.errors += 1;
                    *self
                        .boots
                        .errors_by_reason
                        .entry(FaultReason::HostLost.label().to_string())
                        .or_insert(0) += 1;
                    self.emit(Effect::Error {
                        instance: inst,
                        fault: fault.clone(),
                        host: Some(name.to_string()),
                    });
                }
                Phase::Deleting => self.remove_deleted(inst),
                Phase::Error | Phase::Stuck => {}
            }
        }
        self.nodes[node].building = 0;
    }

    // ----- background load ------------------------------------------------

    fn on_report_due(&mut self, node: usize) {
        let bg = self.profile.background.clone();
        self.push(self.now + bg.report_interval_s, Ev::ReportDue { node });
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        if !n.up {
            return;
        }
        if n.report_outstanding {
            self.background.skipped += 1;
            return;
        }
        n.report_outstanding = true;
        self.background.service_reports += 1;
        let msgs = self.profile.bus.report_msgs;
        let (bus, conductor) = self.cell_of(Some(node));
        self.send(
            bus,
            msgs,
            Hop::Station {
                stage: conductor,
                kind: JobKind::Report { node },
                base_s: bg.report_cost_s,
                deadline: None,
            },
        );
    }

    fn on_tracker_due(&mut self, node: usize) {
        let bg = self.profile.background.clone();
        self.push(
            self.now + bg.resource_tracker_interval_s,
            Ev::TrackerDue { node },
        );
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        if !n.up {
            return;
        }
        if n.tracker_outstanding {
            self.background.skipped += 1;
            return;
        }
        n.tracker_outstanding = true;
        // The usage is computed now and written when the conductor gets to it.
        let usage = n.used;
        let cost = bg.resource_tracker_cost_s
            + bg.resource_tracker_per_instance_s * f64::from(n.instances);
        self.background.tracker_updates += 1;
        let msgs = self.profile.bus.tracker_msgs;
        let (bus, conductor) = self.cell_of(Some(node));
        self.send(
            bus,
            msgs,
            Hop::Station {
                stage: conductor,
                kind: JobKind::Tracker { node, usage },
                base_s: cost,
                deadline: None,
            },
        );
    }

    fn on_agent_report_due(&mut self, node: usize) {
        let bg = self.profile.background.clone();
        self.push(
            self.now + bg.agent_report_interval_s,
            Ev::AgentReportDue { node },
        );
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        if !n.up {
            return;
        }
        if n.agent_outstanding {
            self.background.skipped += 1;
            return;
        }
        n.agent_outstanding = true;
        self.background.agent_reports += 1;
        let msgs = self.profile.bus.agent_report_msgs;
        self.send(
            Stage::BUS,
            msgs,
            Hop::Station {
                stage: Stage::NETWORKING,
                kind: JobKind::AgentReport { node },
                base_s: bg.agent_report_cost_s,
                deadline: None,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let nodes = vec![NodeSpec::with_default_ratios("n0", 8, 16_384, 100)];
        let profile = match Profile::builtin("devstack") {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        match Engine::new(profile, nodes, 1) {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        }
    }

    /// Events leave the heap and the timeout FIFO in one (time, sequence)
    /// order, whichever queue holds them, so the FIFO changes no result.
    #[test]
    fn heap_and_timeout_fifo_merge_in_time_then_submission_order() {
        let mut e = engine();
        // Background events of the node already sit in the heap.
        e.heap.clear();
        let plan: [(f64, bool); 9] = [
            (5.0, true),
            (3.0, true), // earlier than the FIFO's last: goes to the heap
            (5.0, true), // a tie with the first: after it (submitted later)
            (4.0, false),
            (5.0, false),
            (7.0, true),
            (6.0, true), // to the heap
            (7.0, false),
            (1.0, false),
        ];
        for (i, &(at, timeout)) in plan.iter().enumerate() {
            let ev = Ev::JobTimeout {
                job: 1000 + i as u64,
            };
            if timeout {
                e.push_timeout(at, ev);
            } else {
                e.push(at, ev);
            }
        }
        assert_eq!(
            e.timeouts.len(),
            3,
            "the timeouts due at 5, 5 and 7 are in order"
        );
        assert_eq!(e.next_deadline(), Some(1.0));
        let mut got = Vec::new();
        while let Some(s) = e.pop_due(6.5) {
            let Ev::JobTimeout { job } = s.ev else {
                panic!("unexpected event")
            };
            got.push((s.at, job - 1000));
        }
        assert_eq!(
            got,
            vec![
                (1.0, 8),
                (3.0, 1),
                (4.0, 3),
                (5.0, 0),
                (5.0, 2),
                (5.0, 4),
                (6.0, 6)
            ]
        );
        assert_eq!(e.next_deadline(), Some(7.0));
        let rest: Vec<u64> = std::iter::from_fn(|| e.pop_due(f64::MAX))
            .filter_map(|s| match s.ev {
                Ev::JobTimeout { job } => Some(job - 1000),
                _ => None,
            })
            .collect();
        assert_eq!(rest, vec![5, 7]);
    }
}
