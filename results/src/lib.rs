//! The results file of one loadgen run (schema `p2pstack/loadgen-results`).
//!
//! One JSON document per run: what was run (configuration, target, seed, time
//! scale, versions), and per level the counts, latency summaries, serialized
//! HdrHistograms and per-request records. Every duration is in **model
//! seconds** (wall seconds divided by the run's `time_scale`; with
//! `time_scale = 1` they are wall seconds). `docs/results-schema.md` documents
//! each field; bump [`SCHEMA_VERSION`] on any incompatible change.

use std::collections::BTreeMap;

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

pub const SCHEMA_NAME: &str = "p2pstack/loadgen-results";
pub const SCHEMA_VERSION: u32 = 1;

/// Histogram values are recorded in microseconds of model time.
pub const HISTOGRAM_UNIT_PER_SECOND: f64 = 1_000_000.0;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunResults {
    /// Always [`SCHEMA_NAME`].
    pub schema: String,
    /// Always [`SCHEMA_VERSION`] for files this code writes.
    pub schema_version: u32,
    pub tool: ToolInfo,
    /// `boot-burst` or `boot-delete`.
    pub experiment: String,
    pub system: SystemInfo,
    pub target: TargetInfo,
    /// The run's full configuration, as the tool resolved it.
    pub config: serde_json::Value,
    /// argv of the command that produced the file.
    pub command_line: Vec<String>,
    pub seed: u64,
    /// Wall seconds per model second (0.02: one model second took 20 ms).
    pub time_scale: f64,
    /// Where `time_scale` came from: `flag`, `target` (`/mock/v1/info`) or `default`.
    pub time_scale_source: String,
    /// Wall-clock RFC 3339 timestamps.
    pub started_at: String,
    pub finished_at: String,
    /// False when the run was interrupted or failed part way.
    pub complete: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete_reason: Option<String>,
    pub host: HostInfo,
    pub levels: Vec<LevelResult>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub git_revision: Option<String>,
}

/// What system was measured. Filled by loadgen from flags and by the
/// testbed, which knows the topology.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SystemInfo {
    /// Short label used in reports, e.g. `standard` or `p2p`.
    pub label: String,
    /// `standard`, `p2p` or `external`.
    #[serde(default)]
    pub kind: Option<String>,
    /// `embedded`, `docker` or `external`.
    #[serde(default)]
    pub backend: Option<String>,
    /// Number of cloudlets (P2P) or 1.
    #[serde(default)]
    pub cloudlets: Option<u32>,
    /// Total compute nodes.
    #[serde(default)]
    pub computes: Option<u32>,
    #[serde(default)]
    pub profile: Option<String>,
    /// 64-bit FNV-1a hash of the effective profile's TOML, 16 hex digits
    /// (`cp_model::Profile::hash`).
    #[serde(default)]
    pub profile_hash: Option<String>,
    /// Agent retry bound (P2P only).
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub scenario: Option<String>,
    /// What the scenario did to this system, in words (chaos scenarios:
    /// which members were disturbed, when and how long; or why the
    /// scenario does not apply to this system).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario_detail: Option<String>,
    /// The compute capacity deployed (written by the testbed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Capacity>,
}

/// vCPUs, RAM and disk of one node or of a whole system.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Resources {
    pub vcpus: u64,
    pub ram_mb: u64,
    pub disk_gb: u64,
}

/// The compute capacity of a system: what was deployed, and what the system
/// itself reports through its API.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Capacity {
    /// Deployments (OpenStack control planes): 1 for the monolith, one per
    /// cloudlet for P2P. Every deployment has the same shape.
    pub deployments: u32,
    /// Compute nodes in each deployment.
    pub nodes_per_deployment: u32,
    /// One compute node as deployed (before allocation ratios).
    pub node: Resources,
    /// Where the node size comes from (e.g. the profile and its source).
    #[serde(default)]
    pub node_source: String,
    /// Nodes of all deployments together.
    pub total_nodes: u32,
    /// Resources of all deployments together.
    pub total: Resources,
    /// As the system reports it (`GET /os-hypervisors/statistics` at an
    /// entry point, after the testbed started); `None` when not asked.
    #[serde(default)]
    pub reported: Option<ReportedCapacity>,
}

