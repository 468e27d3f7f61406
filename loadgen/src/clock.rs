//! Model time: wall seconds divided by the time scale.

use std::time::{Duration, Instant};

/// Converts between wall time and model time for one run.
#[derive(Debug, Clone, Copy)]
pub struct ModelClock {
    /// Wall seconds per model second.
    pub scale: f64,
}

impl ModelClock {
    pub fn new(scale: f64) -> Self {
        Self { scale }
    }

    /// Model seconds between two instants (0 when `to` is earlier).
    pub fn between(&self, from: Instant, to: Instant) -> f64 {
        to.saturating_duration_since(from).as_secs_f64() / self.scale
    }

    /// Model seconds since `from`.
    pub fn since(&self, from: Instant) -> f64 {
        self.between(from, Instant::now())
    }

    /// The wall duration of `model_s` model seconds.
    pub fn wall(&self, model_s: f64) -> Duration {
        let w = model_s * self.scale;
        if w.is_finite() && w > 0.0 {
            Duration::from_secs_f64(w.min(1e9))
        } else {
            Duration::ZERO
        }
    }
}
