//! Watches the host while an experiment runs, so that results measured on
//! an overloaded machine are marked as such instead of being trusted.
//!
//! Two signals: how late timers fire (a task asks to sleep for a fixed
//! interval and records how much longer it actually slept), and the
//! process's CPU time over wall time, from `/proc/self/stat`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// What the monitor saw over one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HostReport {
    pub lag_p99_ms: f64,
    pub lag_max_ms: f64,
    /// CPU seconds of this process over wall seconds (2.0 = both cores busy).
    pub cpu_utilization: f64,
    pub cpu_seconds: f64,
    pub wall_seconds: f64,
    pub peak_rss_bytes: u64,
    pub samples: u64,
}

impl HostReport {
    /// A run is host-bound when the p99 timer lag, converted to model time,
    /// exceeds `max_lag_model_s`: every stage completion of the model may
    /// then be late by that much, which distorts what is measured.
    pub fn host_bound(&self, time_scale: f64, max_lag_model_s: f64) -> bool {
        let Ok(scale) = cp_model::TimeScale::new(time_scale) else {
            return false;
        };
        let lag = std::time::Duration::try_from_secs_f64(self.lag_p99_ms.max(0.0) / 1000.0)
            .unwrap_or(std::time::Duration::MAX);
        scale.model_s(lag) > max_lag_model_s
    }
}

/// A running monitor; [`HostMonitor::stop`] ends it and returns the report.
pub struct HostMonitor {
    lag: Arc<Mutex<Histogram<u64>>>,
    task: tokio::task::JoinHandle<()>,
    started: Instant,
    cpu_at_start: Option<f64>,
}

/// Interval of the lag probe: short enough to see scheduler stalls, long
/// enough to cost nothing.
const PROBE_INTERVAL: Duration = Duration::from_millis(10);

impl HostMonitor {
    pub fn start() -> Self {
        let lag = Arc::new(Mutex::new(
            Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds are valid"),
        ));
        let sink = lag.clone();
        let task = tokio::spawn(async move {
            loop {
                let asked = Instant::now();
                tokio::time::sleep(PROBE_INTERVAL).await;
                let late = asked.elapsed().saturating_sub(PROBE_INTERVAL);
                if let Ok(mut h) = sink.lock() {
                    let _ = h.record((late.as_micros() as u64).max(1));
                }
            }
        });
        Self {
            lag,
            task,
            started: Instant::now(),
            cpu_at_start: process_cpu_seconds(),
        }
    }

    pub fn stop(self) -> HostReport {
        self.task.abort();
        let wall = self.started.elapsed().as_secs_f64();
        let cpu = match (self.cpu_at_start, process_cpu_seconds()) {
            (Some(a), Some(b)) => (b - a).max(0.0),
            _ => 0.0,
        };
        let (p99, max, n) = match self.lag.lock() {
            Ok(h) if !h.is_empty() => (
                h.value_at_quantile(0.99) as f64 / 1000.0,
                h.max() as f64 / 1000.0,
                h.len(),
            ),
            _ => (0.0, 0.0, 0),
        };
        HostReport {
            lag_p99_ms: p99,
            lag_max_ms: max,
            cpu_utilization: if wall > 0.0 { cpu / wall } else { 0.0 },
            cpu_seconds: cpu,
            wall_seconds: wall,
            peak_rss_bytes: peak_rss_bytes().unwrap_or(0),
            samples: n,
        }
    }
}

/// utime + stime of this process, seconds. Linux reports them in clock
/// ticks of USER_HZ, which the kernel ABI fixes at 100 per second.
pub fn process_cpu_seconds() -> Option<f64> {
    cpu_seconds_of("/proc/self/stat")
}

/// utime + stime of the calling thread, seconds.
pub fn thread_cpu_seconds() -> Option<f64> {
    cpu_seconds_of("/proc/thread-self/stat")
}

fn cpu_seconds_of(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Field 2 (comm) may contain spaces; parse after its closing ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After comm: state is index 0, utime is field 14 overall → index 11.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Peak resident set size (VmHWM) of this process.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_bound_compares_lag_in_model_time() {
        let r = HostReport {
            lag_p99_ms: 5.0,
            ..HostReport::default()
        };
        // 5 ms wall at scale 0.02 is 0.25 model s.
        assert!(!r.host_bound(0.02, 0.5));
        assert!(r.host_bound(0.005, 0.5));
        assert!(!r.host_bound(0.0, 0.5));
    }

    #[test]
    fn reads_own_cpu_and_memory() {
        assert!(process_cpu_seconds().is_some());
        assert!(thread_cpu_seconds().is_some());
        assert!(peak_rss_bytes().unwrap_or(0) > 0);
    }

    #[tokio::test]
    async fn monitor_collects_samples() {
        let m = HostMonitor::start();
        tokio::time::sleep(Duration::from_millis(60)).await;
        let r = m.stop();
        assert!(r.samples >= 2, "{r:?}");
        assert!(r.wall_seconds > 0.05);
    }
}