/// `GET /os-hypervisors/statistics` as one entry point answered it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReportedCapacity {
    /// The auth URL of the entry point asked.
    pub entry: String,
    /// `count`: hypervisors (compute nodes) the system knows.
    pub hypervisors: u64,
    pub vcpus: u64,
    pub memory_mb: u64,
    pub local_gb: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TargetInfo {
    /// Auth URLs used as entry points.
    pub entries: Vec<String>,
    /// `single`, `round-robin` or `random`.
    pub entry_policy: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub flavor: Option<String>,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub network: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HostInfo {
    pub cpus: u32,
    /// True when the host, not the system under test, limited the run.
    #[serde(default)]
    pub host_bound: Option<bool>,
    /// p99 of how late timers fired during the run, wall milliseconds.
    #[serde(default)]
    pub scheduler_lag_p99_ms: Option<f64>,
    #[serde(default)]
    pub scheduler_lag_max_ms: Option<f64>,
    /// Process CPU time over wall time (1.0 = one core busy).
    #[serde(default)]
    pub cpu_utilization: Option<f64>,
    /// Loadgen's own CPU seconds for the run.
    #[serde(default)]
    pub loadgen_cpu_seconds: Option<f64>,
    #[serde(default)]
    pub peak_rss_bytes: Option<u64>,
}

/// How one request ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The server reached ACTIVE.
    Active,
    /// The server reached ERROR; `message` holds the fault message.
    ErrorState,
    /// The boot POST (or a poll) got an HTTP error; `message` holds
    /// `"<status> <message from the body>"`.
    ApiError,
    /// Not final before the poll timeout.
    Timeout,
    /// No HTTP response at all (refused, reset, client timeout).
    TransportError,
    /// Open model only: the start was dropped because too many were in flight.
    Dropped,
}

impl Outcome {
    pub fn is_success(self) -> bool {
        matches!(self, Outcome::Active)
    }
}

