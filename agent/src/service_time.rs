//! The agent's own cost in model time, for the `sim` backend.
//!
//! On real sockets the agent's request handling costs real CPU time. On
//! virtual time it would cost nothing (time only advances while every task
//! waits), which would favour the P2P side. With a service time set, every
//! request first occupies one of `workers` servers for `per_request` of
//! model time, first come first served: a queue, not just a delay, so an
//! agent that receives more than `workers / per_request` requests a second
//! falls behind as a real one would.
//!
//! The reservation is kept in a ledger of exact instants (nanoseconds), so
//! that tokio's millisecond timer granularity rounds each wait but never
//! the agent's throughput.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use cp_model::clock::{self, Instant};

/// `workers` servers, each busy until an instant.
pub struct ServiceTime {
    per_request: Duration,
    busy_until: Mutex<Vec<Instant>>,
}

impl ServiceTime {
    /// `None` when the cost is zero (the real-time backends).
    pub fn new(per_request: Duration, workers: u32) -> Option<Arc<Self>> {
        if per_request.is_zero() {
            return None;
        }
        let now = clock::now();
        Some(Arc::new(Self {
            per_request,
            busy_until: Mutex::new(vec![now; workers.max(1) as usize]),
        }))
    }

    /// Reserves the worker free soonest; returns when this request's
    /// service ends.
    pub async fn serve(&self) {
        let done = {
            let now = clock::now();
            let mut w = match self.busy_until.lock() {
                Ok(w) => w,
                Err(p) => p.into_inner(),
            };
            let Some(slot) = w.iter_mut().min() else {
                return;
            };
            let start = (*slot).max(now);
            *slot = start + self.per_request;
            *slot
        };
        tokio::time::sleep_until(done).await;
    }
}

/// Middleware: every request waits for its service first.
pub async fn layer(State(st): State<Arc<ServiceTime>>, req: Request, next: Next) -> Response {
    st.serve().await;
    next.run(req).await
}

/// `router` with the service time in front (unchanged when `None`).
pub fn wrap(router: axum::Router, st: Option<Arc<ServiceTime>>) -> axum::Router {
    match st {
        Some(st) => router.layer(axum::middleware::from_fn_with_state(st, layer)),
        None => router,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_queue_for_the_workers() {
        let st = ServiceTime::new(Duration::from_micros(250), 2).unwrap();
        let t0 = clock::now();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let st = st.clone();
            set.spawn(async move {
                st.serve().await;
                clock::now()
            });
        }
        let mut ends = Vec::new();
        while let Some(t) = set.join_next().await {
            ends.push(t.unwrap() - t0);
        }
        ends.sort();
        // 8 requests on 2 workers of 250 µs: the last ends at 1 ms.
        assert_eq!(*ends.last().unwrap(), Duration::from_millis(1));
        assert!(ServiceTime::new(Duration::ZERO, 4).is_none());
    }
}
