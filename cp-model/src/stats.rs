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
    /// Threads of all workers (greenthreads / RPC executor threads); 0 for the bus.
    #[serde(default)]
    pub threads: u64,
    #[serde(default)]
    pub threads_in_use: u64,
    /// Requests waiting for a thread (socket backlog, message queue).
    #[serde(default)]
    pub thread_queue_len: u64,
    #[serde(default)]
    pub max_thread_queue_len: u64,
    /// DB connections of all workers' pools (`pool_size + max_overflow` each).
    #[serde(default)]
    pub db_connections: u64,
    #[serde(default)]
    pub db_connections_in_use: u64,
    #[serde(default)]
    pub max_db_connections_in_use: u64,
    /// Requests waiting for a DB connection now, and at most.
    #[serde(default)]
    pub db_waiting: u64,
    #[serde(default)]
    pub max_db_waiting: u64,
    /// Checkouts that waited `pool_timeout_s` and failed.
    #[serde(default)]
    pub db_pool_timeouts: u64,
}

/// The message bus: its capacity, what it carried, who it refused.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BusStats {
    pub messages_per_s: f64,
    /// Messages sent through the broker so far.
    pub messages: u64,
    pub max_connections: u64,
    /// Connections open (controller + connected computes).
    pub connections: u64,
    /// Connections the broker refused (computes past `max_connections`).
    pub connections_refused: u64,
    /// Compute nodes that could not connect (down for the scheduler).
    pub computes_refused: u64,
    /// Messages per second offered by the periodic tasks of the connected computes.
    pub offered_background_messages_per_s: f64,
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
    /// Calls that waited `db.pool_timeout_s` for a DB connection (500).
    #[serde(default)]
    pub rejected_db_pool_500: u64,
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
    #[serde(default)]
    pub bus: BusStats,
    pub api: ApiStats,
    pub boots: BootStats,
    pub compute: ComputeStats,
    pub background: BackgroundStats,
    pub invalid_inputs: u64,
}