/// Load model of a level (`boot-delete` experiment).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LoadModel {
    /// All `level` requests sent at once (`boot-burst`).
    Burst,
    /// `concurrency` workers loop boot→delete for `duration_s`.
    Closed { concurrency: u32, duration_s: f64 },
    /// Arrivals fixed in advance at `rate_per_s`; latency from intended start.
    Open { rate_per_s: f64, duration_s: f64 },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LevelResult {
    /// Concurrency level: burst size, closed concurrency, or open arrivals.
    pub level: u32,
    pub load_model: LoadModel,
    /// Boot workflows started (or scheduled, in the open model).
    pub requested: u32,
    /// Servers that reached ACTIVE.
    pub succeeded: u32,
    pub failed: u32,
    /// `failed / requested` (0 when nothing was requested).
    pub error_rate: f64,
    /// First request sent → last request final, model seconds.
    pub makespan_s: f64,
    /// Successful boots per model second of makespan.
    pub throughput_per_s: f64,
    /// Count per outcome.
    pub outcomes: BTreeMap<Outcome, u32>,
    /// Count per (outcome, message), most frequent first.
    pub errors: Vec<ErrorCount>,
    /// POST /servers response time.
    pub post_latency: LatencySummary,
    /// Request start (intended start in the open model) → ACTIVE seen.
    pub boot_time: LatencySummary,
    /// DELETE sent → 404 seen.
    pub delete_time: LatencySummary,
    /// Successful boots per host or cloudlet where known.
    pub placement: BTreeMap<String, u32>,
    /// Boots the agent placed on another cloudlet than the entry's, if known.
    #[serde(default)]
    pub placed_remotely: Option<u32>,
    /// Open model: starts sent later than intended (by more than one poll tick).
    #[serde(default)]
    pub late_starts: u32,
    /// Open model: starts dropped.
    #[serde(default)]
    pub dropped_starts: u32,
    /// Boot workflows in flight over time: (model seconds since level start, count).
    pub in_flight: Vec<(f64, u32)>,
    pub audit: Audit,
    /// Chaos scenarios: servers lost, orphaned or resurrected (see
    /// [`Durability`]); `None` when the level was not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durability: Option<Durability>,
    /// One record per request (may be omitted for very large runs).
    #[serde(default)]
    pub requests: Vec<RequestRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorCount {
    pub outcome: Outcome,
    pub message: String,
    pub count: u32,
}

/// The mechanism behind failed requests, named from how they ended (see
/// [`error_category`]). The root cause wins over the wrapper: an agent's
/// `No valid host was found. Tried …: 504 …` is an API timeout.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCategory {
    /// oslo.db pool exhausted: a checkout waited `pool_timeout` (`QueuePool limit … reached`).
    DbPoolTimeout,
    /// An RPC call waited past `rpc_response_timeout` (bus, scheduler or conductor queue).
    MessagingTimeout,
    /// The API did not answer within the load balancer's timeout (504).
    ApiTimeout,
    /// The API refused the call: backlog full or unavailable (503).
    ApiUnavailable,
    /// `network-vif-plugged` never came within `vif_plugging_timeout`, or the port failed.
    VifPlugging,
    /// Claims failed on every host tried: `max_attempts` reached.
    NoValidHostRetries,
    /// No host passed the filters (capacity exhausted, hosts down).
    NoValidHost,
    /// The compute host was lost.
    HostLost,
    /// A project quota.
    Quota,
    /// The client's poll timeout passed before the boot ended.
    ClientTimeout,
    /// No HTTP answer at all.
    Transport,
    /// Open model: the start was dropped.
    Dropped,
    /// A fault injected on purpose.
    Injected,
    Other,
}

impl ErrorCategory {
    pub fn label(self) -> &'static str {
        match self {
            ErrorCategory::DbPoolTimeout => "db_pool_timeout",
            ErrorCategory::MessagingTimeout => "messaging_timeout",
            ErrorCategory::ApiTimeout => "api_timeout",
            ErrorCategory::ApiUnavailable => "api_unavailable",
            ErrorCategory::VifPlugging => "vif_plugging",
            ErrorCategory::NoValidHostRetries => "no_valid_host_retries",
            ErrorCategory::NoValidHost => "no_valid_host",
            ErrorCategory::HostLost => "host_lost",
            ErrorCategory::Quota => "quota",
            ErrorCategory::ClientTimeout => "client_timeout",
            ErrorCategory::Transport => "transport",
            ErrorCategory::Dropped => "dropped",
            ErrorCategory::Injected => "injected",
            ErrorCategory::Other => "other",
        }
    }

    /// The mechanism, in words, for reports.
    pub fn mechanism(self) -> &'static str {
        match self {
            ErrorCategory::DbPoolTimeout => {
                "database connection pool exhausted (oslo.db pool timeout)"
            }
            ErrorCategory::MessagingTimeout => {
                "RPC call timed out (message bus, scheduler or conductor queue)"
            }
            ErrorCategory::ApiTimeout => "API workers saturated (504 at the API timeout)",
            ErrorCategory::ApiUnavailable => {
                "API refused the call (503: backlog full or unavailable)"
            }
            ErrorCategory::VifPlugging => "networking: VIF plugging timed out or the port failed",
            ErrorCategory::NoValidHostRetries => "claims failed on every host tried (max_attempts)",
            ErrorCategory::NoValidHost => "no valid host (capacity exhausted or hosts down)",
            ErrorCategory::HostLost => "compute host lost",
            ErrorCategory::Quota => "project quota",
            ErrorCategory::ClientTimeout => "client poll timeout (boot not finished in time)",
            ErrorCategory::Transport => "no HTTP answer (connection refused or reset)",
            ErrorCategory::Dropped => "start dropped by the load generator",
            ErrorCategory::Injected => "injected fault",
            ErrorCategory::Other => "other",
        }
    }
}

