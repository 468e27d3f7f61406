//! Serializable counters for `/mock/v1/stats` and `/metrics`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One station (api, conductor, scheduler, networking).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageStats {
    pub workers: u32,
    pub queue_len: u64,
    pub max_queue_len: u64,
    /// Time-averaged queue length since t = 0.
    pub mean_queue_len: f64,
    pub in_service: u32,
    pub served: u64,
    /// Jobs whose caller had already given up (timeout) when they were served.
    pub abandoned: u64,
    pub mean_wait_s: f64,
    pub max_wait_s: f64,
    pub mean_service_s: f64,
    /// Busy worker-seconds / (workers × elapsed).
    pub utilization: f64,
    /// Periodic reports and resource-tracker updates served by this station.
    pub background_jobs: u64,
    pub background_busy_s: f64,
    pub background_utilization: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BootStats {
    pub submitted: u64,
    pub active: u64,
    pub errors: u64,
    /// Keyed by [`crate::FaultReason::label`].
    pub errors_by_reason: BTreeMap<String, u64>,
    /// Failed claims sent back to the conductor for another host.
    pub reschedules: u64,
    /// Builds cast to a node that was already lost (they stay in BUILD).
    pub lost_in_transit: u64,
    pub deletes: u64,
    pub deleted: u64,
    pub mean_time_to_active_s: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiStats {
    pub done: u64,
    pub rejected_backlog_503: u64,
    pub rejected_unavailable_503: u64,
    pub rejected_timeout_504: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ComputeStats {
    pub nodes: u64,
    pub nodes_up: u64,
    pub builds_in_flight: u64,
    pub builds_queued: u64,
    /// Highest number of builds ever running at once on any single node.
    pub max_concurrent_builds_seen: u32,
    pub spawns_started: u64,
    pub image_downloads: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackgroundStats {
    pub service_reports: u64,
    pub tracker_updates: u64,
    pub agent_reports: u64,
    /// Periodic tasks skipped because the previous one was still queued.
    pub skipped: u64,
    /// Offered background load, in conductor workers (cost × rate × nodes).
    pub offered_conductor_workers: f64,
    pub offered_networking_workers: f64,
}

/// Everything the engine counts; `serde_json::to_value(engine.stats())` is the
/// body of `GET /mock/v1/stats`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub now: f64,
    pub profile: String,
    pub profile_hash: String,
    pub seed: u64,
    pub stages: BTreeMap<String, StageStats>,
    pub api: ApiStats,
    pub boots: BootStats,
    pub compute: ComputeStats,
    pub background: BackgroundStats,
    pub invalid_inputs: u64,
}