impl Stats {
    /// Prometheus text exposition (format 0.0.4) of these counters, for the
    /// mock's `/metrics`. Names start with `cp_model_`; times are model seconds.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
            out.push_str(&format!(
                "# HELP cp_model_{name} {help}\n# TYPE cp_model_{name} {kind}\n"
            ));
            for (labels, v) in samples {
                out.push_str(&format!("cp_model_{name}{labels} {v}\n"));
            }
        };
        let per_stage = |f: &dyn Fn(&StageStats) -> f64| -> Vec<(String, f64)> {
            self.stages
                .iter()
                .map(|(name, s)| (format!("{{stage=\"{name}\"}}"), f(s)))
                .collect()
        };
        let one = |v: f64| vec![(String::new(), v)];
        metric(
            "model_time_seconds",
            "gauge",
            "Model time of the engine.",
            one(self.now),
        );
        metric(
            "stage_workers",
            "gauge",
            "Workers per controller stage.",
            per_stage(&|s| f64::from(s.workers)),
        );
        metric(
            "stage_queue_length",
            "gauge",
            "Jobs waiting for a worker.",
            per_stage(&|s| s.queue_len as f64),
        );
        metric(
            "stage_queue_length_mean",
            "gauge",
            "Time-averaged queue length since start.",
            per_stage(&|s| s.mean_queue_len),
        );
        metric(
            "stage_in_service",
            "gauge",
            "Jobs being served.",
            per_stage(&|s| f64::from(s.in_service)),
        );
        metric(
            "stage_served_total",
            "counter",
            "Jobs served.",
            per_stage(&|s| s.served as f64),
        );
        metric(
            "stage_abandoned_total",
            "counter",
            "Jobs served after their caller gave up.",
            per_stage(&|s| s.abandoned as f64),
        );
        metric(
            "stage_wait_seconds_mean",
            "gauge",
            "Mean wait for a worker.",
            per_stage(&|s| s.mean_wait_s),
        );
        metric(
            "stage_wait_seconds_max",
            "gauge",
            "Longest wait for a worker.",
            per_stage(&|s| s.max_wait_s),
        );
        metric(
            "stage_service_seconds_mean",
            "gauge",
            "Mean service time.",
            per_stage(&|s| s.mean_service_s),
        );
        metric(
            "stage_utilization",
            "gauge",
            "Busy fraction of the stage's workers since start.",
            per_stage(&|s| s.utilization),
        );
        metric(
            "stage_background_utilization",
            "gauge",
            "Busy fraction spent on periodic reports and resource-tracker updates.",
            per_stage(&|s| s.background_utilization),
        );
        let b = &self.boots;
        metric(
            "boots_total",
            "counter",
            "Boots by outcome.",
            vec![
                ("{outcome=\"submitted\"}".into(), b.submitted as f64),
                ("{outcome=\"active\"}".into(), b.active as f64),
                ("{outcome=\"error\"}".into(), b.errors as f64),
                (
                    "{outcome=\"lost_in_transit\"}".into(),
                    b.lost_in_transit as f64,
                ),
            ],
        );
        metric(
            "boot_errors_total",
            "counter",
            "Boots in ERROR by fault reason.",
            b.errors_by_reason
                .iter()
                .map(|(r, n)| (format!("{{reason=\"{r}\"}}"), *n as f64))
                .collect(),
        );
        metric(
            "reschedules_total",
            "counter",
            "Failed claims sent back for another host.",
            one(b.reschedules as f64),
        );
        metric(
            "deleted_total",
            "counter",
            "Instances deleted.",
            one(b.deleted as f64),
        );
        let a = &self.api;
        metric(
            "api_responses_total",
            "counter",
            "API calls by result.",
            vec![
                ("{result=\"done\"}".into(), a.done as f64),
                (
                    "{result=\"503_backlog\"}".into(),
                    a.rejected_backlog_503 as f64,
                ),
                (
                    "{result=\"503_unavailable\"}".into(),
                    a.rejected_unavailable_503 as f64,
                ),
                (
                    "{result=\"504_timeout\"}".into(),
                    a.rejected_timeout_504 as f64,
                ),
                (
                    "{result=\"500_db_pool\"}".into(),
                    a.rejected_db_pool_500 as f64,
                ),
            ],
        );
        metric(
            "stage_db_connections_in_use",
            "gauge",
            "DB connections checked out per controller stage.",
            per_stage(&|s| s.db_connections_in_use as f64),
        );
        metric(
            "stage_db_pool_timeouts_total",
            "counter",
            "DB connection checkouts that timed out, per stage.",
            per_stage(&|s| s.db_pool_timeouts as f64),
        );
        metric(
            "bus_messages_total",
            "counter",
            "RPC messages sent through the broker.",
            one(self.bus.messages as f64),
        );
        metric(
            "bus_connections",
            "gauge",
            "Broker connections open and refused.",
            vec![
                ("{state=\"open\"}".into(), self.bus.connections as f64),
                (
                    "{state=\"refused\"}".into(),
                    self.bus.connections_refused as f64,
                ),
            ],
        );
        let c = &self.compute;
        metric(
            "compute_nodes",
            "gauge",
            "Compute nodes.",
            vec![
                ("{state=\"total\"}".into(), c.nodes as f64),
                ("{state=\"up\"}".into(), c.nodes_up as f64),
            ],
        );
        metric(
            "builds_in_flight",
            "gauge",
            "Builds holding a build slot.",
            one(c.builds_in_flight as f64),
        );
        metric(
            "builds_queued",
            "gauge",
            "Builds waiting for a build slot.",
            one(c.builds_queued as f64),
        );
        let g = &self.background;
        metric(
            "background_tasks_total",
            "counter",
            "Periodic tasks sent by compute nodes.",
            vec![
                ("{kind=\"service_report\"}".into(), g.service_reports as f64),
                (
                    "{kind=\"resource_tracker\"}".into(),
                    g.tracker_updates as f64,
                ),
                ("{kind=\"agent_report\"}".into(), g.agent_reports as f64),
                ("{kind=\"skipped\"}".into(), g.skipped as f64),
            ],
        );
        metric(
            "background_offered_workers",
            "gauge",
            "Background work offered by the nodes that are up, in workers.",
            vec![
                ("{stage=\"conductor\"}".into(), g.offered_conductor_workers),
                (
                    "{stage=\"networking\"}".into(),
                    g.offered_networking_workers,
                ),
            ],
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_one_sample_per_stage_and_reason() {
        let mut st = Stats::default();
        st.stages.insert(
            "api".into(),
            StageStats {
                workers: 4,
                ..StageStats::default()
            },
        );
        st.boots
            .errors_by_reason
            .insert("messaging_timeout".into(), 3);
        let text = st.to_prometheus();
        assert!(text.contains("cp_model_stage_workers{stage=\"api\"} 4\n"));
        assert!(text.contains("cp_model_boot_errors_total{reason=\"messaging_timeout\"} 3\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert_eq!(line.split(' ').count(), 2, "{line}");
        }
    }
}