/// The category of a failed request from its outcome and message.
pub fn error_category(outcome: Outcome, message: &str) -> ErrorCategory {
    let m = message;
    match outcome {
        Outcome::Timeout => return ErrorCategory::ClientTimeout,
        Outcome::TransportError if !m.contains("QueuePool") => return ErrorCategory::Transport,
        Outcome::Dropped => return ErrorCategory::Dropped,
        _ => {}
    }
    let status = |code: &str| {
        m.starts_with(code)
            || m.contains(&format!(": {code} "))
            || m.contains(&format!("HTTP {code}"))
    };
    if m.contains("QueuePool limit") {
        ErrorCategory::DbPoolTimeout
    } else if m.contains("MessagingTimeout") {
        ErrorCategory::MessagingTimeout
    } else if status("504") || m.contains("Gateway Timeout") {
        ErrorCategory::ApiTimeout
    } else if status("503") || m.contains("Service Unavailable") {
        ErrorCategory::ApiUnavailable
    } else if m.contains("Failed to allocate the network") {
        ErrorCategory::VifPlugging
    } else if m.contains("Compute host") && m.contains("lost") {
        ErrorCategory::HostLost
    } else if m.contains("Exceeded maximum number of retries") {
        ErrorCategory::NoValidHostRetries
    } else if m.contains("No valid host") {
        ErrorCategory::NoValidHost
    } else if m.contains("Quota exceeded") {
        ErrorCategory::Quota
    } else if m.contains("Injected fault") {
        ErrorCategory::Injected
    } else {
        ErrorCategory::Other
    }
}

impl LevelResult {
    /// A burst level with only its counts and makespan filled in (what the
    /// limit rule and the limit search read); for tests and examples.
    pub fn burst_summary(level: u32, succeeded: u32, failed: u32, makespan_s: f64) -> Self {
        let requested = succeeded + failed;
        LevelResult {
            level,
            load_model: LoadModel::Burst,
            requested,
            succeeded,
            failed,
            error_rate: f64::from(failed) / f64::from(requested.max(1)),
            makespan_s,
            throughput_per_s: f64::from(succeeded) / makespan_s,
            outcomes: Default::default(),
            errors: vec![],
            post_latency: Default::default(),
            boot_time: Default::default(),
            delete_time: Default::default(),
            placement: Default::default(),
            placed_remotely: None,
            late_starts: 0,
            dropped_starts: 0,
            in_flight: vec![],
            audit: Default::default(),
            durability: None,
            requests: vec![],
        }
    }

    /// Failed requests per [`ErrorCategory`], from `errors`.
    pub fn error_categories(&self) -> BTreeMap<ErrorCategory, u32> {
        let mut out = BTreeMap::new();
        for e in &self.errors {
            *out.entry(error_category(e.outcome, &e.message))
                .or_insert(0) += e.count;
        }
        out
    }
}

/// What the post-level audit found.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Audit {
    /// True when the audit list showed none of this level's servers.
    pub clean: bool,
    /// IDs of servers this run created that were still listed.
    pub leftovers: Vec<String>,
    /// Deletes that failed, with the reason.
    #[serde(default)]
    pub delete_failures: Vec<String>,
}

