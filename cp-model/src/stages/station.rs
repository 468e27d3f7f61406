//! A FIFO station with a fixed number of identical workers.
//!
//! The engine owns the event queue; a station only tracks who waits, which
//! worker is free and the counters needed for stats. Jobs are never removed
//! from the queue when their caller gives up: a real server does not know the
//! client left, so abandoned work still takes a worker (that is how a
//! saturated control plane collapses instead of shedding load).

use std::collections::VecDeque;

use crate::stats::StageStats;
use crate::types::ModelTime;

pub(crate) type JobId = u64;

#[derive(Debug)]
pub(crate) struct Station {
    pub workers: u32,
    busy: Vec<bool>,
    pub queue: VecDeque<JobId>,
    // Counters for stats.
    served: u64,
    abandoned: u64,
    wait_total: f64,
    wait_max: f64,
    service_total: f64,
    max_queue: usize,
    queue_area: f64,
    last_change: ModelTime,
    background_jobs: u64,
    background_busy: f64,
}

impl Station {
    pub fn new(workers: u32) -> Station {
        Station {
            workers,
            busy: vec![false; workers as usize],
            queue: VecDeque::new(),
            served: 0,
            abandoned: 0,
            wait_total: 0.0,
            wait_max: 0.0,
            service_total: 0.0,
            max_queue: 0,
            queue_area: 0.0,
            last_change: 0.0,
            background_jobs: 0,
            background_busy: 0.0,
        }
    }

    fn account_queue(&mut self, now: ModelTime) {
        self.queue_area += self.queue.len() as f64 * (now - self.last_change).max(0.0);
        self.last_change = now;
    }

    pub fn enqueue(&mut self, now: ModelTime, job: JobId) {
        self.account_queue(now);
        self.queue.push_back(job);
        self.max_queue = self.max_queue.max(self.queue.len());
    }

    /// Lowest-numbered free worker (deterministic, and it keeps per-worker
    /// caches such as the scheduler's host state meaningful).
    pub fn free_worker(&self) -> Option<u32> {
        self.busy.iter().position(|b| !b).map(|i| i as u32)
    }

    /// Take the head of the queue onto `worker`.
    pub fn start(&mut self, now: ModelTime, worker: u32) -> Option<JobId> {
        self.account_queue(now);
        let job = self.queue.pop_front()?;
        if let Some(b) = self.busy.get_mut(worker as usize) {
            *b = true;
        }
        Some(job)
    }

    /// Record a started job's wait and service time.
    pub fn record_start(&mut self, wait: f64, service: f64, background: bool) {
        self.wait_total += wait;
        self.wait_max = self.wait_max.max(wait);
        self.service_total += service;
        if background {
            self.background_jobs += 1;
            self.background_busy += service;
        }
    }

    pub fn finish(&mut self, worker: u32, abandoned: bool) {
        if let Some(b) = self.busy.get_mut(worker as usize) {
            *b = false;
        }
        self.served += 1;
        if abandoned {
            self.abandoned += 1;
        }
    }

    /// Free a worker without counting a served job.
    pub fn release(&mut self, worker: u32) {
        if let Some(b) = self.busy.get_mut(worker as usize) {
            *b = false;
        }
    }

    pub fn in_service(&self) -> u32 {
        self.busy.iter().filter(|b| **b).count() as u32
    }

    pub fn stats(&self, now: ModelTime) -> StageStats {
        let started = self.served + u64::from(self.in_service());
        let area = self.queue_area + self.queue.len() as f64 * (now - self.last_change).max(0.0);
        let per = |x: f64| if started > 0 { x / started as f64 } else { 0.0 };
        StageStats {
            workers: self.workers,
            queue_len: self.queue.len() as u64,
            max_queue_len: self.max_queue as u64,
            mean_queue_len: if now > 0.0 { area / now } else { 0.0 },
            in_service: self.in_service(),
            served: self.served,
            abandoned: self.abandoned,
            mean_wait_s: per(self.wait_total),
            max_wait_s: self.wait_max,
            mean_service_s: per(self.service_total),
            utilization: if now > 0.0 {
                (self.service_total / (f64::from(self.workers) * now)).min(1.0)
            } else {
                0.0
            },
            background_jobs: self.background_jobs,
            background_busy_s: self.background_busy,
            background_utilization: if now > 0.0 {
                (self.background_busy / (f64::from(self.workers) * now)).min(1.0)
            } else {
                0.0
            },
            // Threads and DB connections are the engine's admission counters.
            ..StageStats::default()
        }
    }
}
