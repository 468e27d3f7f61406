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
    /// SHA-256 of the profile TOML, hex.
    #[serde(default)]
    pub profile_hash: Option<String>,
    /// Agent retry bound (P2P only).
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub scenario: Option<String>,
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