/// What the durability checks of a chaos scenario found in one level
/// (docs/results-schema.md defines each set precisely). All empty is the
/// target: the federation kept every promise it made to the client.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Durability {
    /// IDs of boots the client was told were accepted (202) that, once the
    /// level's boots were final, no live entry answered with the server
    /// (GET 404 everywhere) or that no live entry listed.
    #[serde(default)]
    pub lost: Vec<String>,
    /// Instances still on some cloudlet (asked directly, all projects)
    /// after the run deleted everything it created, as `cloudlet/local id`.
    #[serde(default)]
    pub orphaned: Vec<String>,
    /// IDs the client deleted (DELETE answered, then GET 404) that a live
    /// entry listed or answered GET 200 for again, after the disturbance
    /// ended and the agents had `reconcile_s` to reconcile.
    #[serde(default)]
    pub resurrected: Vec<String>,
    /// Deleted IDs listed or shown again at the moment the disturbance
    /// was over and the cleanup done, before any reconcile time: a
    /// transient resurrection (the target is empty too, but the contract
    /// is judged by `resurrected`).
    #[serde(default)]
    pub resurrected_at_return: Vec<String>,
    /// Model seconds waited after the disturbance ended before the
    /// orphaned and resurrected checks.
    #[serde(default)]
    pub reconcile_s: f64,
    /// Checks that could not be made (e.g. no entry answered), so that an
    /// empty set is never mistaken for a clean one.
    #[serde(default)]
    pub unchecked: Vec<String>,
}

impl Durability {
    /// True when every check ran and found nothing.
    pub fn clean(&self) -> bool {
        self.lost.is_empty()
            && self.orphaned.is_empty()
            && self.resurrected.is_empty()
            && self.unchecked.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RequestRecord {
    pub index: u32,
    #[serde(default)]
    pub server_id: Option<String>,
    pub entry: String,
    pub outcome: Outcome,
    #[serde(default)]
    pub message: Option<String>,
    /// Intended start, model seconds since level start.
    pub start_s: f64,
    #[serde(default)]
    pub post_latency_s: Option<f64>,
    #[serde(default)]
    pub boot_time_s: Option<f64>,
    #[serde(default)]
    pub delete_time_s: Option<f64>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub cloudlet: Option<String>,
}

/// Percentiles of one latency, model seconds, with the histogram behind them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub min_s: f64,
    pub mean_s: f64,
    pub p50_s: f64,
    pub p90_s: f64,
    pub p95_s: f64,
    pub p99_s: f64,
    pub max_s: f64,
    /// HdrHistogram V2 serialization, base64, values in model microseconds.
    #[serde(default)]
    pub histogram: String,
}

impl LatencySummary {
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        let s = |v: u64| v as f64 / HISTOGRAM_UNIT_PER_SECOND;
        let mut buf = Vec::new();
        let encoded = match V2Serializer::new().serialize(h, &mut buf) {
            Ok(_) => base64::engine::general_purpose::STANDARD.encode(&buf),
            Err(_) => String::new(),
        };
        if h.is_empty() {
            return Self {
                histogram: encoded,
                ..Self::default()
            };
        }
        Self {
            count: h.len(),
            min_s: s(h.min()),
            mean_s: h.mean() / HISTOGRAM_UNIT_PER_SECOND,
            p50_s: s(h.value_at_quantile(0.50)),
            p90_s: s(h.value_at_quantile(0.90)),
            p95_s: s(h.value_at_quantile(0.95)),
            p99_s: s(h.value_at_quantile(0.99)),
            max_s: s(h.max()),
            histogram: encoded,
        }
    }

    /// Decodes the serialized histogram (empty when absent).
    pub fn histogram(&self) -> Result<Histogram<u64>, SchemaError> {
        if self.histogram.is_empty() {
            return Histogram::new(3).map_err(|e| SchemaError::Histogram(e.to_string()));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.histogram)
            .map_err(|e| SchemaError::Histogram(e.to_string()))?;
        Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| SchemaError::Histogram(format!("{e:?}")))
    }
}

/// A new histogram for model-microsecond latencies (1 µs .. ~1 week, 3 digits).
pub fn new_histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts; fall back to auto-resize.
    Histogram::new_with_bounds(1, 7 * 24 * 3600 * 1_000_000, 3).expect("constant bounds are valid")
}

