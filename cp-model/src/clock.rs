//! Mapping between model time and wall time, without drift.
//!
//! A driver records one wall origin (e.g. a `tokio::time::Instant`) and asks the
//! clock for the wall *offset* of each model deadline. Every offset is computed
//! as `(t - origin) * time_scale` from that single origin, never by adding up
//! sleeps, so timer overshoot never accumulates into model time.

use std::time::Duration;

use crate::error::ModelError;
use crate::types::ModelTime;

/// Model time ↔ wall offset ledger. `time_scale` = wall seconds per model second
/// (0.02 ⇒ one model second lasts 20 ms).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clock {
    time_scale: f64,
    origin: ModelTime,
}

impl Clock {
    /// A clock whose wall origin corresponds to model time 0.
    pub fn new(time_scale: f64) -> Result<Clock, ModelError> {
        Clock::with_origin(time_scale, 0.0)
    }

    /// A clock whose wall origin corresponds to model time `origin`.
    pub fn with_origin(time_scale: f64, origin: ModelTime) -> Result<Clock, ModelError> {
        if !(time_scale.is_finite() && time_scale > 0.0) {
            return Err(ModelError::InvalidTimeScale(time_scale));
        }
        if !origin.is_finite() {
            return Err(ModelError::InvalidInput(format!(
                "clock origin {origin} is not finite"
            )));
        }
        Ok(Clock { time_scale, origin })
    }

    pub fn time_scale(&self) -> f64 {
        self.time_scale
    }

    /// Wall offset from the origin at which model time `t` is reached
    /// (zero for instants before the origin).
    pub fn wall_offset(&self, t: ModelTime) -> Duration {
        let secs = (t - self.origin) * self.time_scale;
        if secs.is_finite() && secs > 0.0 {
            Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
        } else {
            Duration::ZERO
        }
    }

    /// Model time reached after `elapsed` wall time since the origin.
    pub fn model_time(&self, elapsed: Duration) -> ModelTime {
        self.origin + elapsed.as_secs_f64() / self.time_scale
    }

    /// Convert a model duration to a wall duration (e.g. for a client timeout).
    pub fn wall_duration(&self, model_secs: f64) -> Duration {
        let secs = model_secs * self.time_scale;
        if secs.is_finite() && secs > 0.0 {
            Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
        } else {
            Duration::ZERO
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_come_from_the_origin_not_from_sums() {
        let c = Clock::new(0.02).expect("valid scale");
        // 10,000 steps of 0.1 model s: summing wall sleeps of 2 ms each would
        // drift with any rounding; the ledger gives the exact product.
        let t = (0..10_000).fold(0.0, |acc: f64, _| acc + 0.1);
        let off = c.wall_offset(t);
        assert!((off.as_secs_f64() - t * 0.02).abs() < 1e-9);
        assert!((c.model_time(off) - t).abs() < 1e-6);
    }

    #[test]
    fn rejects_bad_scales() {
        assert!(Clock::new(0.0).is_err());
        assert!(Clock::new(f64::NAN).is_err());
        assert!(Clock::new(-1.0).is_err());
        assert_eq!(
            Clock::new(1.0).map(|c| c.wall_offset(-5.0)).ok(),
            Some(Duration::ZERO)
        );
    }
}
