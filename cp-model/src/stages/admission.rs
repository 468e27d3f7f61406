//! What a request needs before a controller service's CPU: one of the
//! workers' threads, then one database connection from the workers'
//! oslo.db pools.
//!
//! Threads are eventlet greenthreads (nova-api's WSGI server) or RPC executor
//! threads (conductor, scheduler): cheap to wait in, so a request beyond them
//! simply waits (socket backlog, message queue). A connection is checked out
//! next: past `pool_size + max_overflow` per worker the request waits, and
//! after `pool_timeout_s` it fails with SQLAlchemy's `QueuePool limit …`
//! error. The connection is held until the request's service ends, so when
//! the CPU is the bottleneck, connections run out first (the eventlet-era
//! failure seen on nova-api).
//!
//! The workers' threads and pools are pooled here (a request may take any
//! worker's); real load balancing is uneven, which only makes exhaustion
//! come sooner.

use std::collections::VecDeque;

use crate::stages::station::JobId;

#[derive(Debug, Default)]
pub(crate) struct Admission {
    pub threads: u64,
    pub threads_used: u64,
    pub thread_wait: VecDeque<JobId>,
    pub conns: u64,
    pub conns_used: u64,
    /// Jobs waiting for a connection (stale ids of timed-out jobs are skipped).
    pub conn_wait: VecDeque<JobId>,
    pub conn_waiting: u64,
    // Counters for stats.
    pub max_conns_used: u64,
    pub max_thread_wait: u64,
    pub max_conn_waiting: u64,
    pub pool_timeouts: u64,
}

impl Admission {
    pub fn new(workers: u32, threads_per_worker: u32, conns_per_worker: u32) -> Admission {
        Admission {
            threads: u64::from(workers) * u64::from(threads_per_worker),
            conns: u64::from(workers) * u64::from(conns_per_worker),
            ..Admission::default()
        }
    }

    /// Take a thread if one is free; otherwise queue for one.
    pub fn take_thread(&mut self, id: JobId) -> bool {
        if self.threads_used < self.threads {
            self.threads_used += 1;
            true
        } else {
            self.thread_wait.push_back(id);
            self.max_thread_wait = self.max_thread_wait.max(self.thread_wait.len() as u64);
            false
        }
    }

    /// Take a connection if one is free; otherwise queue for one.
    pub fn take_conn(&mut self, id: JobId) -> bool {
        if self.conns_used < self.conns {
            self.conns_used += 1;
            self.max_conns_used = self.max_conns_used.max(self.conns_used);
            true
        } else {
            self.conn_wait.push_back(id);
            self.conn_waiting += 1;
            self.max_conn_waiting = self.max_conn_waiting.max(self.conn_waiting);
            false
        }
    }
}