/// Converts model seconds to histogram units, saturating.
pub fn to_histogram_value(seconds: f64) -> u64 {
    if !seconds.is_finite() || seconds <= 0.0 {
        return 1;
    }
    ((seconds * HISTOGRAM_UNIT_PER_SECOND).round() as u64).max(1)
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("the file is empty")]
    Empty,
    #[error("not valid JSON (truncated or corrupt?): {0}")]
    Json(String),
    #[error("not a loadgen results file (schema is {found:?}, expected {SCHEMA_NAME:?})")]
    WrongSchema { found: String },
    #[error("results schema version {found} is not supported (this build reads version {SCHEMA_VERSION})")]
    WrongVersion { found: u64 },
    #[error("bad histogram: {0}")]
    Histogram(String),
}

/// Parses a results file, checking the schema name and version first so
/// that a file of another version gets a precise error.
pub fn parse(bytes: &[u8]) -> Result<RunResults, SchemaError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(SchemaError::Empty);
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| SchemaError::Json(e.to_string()))?;
    let found = value
        .get("schema")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    if found != SCHEMA_NAME {
        return Err(SchemaError::WrongSchema { found });
    }
    let version = value
        .get("schema_version")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    if version != u64::from(SCHEMA_VERSION) {
        return Err(SchemaError::WrongVersion { found: version });
    }
    serde_json::from_value(value).map_err(|e| SchemaError::Json(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_round_trips_its_histogram() {
        let mut h = new_histogram();
        for s in [1.0, 2.0, 3.0, 4.0, 10.0] {
            h.record(to_histogram_value(s)).unwrap();
        }
        let sum = LatencySummary::from_histogram(&h);
        assert_eq!(sum.count, 5);
        assert!((sum.mean_s - 4.0).abs() < 0.01);
        assert!((sum.max_s - 10.0).abs() < 0.01);
        let back = sum.histogram().unwrap();
        assert_eq!(back.len(), 5);
        assert_eq!(back.max(), h.max());
    }

    #[test]
    fn error_categories_name_the_root_cause() {
        use ErrorCategory as C;
        let cases = [
            (Outcome::ApiError, "500 Unexpected API Error. <class 'sqlalchemy.exc.TimeoutError'>: QueuePool limit of size 5 overflow 50 reached, connection timed out, timeout 30", C::DbPoolTimeout),
            (Outcome::ErrorState, "QueuePool limit of size 5 overflow 50 reached, connection timed out, timeout 30", C::DbPoolTimeout),
            (Outcome::ErrorState, "MessagingTimeout: Timed out waiting for a reply to message ID <id>", C::MessagingTimeout),
            (Outcome::ApiError, "504 Gateway Timeout: the compute API did not answer in time", C::ApiTimeout),
            (Outcome::ApiError, "503 Service Unavailable: API backlog is full", C::ApiUnavailable),
            (Outcome::ErrorState, "No valid host was found. There are not enough hosts available.", C::NoValidHost),
            (Outcome::ErrorState, "No valid host was found. Exceeded maximum number of retries.", C::NoValidHostRetries),
            (Outcome::ErrorState, "No valid host was found. Last: MessagingTimeout: Timed out; then x", C::MessagingTimeout),
            (Outcome::ErrorState, "Build of instance 3 aborted: Failed to allocate the network(s), not rescheduling.", C::VifPlugging),
            (Outcome::Timeout, "not final after 300 s", C::ClientTimeout),
            (Outcome::TransportError, "connection refused", C::Transport),
            (Outcome::ErrorState, "something else", C::Other),
        ];
        for (o, m, want) in cases {
            assert_eq!(error_category(o, m), want, "{m}");
        }
    }

    #[test]
    fn parse_rejects_empty_truncated_and_other_versions() {
        assert!(matches!(parse(b"  \n"), Err(SchemaError::Empty)));
        assert!(matches!(parse(b"{\"schema\":"), Err(SchemaError::Json(_))));
        assert!(matches!(
            parse(br#"{"schema":"other"}"#),
            Err(SchemaError::WrongSchema { .. })
        ));
        let v2 = format!(r#"{{"schema":"{SCHEMA_NAME}","schema_version":2}}"#);
        assert!(matches!(
            parse(v2.as_bytes()),
            Err(SchemaError::WrongVersion { found: 2 })
        ));
    }
}
