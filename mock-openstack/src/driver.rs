//! Drives server lifecycles with tokio timers. The only place that sleeps.
//!
//! Seam for issue 3: the stage durations come from [`crate::lifecycle::StageTimes`];
//! a cp-model driver would replace these tasks with one engine task that
//! calls the same `State::advance_build` / `State::finish_delete`.

use std::sync::Arc;

use tokio::time::{sleep_until, Instant};

use crate::state::{BuildStage, State};

/// Starts the builds of the servers accepted by one request. One task
/// drives them in creation order, so with equal deadlines the first server
/// of a multi-create is scheduled first (as nova's scheduler handles one
/// request's instances in order).
pub fn spawn_boots(state: Arc<State>, ids: Vec<String>) {
    let stages = state.times.boot();
    tokio::spawn(async move {
        let start = Instant::now();
        let mut live = ids;
        // Deadlines are cumulative from the start (a ledger of model times),
        // so timer rounding does not accumulate across stages.
        let mut model_t = 0.0;
        for (dur, stage) in
            stages
                .into_iter()
                .zip([BuildStage::Schedule, BuildStage::Network, BuildStage::Spawn])
        {
            model_t += dur;
            sleep_until(start + state.wall(model_t)).await;
            live.retain(|id| state.advance_build(id, stage));
            if live.is_empty() {
                return;
            }
        }
    });
}

/// Finishes a delete after the `deleting` task state.
pub fn spawn_delete(state: Arc<State>, id: String) {
    let wait = state.wall(state.times.delete());
    tokio::spawn(async move {
        sleep_until(Instant::now() + wait).await;
        state.finish_delete(&id);
    });
}
