//! Counters exposed on `/metrics` (Prometheus text format).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Upper bounds (ms) of the forward-latency histogram buckets.
const BUCKETS_MS: [u64; 10] = [1, 2, 5, 10, 25, 50, 100, 250, 1000, 5000];

#[derive(Default)]
pub struct Metrics {
    pub boots_local: AtomicU64,
    pub boots_remote: AtomicU64,
    pub boot_retries: AtomicU64,
    pub boots_failed: AtomicU64,
    pub boots_accepted_for_peers: AtomicU64,
    pub requests: AtomicU64,
    /// Gossip datagrams that failed authentication (set by the
    /// authenticated transport; absent on in-process transports).
    pub gossip_rejected: OnceLock<Arc<AtomicU64>>,
    /// Connections of the HTTP face (see [`crate::conn`]).
    pub conns: Arc<crate::conn::ConnStats>,
    /// `/p2p/v1` requests refused: bad, stale or replayed signatures.
    pub peer_refused: AtomicU64,
    /// Superseded or abandoned instances still to be deleted.
    pub deletes_pending: AtomicU64,
    /// Calls made straight to another member's cloudlet (its agent gone).
    pub direct_calls: AtomicU64,
    /// Boots of dead coordinators this agent took over (see `Core::adopt`).
    pub boots_adopted: AtomicU64,
    /// Boots of lost pairs (agent and cloudlet) this agent held the record
    /// of and took over (see `Core::take_over`).
    pub boots_taken_over: AtomicU64,
    /// Boot records a backup could not be given (the boot then known to
    /// its coordinator only).
    pub replicas_failed: AtomicU64,
    /// Boot records (and their state changes) the backup acknowledged.
    pub replicas_sent: AtomicU64,
    /// Boot records sent again because the backup changed (see
    /// `Core::rereplicate`).
    pub replicas_resent: AtomicU64,
    forward_count: AtomicU64,
    forward_sum_us: AtomicU64,
    forward_buckets: [AtomicU64; BUCKETS_MS.len()],
}

impl Metrics {
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the latency of one call forwarded to a peer agent.
    pub fn observe_forward(&self, d: std::time::Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.forward_count.fetch_add(1, Ordering::Relaxed);
        self.forward_sum_us.fetch_add(us, Ordering::Relaxed);
        for (i, b) in BUCKETS_MS.iter().enumerate() {
            if us <= b * 1000 {
                self.forward_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Renders the text exposition; `members_alive` and `gossip_heartbeat`
    /// come from the overlay.
    pub fn render(&self, agent: &str, members_alive: usize, gossip_heartbeat: u64) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut s = String::new();
        let l = format!("agent=\"{agent}\"");
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{{l}}} {v}"
            );
        };
        counter(
            "p2p_boots_placed_local_total",
            "Boots placed on the local cloudlet.",
            g(&self.boots_local),
        );
        counter(
            "p2p_boots_placed_remote_total",
            "Boots forwarded to another cloudlet.",
            g(&self.boots_remote),
        );
        counter(
            "p2p_boot_retries_total",
            "Placement attempts after a refusal or ERROR.",
            g(&self.boot_retries),
        );
        counter(
            "p2p_boots_failed_total",
            "Boots that failed on every attempt.",
            g(&self.boots_failed),
        );
        counter(
            "p2p_boots_accepted_for_peers_total",
            "Boots this agent created for a peer.",
            g(&self.boots_accepted_for_peers),
        );
        counter(
            "p2p_http_requests_total",
            "HTTP requests served.",
            g(&self.requests),
        );
        counter(
            "p2p_gossip_rejected_total",
            "Gossip datagrams dropped: not authenticated with the cluster key.",
            self.gossip_rejected.get().map_or(0, |c| g(c)),
        );
        counter(
            "p2p_peer_requests_refused_total",
            "Agent-to-agent requests refused (bad, stale or replayed signature).",
            g(&self.peer_refused),
        );
        counter(
            "p2p_connections_refused_total",
            "Connections answered 503: the connection cap was reached.",
            g(&self.conns.refused),
        );
        counter(
            "p2p_accept_failures_total",
            "accept() failures (e.g. out of file descriptors).",
            g(&self.conns.accept_failures),
        );
        counter(
            "p2p_direct_cloudlet_calls_total",
            "Calls made straight to a member's cloudlet because its agent was gone.",
            g(&self.direct_calls),
        );
        counter(
            "p2p_boots_adopted_total",
            "Unfinished boots of dead coordinators this agent took over.",
            g(&self.boots_adopted),
        );
        counter(
            "p2p_boots_taken_over_total",
            "Boots of lost pairs (agent and cloudlet) this agent held the record of and took over.",
            g(&self.boots_taken_over),
        );
        counter(
            "p2p_replicas_failed_total",
            "Boot records that could not be given to the backup agent.",
            g(&self.replicas_failed),
        );
        counter(
            "p2p_replicas_sent_total",
            "Boot records and state changes the backup agent acknowledged.",
            g(&self.replicas_sent),
        );
        counter(
            "p2p_replicas_resent_total",
            "Boot records sent again to a new backup agent after a membership change.",
            g(&self.replicas_resent),
        );
        counter(
            "p2p_gossip_rounds_total",
            "Own chitchat heartbeat (one per gossip round sent or received).",
            gossip_heartbeat,
        );
        let _ = writeln!(
            s,
            "# HELP p2p_connections_open Open connections of the HTTP face.\n# TYPE p2p_connections_open gauge\np2p_connections_open{{{l}}} {}",
            g(&self.conns.open)
        );
        let _ = writeln!(
            s,
            "# HELP p2p_deletes_pending Superseded or abandoned instances awaiting deletion.\n# TYPE p2p_deletes_pending gauge\np2p_deletes_pending{{{l}}} {}",
            g(&self.deletes_pending)
        );
        let _ = writeln!(
            s,
            "# HELP p2p_members_alive Members believed alive (self included).\n# TYPE p2p_members_alive gauge\np2p_members_alive{{{l}}} {members_alive}"
        );
        let _ = writeln!(
            s,
            "# HELP p2p_forward_latency_seconds Latency of calls forwarded to peer agents.\n# TYPE p2p_forward_latency_seconds histogram"
        );
        for (i, b) in BUCKETS_MS.iter().enumerate() {
            let _ = writeln!(
                s,
                "p2p_forward_latency_seconds_bucket{{{l},le=\"{}\"}} {}",
                *b as f64 / 1000.0,
                g(&self.forward_buckets[i])
            );
        }
        let n = g(&self.forward_count);
        let _ = writeln!(
            s,
            "p2p_forward_latency_seconds_bucket{{{l},le=\"+Inf\"}} {n}"
        );
        let _ = writeln!(
            s,
            "p2p_forward_latency_seconds_sum{{{l}}} {}\np2p_forward_latency_seconds_count{{{l}}} {n}",
            g(&self.forward_sum_us) as f64 / 1e6
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        Metrics::inc(&m.boots_remote);
        m.observe_forward(std::time::Duration::from_millis(3));
        let t = m.render("c1", 4, 9);
        assert!(t.contains("p2p_boots_placed_remote_total{agent=\"c1\"} 1"));
        assert!(t.contains("p2p_members_alive{agent=\"c1\"} 4"));
        assert!(t.contains("le=\"0.005\"} 1"));
        assert!(t.contains("le=\"0.002\"} 0"));
    }
}
