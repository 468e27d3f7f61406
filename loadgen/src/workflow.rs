//! One boot workflow (POST, poll until final) and one delete workflow
//! (DELETE, poll until 404). Pure async tasks: thousands run on two cores.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cp_model::clock::{self, Instant};

use os_client::compute::{self, CreateServer};
use os_client::{ClientError, RetryPolicy};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use results::{Outcome, RequestRecord};
use tokio_util::sync::CancellationToken;

use crate::prepare::Entry;
use crate::stats::Finished;
use cp_model::TimeScale;

/// What every workflow of a level shares.
pub struct LevelCtx {
    pub clock: TimeScale,
    pub level_start: Instant,
    pub poll_interval_s: f64,
    pub poll_timeout_s: f64,
    pub delete_timeout_s: f64,
    pub in_flight: AtomicU32,
    /// Boot POSTs of this level that got an answer (or failed), and a wake-up
    /// for whoever waits until all of them have.
    pub posts_answered: AtomicU32,
    pub post_answered: tokio::sync::Notify,
    pub cancel: CancellationToken,
    pub seed: u64,
    pub entries: Vec<Arc<Entry>>,
    pub progress: indicatif::ProgressBar,
}

impl LevelCtx {
    fn model_since_start(&self, t: Instant) -> f64 {
        self.clock.between(self.level_start, t)
    }

    /// A jittered poll wait: `interval × U(lo, hi)`.
    fn jitter(&self, rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> Duration {
        self.clock
            .wall(self.poll_interval_s * rng.gen_range(lo..hi))
            .max(Duration::from_micros(100))
    }
}

fn describe(e: &ClientError) -> (Outcome, String) {
    match e {
        ClientError::Transport(t) => (Outcome::TransportError, t.to_string()),
        ClientError::Api {
            status, message, ..
        } => (Outcome::ApiError, format!("{status} {message}")),
        other => (Outcome::ApiError, other.to_string()),
    }
}

/// Decrements the in-flight count when dropped (also on panic or abort).
struct InFlight<'a>(&'a AtomicU32);

