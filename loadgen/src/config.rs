//! What a run does: the experiment's configuration and its hooks.

use serde::{Deserialize, Serialize};

/// How boot workflows are spread over the entry points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryPolicy {
    /// Every request to the first entry.
    Single,
    /// Request `i` to entry `i mod n`.
    #[default]
    RoundRobin,
    /// A seeded random entry per request.
    Random,
}

impl EntryPolicy {
    pub fn name(self) -> &'static str {
        match self {
            EntryPolicy::Single => "single",
            EntryPolicy::RoundRobin => "round-robin",
            EntryPolicy::Random => "random",
        }
    }
}

impl std::str::FromStr for EntryPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "single" => Ok(Self::Single),
            "round-robin" | "roundrobin" | "rr" => Ok(Self::RoundRobin),
            "random" => Ok(Self::Random),
            other => Err(format!(
                "unknown entry policy {other:?} (single, round-robin, random)"
            )),
        }
    }
}

/// Something that happened during a run, for a testbed that wants to act
/// at a precise moment (e.g. stop cloudlets in the middle of a level).
#[derive(Debug, Clone, PartialEq)]
pub enum LevelEvent {
    /// Level `index` (0-based) of size `level` is about to send its requests.
    Started { index: usize, level: u32 },
    /// Every request of the level has been sent (burst) or scheduled.
    AllSent { index: usize, level: u32 },
    /// Every boot POST of burst level `index` has been answered (accepted,
    /// refused or failed): the boots the client knows of are in flight.
    AllAnswered { index: usize, level: u32 },
    /// Every boot workflow of the level is final; cleanup follows.
    BootsFinal {
        index: usize,
        level: u32,
        succeeded: u32,
    },
    /// Cleanup and audit done.
    Finished {
        index: usize,
        level: u32,
        clean: bool,
    },
}

/// Where [`LevelEvent`]s go. Sending never blocks the run.
pub type EventSender = tokio::sync::mpsc::UnboundedSender<LevelEvent>;

/// Configuration shared by every experiment. Durations are model seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BurstConfig {
    /// Burst sizes, in order (`boot-burst`). Ignored by `boot-delete`.
    pub levels: Vec<u32>,
    /// Flavor name or ID.
    pub flavor: String,
    /// Image name or ID.
    pub image: String,
    /// Network name or ID; `None` lets Nova choose.
    pub network: Option<String>,
    /// Mean interval between `GET /servers/{id}` polls (jittered ±10 %).
    pub poll_interval_s: f64,
    /// A boot that is not final this long after its (intended) start is a timeout.
    pub poll_timeout_s: f64,
    /// Longest wait for a deleted server to be gone (404).
    pub delete_timeout_s: f64,
    /// Pause between two levels, after the audit.
    pub pause_between_levels_s: f64,
    pub seed: u64,
    /// Wall seconds per model second; `None`: ask the target's
    /// `/mock/v1/info`, else 1.
    pub time_scale: Option<f64>,
    /// No progress bars.
    pub quiet: bool,
    /// Keep one record per request in the results.
    pub record_requests: bool,
    /// Server names are `<prefix>-<run id>-l<level index>-<request index>`.
    pub name_prefix: String,
    /// Page size of the audit's server list.
    pub audit_page_size: u32,
    /// Ask for servers of every project in the audit (admin only).
    pub audit_all_tenants: bool,
    /// Audit at every entry, not only the first that answers. Needed when
    /// the entries are separate clouds; a federation (P2P agents) shows
    /// every server at any entry.
    #[serde(default)]
    pub audit_every_entry: bool,
    /// Before the cleanup of each level, look for accepted boots that no
    /// live entry shows (`LevelResult.durability.lost`; chaos scenarios).
    #[serde(default)]
    pub check_lost: bool,
    /// Filled into the results as is.
    #[serde(skip)]
    pub system: results::SystemInfo,
    #[serde(skip)]
    pub command_line: Vec<String>,
    /// The caller (e.g. `testbed compare`) measures the host and fills
    /// `host.*` itself: loadgen then leaves those fields empty, so that each
    /// results field has one writer.
    #[serde(skip)]
    pub host_measured_by_caller: bool,
    /// Per-level events (optional).
    #[serde(skip)]
    pub events: Option<EventSender>,
}

impl Default for BurstConfig {
    fn default() -> Self {
        Self {
            levels: vec![16, 32, 64],
            flavor: "m1.tiny".into(),
            image: "cirros-0.6.2-x86_64-disk".into(),
            network: Some("private".into()),
            poll_interval_s: 2.0,
            poll_timeout_s: 300.0,
            delete_timeout_s: 120.0,
            pause_between_levels_s: 0.0,
            seed: 1,
            time_scale: None,
            quiet: true,
            record_requests: true,
            name_prefix: "lg".into(),
            audit_page_size: 1000,
            audit_all_tenants: false,
            audit_every_entry: false,
            check_lost: false,
            system: results::SystemInfo::default(),
            command_line: Vec::new(),
            host_measured_by_caller: false,
            events: None,
        }
    }
}

impl BurstConfig {
    /// Rejects values that make no sense, with one line.
    pub fn validate(&self) -> Result<(), crate::LoadgenError> {
        let bad = |m: &str| Err(crate::LoadgenError::Config(m.to_string()));
        if !(self.poll_interval_s.is_finite() && self.poll_interval_s > 0.0) {
            return bad("--poll-interval must be a positive number of model seconds");
        }
        if !(self.poll_timeout_s.is_finite() && self.poll_timeout_s > 0.0) {
            return bad("--poll-timeout must be a positive number of model seconds");
        }
        if !(self.delete_timeout_s.is_finite() && self.delete_timeout_s > 0.0) {
            return bad("--delete-timeout must be a positive number of model seconds");
        }
        if let Some(t) = self.time_scale {
            if !(t.is_finite() && t > 0.0) {
                return bad("--time-scale must be a positive number");
            }
        }
        if self.flavor.is_empty() || self.image.is_empty() {
            return bad("--flavor and --image are required");
        }
        Ok(())
    }
}

/// Load model of `boot-delete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BootDeleteModel {
    /// Each of `concurrency` workers loops boot → ACTIVE/ERROR → delete → gone
    /// for `duration_s` (one level per concurrency value), like Rally's
    /// `constant_for_duration`.
    Closed {
        concurrency: Vec<u32>,
        duration_s: f64,
    },
    /// Arrivals at fixed times `k / rate` for `duration_s` (one level per
    /// rate). Latency counts from the intended start. When `max_in_flight`
    /// workflows are running a start waits up to `max_lateness_s` for a slot
    /// (a late start) and is dropped after that.
    Open {
        rates: Vec<f64>,
        duration_s: f64,
        max_in_flight: u32,
        max_lateness_s: f64,
    },
}

/// `boot-delete` = the common configuration + a load model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootDeleteConfig {
    #[serde(flatten)]
    pub base: BurstConfig,
    pub model: BootDeleteModel,
}