impl<'a> InFlight<'a> {
    fn enter(c: &'a AtomicU32) -> Self {
        c.fetch_add(1, Ordering::Relaxed);
        Self(c)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Boots one server and polls it until ACTIVE, ERROR or timeout; the time
/// to ACTIVE counts from `intended` (the open model's scheduled start).
pub async fn boot(
    ctx: &LevelCtx,
    index: u32,
    entry_index: usize,
    name: String,
    intended: Instant,
) -> Finished {
    let _guard = InFlight::enter(&ctx.in_flight);
    let entry = &ctx.entries[entry_index];
    let mut rng =
        ChaCha8Rng::seed_from_u64(ctx.seed ^ (u64::from(index) << 20) ^ entry_index as u64);
    let mut record = RequestRecord {
        index,
        server_id: None,
        entry: entry.url.clone(),
        outcome: Outcome::Timeout,
        message: None,
        start_s: ctx.model_since_start(intended),
        post_latency_s: None,
        boot_time_s: None,
        delete_time_s: None,
        host: None,
        cloudlet: None,
    };
    let req = CreateServer {
        name,
        image_ref: entry.image_id.clone(),
        flavor_ref: entry.flavor_id.clone(),
        networks: entry.network_id.iter().cloned().collect(),
        metadata: Default::default(),
    };
    let sent = clock::now();
    let created = compute::create_server_with(&entry.session, &req, RetryPolicy::NONE).await;
    let answered = clock::now();
    ctx.posts_answered
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ctx.post_answered.notify_one();
    record.post_latency_s = Some(ctx.clock.between(sent, answered));
    let mut agent = None;
    let finish = |record: RequestRecord, agent: Option<String>, created: Option<String>| {
        let now = clock::now();
        ctx.progress.inc(1);
        Finished {
            record,
            sent_s: Some(ctx.model_since_start(sent)),
            final_s: ctx.model_since_start(now),
            created,
            entry_index,
            agent,
            late: false,
        }
    };
    let server = match created {
        Ok(s) => s,
        Err(e) => {
            let (outcome, message) = describe(&e);
            record.outcome = outcome;
            record.message = Some(message);
            return finish(record, None, None);
        }
    };
    record.server_id = Some(server.id.clone());
    record.cloudlet = server.hint.cloudlet.clone();
    if server.hint.agent.is_some() {
        agent = server.hint.agent.clone();
    }
    let deadline = intended + ctx.clock.wall(ctx.poll_timeout_s);
    // The entry polled: the one that accepted the boot, until it stops answering.
    let mut poll_via = entry_index;
    let mut last_error: Option<(Outcome, String)> = None;
    let mut wait = ctx.jitter(&mut rng, 0.5, 1.0);
    loop {
        let wake = (clock::now() + wait).min(deadline);
        tokio::select! {
            _ = ctx.cancel.cancelled() => {
                record.outcome = Outcome::Timeout;
                record.message = Some("interrupted before the server was final".into());
                return finish(record, agent, Some(server.id));
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
        if clock::now() >= deadline {
            let (outcome, message) = match last_error.take() {
                Some((o, m)) => (o, format!("timed out; last poll: {m}")),
                None => (
                    Outcome::Timeout,
                    format!("not ACTIVE after {} model s", ctx.poll_timeout_s),
                ),
            };
            record.outcome = outcome;
            record.message = Some(message);
            return finish(record, agent, Some(server.id));
        }
        wait = ctx.jitter(&mut rng, 0.9, 1.1);
        match compute::get_server(&ctx.entries[poll_via].session, &server.id).await {
            Ok(v) => {
                last_error = None;
                if v.host.is_some() {
                    record.host = v.host.clone();
                }
                if v.hint.cloudlet.is_some() {
                    record.cloudlet = v.hint.cloudlet.clone();
                }
                if v.hint.agent.is_some() && agent.is_none() {
                    agent = v.hint.agent.clone();
                }
                match v.status.as_str() {
                    "ACTIVE" => {
                        record.outcome = Outcome::Active;
                        record.boot_time_s = Some(ctx.clock.since(intended));
                        return finish(record, agent, Some(server.id));
                    }
                    "ERROR" => {
                        record.outcome = Outcome::ErrorState;
                        record.message = Some(
                            v.fault
                                .unwrap_or_else(|| "ERROR without a fault message".into()),
                        );
                        return finish(record, agent, Some(server.id));
                    }
                    _ => {}
                }
            }
            Err(e) if e.is_not_found() => {
                let (outcome, message) = describe(&e);
                record.outcome = outcome;
                record.message = Some(format!("server vanished while building: {message}"));
                return finish(record, agent, None);
            }
            // Transient poll failures: keep polling (no sooner than a
            // Retry-After asks), report them if they last until the timeout.
            // An entry that does not answer at all (a dead agent) is left
            // for the next one, as a client with several endpoints would.
            Err(e) => {
                if matches!(e, ClientError::Transport(_)) && ctx.entries.len() > 1 {
                    poll_via = (poll_via + 1) % ctx.entries.len();
                }
                if let ClientError::Api {
                    retry_after: Some(d),
                    ..
                } = &e
                {
                    wait = wait.max(*d);
                }
                last_error = Some(describe(&e));
            }
        }
    }
}

/// Deletes `id` (via entry `entry_index`, falling back to the other entries
/// on transport errors) and waits until it is gone. Returns model seconds
/// from DELETE to 404.
pub async fn delete(
    ctx: &LevelCtx,
    entry_index: usize,
    id: &str,
    seed: u64,
) -> Result<f64, String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = ctx.entries.len();
    let mut which = entry_index % n.max(1);
    let start = clock::now();
    let deadline = start + ctx.clock.wall(ctx.delete_timeout_s);
    let mut deleted = false;
    let mut last = String::new();
    loop {
        let entry = &ctx.entries[which];
        let result = if deleted {
            compute::get_server(&entry.session, id).await.map(|_| ())
        } else {
            compute::delete_server(&entry.session, id).await
        };
        match result {
            Ok(()) => deleted = true,
            Err(e) if e.is_not_found() => return Ok(ctx.clock.since(start)),
            Err(e) => {
                if matches!(e, ClientError::Transport(_)) && n > 1 {
                    which = (which + 1) % n;
                }
                last = e.to_string();
            }
        }
        if clock::now() >= deadline {
            return Err(if deleted {
                format!(
                    "{id}: still present {} model s after DELETE",
                    ctx.delete_timeout_s
                )
            } else {
                format!("{id}: DELETE failed: {last}")
            });
        }
        let wait = ctx.jitter(&mut rng, 0.9, 1.1);
        tokio::time::sleep_until((clock::now() + wait).min(deadline)).await;
    }
}
