//! Time for the whole project: the time scale, the model ↔ wall mapping
//! without drift, and the one place that reads the clock.
//!
//! - [`TimeScale`]: wall seconds per model second, validated once (finite,
//!   positive). Every conversion between model and wall time goes through it.
//! - [`Clock`]: a [`TimeScale`] plus a model origin; a driver records one wall
//!   origin and asks for the wall *offset* of each model deadline. Every
//!   offset is computed as `(t - origin) * scale` from that single origin,
//!   never by adding up sleeps, so timer overshoot never accumulates.
//! - [`now`], [`utc_now`], [`unix_secs`], [`unix_millis`]: what the mock, the
//!   agent and the load generator read instead of `std::time::Instant`,
//!   `SystemTime` or `chrono::Utc::now()`. They follow tokio's clock, so on a
//!   paused current-thread runtime (the `sim` backend) they are virtual time
//!   and advance only when every task waits; elsewhere they are real time.
//!
//! The model itself ([`crate::Engine`]) never reads the time: its driver does.

use std::sync::Mutex;
use std::time::Duration;

use crate::error::ModelError;
use crate::types::ModelTime;

/// The instant type every component uses (tokio's, so that it follows a
/// paused clock).
pub type Instant = tokio::time::Instant;

/// Now, on the runtime's clock (virtual under the `sim` backend).
pub fn now() -> Instant {
    tokio::time::Instant::now()
}

/// The host's own clock, for measuring the host (CPU use, how long a run
/// took on this machine), never for anything the results are made of.
pub fn host_now() -> std::time::Instant {
    std::time::Instant::now()
}

type UtcBase = Option<(Instant, chrono::DateTime<chrono::Utc>)>;

/// (instant, UTC) pair that [`utc_now`] counts from.
static UTC_BASE: Mutex<UtcBase> = Mutex::new(None);

thread_local! {
    /// The base of a virtual-time run on this thread ([`restart_utc`]):
    /// each sim runtime is one thread with its own paused clock, and two
    /// of them may run side by side, so their bases must not mix.
    static THREAD_BASE: std::cell::Cell<UtcBase> = const { std::cell::Cell::new(None) };
}

/// The date and time, on the runtime's clock: the wall date when first
/// asked (whole seconds), then advanced by [`now`]. Under the `sim` backend
/// it advances with virtual time, so a timestamp's distance from another is
/// the same in every run; only the date itself differs between runs.
pub fn utc_now() -> chrono::DateTime<chrono::Utc> {
    let t = now();
    if let Some((i0, u0)) = THREAD_BASE.with(std::cell::Cell::get) {
        if t >= i0 {
            return offset(u0, t.saturating_duration_since(i0));
        }
    }
    let mut base = match UTC_BASE.lock() {
        Ok(b) => b,
        Err(poisoned) => poisoned.into_inner(),
    };
    // A new paused runtime (tests) may start before the recorded instant:
    // count from it afresh rather than stand still.
    let (i0, u0) = match *base {
        Some((i0, u0)) if t >= i0 => (i0, u0),
        _ => {
            let real = chrono::Utc::now();
            let whole = chrono::DateTime::from_timestamp(real.timestamp(), 0).unwrap_or(real);
            // Never go back before an earlier base.
            let u0 = base.map_or(whole, |(_, old)| whole.max(old));
            *base = Some((t, u0));
            (t, u0)
        }
    };
    offset(u0, t.saturating_duration_since(i0))
}

fn offset(u0: chrono::DateTime<chrono::Utc>, since: Duration) -> chrono::DateTime<chrono::Utc> {
    let since = chrono::Duration::from_std(since).unwrap_or(chrono::TimeDelta::MAX);
    u0.checked_add_signed(since)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// Starts [`utc_now`] afresh from now **on this thread**: the wall date in
/// whole seconds at this instant. A virtual-time run (one current-thread
/// runtime) calls it once at its start, so that every timestamp of the run
/// is that date plus an exact virtual offset (nothing from an earlier
/// runtime, or from a run on another thread, leaks in).
pub fn restart_utc() {
    let t = now();
    let real = chrono::Utc::now();
    let whole = chrono::DateTime::from_timestamp(real.timestamp(), 0).unwrap_or(real);
    THREAD_BASE.with(|b| b.set(Some((t, whole))));
}

/// Unix seconds on the runtime's clock (see [`utc_now`]).
pub fn unix_secs() -> i64 {
    utc_now().timestamp()
}

/// Unix milliseconds on the runtime's clock (see [`utc_now`]).
pub fn unix_millis() -> i64 {
    utc_now().timestamp_millis()
}

/// Wall seconds per model second (0.02 ⇒ one model second lasts 20 ms),
/// validated: finite and positive. The `sim` backend runs at 1.0 on a
/// virtual clock.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct TimeScale(f64);

impl TimeScale {
    /// One wall second per model second.
    pub const REAL: TimeScale = TimeScale(1.0);

    pub fn new(wall_per_model: f64) -> Result<TimeScale, ModelError> {
        if wall_per_model.is_finite() && wall_per_model > 0.0 {
            Ok(TimeScale(wall_per_model))
        } else {
            Err(ModelError::InvalidTimeScale(wall_per_model))
        }
    }

    /// Wall seconds per model second.
    pub fn get(self) -> f64 {
        self.0
    }

    /// The wall duration of `model_s` model seconds (zero for negative or
    /// non-finite input, saturating for huge ones).
    pub fn wall(self, model_s: f64) -> Duration {
        let secs = model_s * self.0;
        if secs.is_finite() && secs > 0.0 {
            Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
        } else {
            Duration::ZERO
        }
    }

    /// Wall milliseconds of `model_s` model seconds, never below `floor_ms`
    /// (so a tiny scale cannot turn a timer into a busy loop).
    pub fn wall_ms(self, model_s: f64, floor_ms: u64) -> u64 {
        (self.wall(model_s).as_millis().min(u128::from(u64::MAX)) as u64).max(floor_ms)
    }

    /// Model seconds lasting `wall` wall time.
    pub fn model_s(self, wall: Duration) -> f64 {
        wall.as_secs_f64() / self.0
    }

    /// Model seconds between two instants (0 when `to` is earlier).
    pub fn between(self, from: Instant, to: Instant) -> f64 {
        self.model_s(to.saturating_duration_since(from))
    }

    /// Model seconds since `from` on the runtime's clock.
    pub fn since(self, from: Instant) -> f64 {
        self.between(from, now())
    }
}

impl TryFrom<f64> for TimeScale {
    type Error = ModelError;
    fn try_from(v: f64) -> Result<Self, Self::Error> {
        TimeScale::new(v)
    }
}

impl From<TimeScale> for f64 {
    fn from(s: TimeScale) -> f64 {
        s.0
    }
}

impl std::fmt::Display for TimeScale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for TimeScale {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a number"))?;
        TimeScale::new(v).map_err(|e| e.to_string())
    }
}

/// Model time ↔ wall offset ledger.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clock {
    scale: TimeScale,
    origin: ModelTime,
}

impl Clock {
    /// A clock whose wall origin corresponds to model time 0.
    pub fn new(time_scale: f64) -> Result<Clock, ModelError> {
        Clock::with_origin(time_scale, 0.0)
    }

    /// A clock on an already validated scale, origin at model time 0.
    pub fn on(scale: TimeScale) -> Clock {
        Clock { scale, origin: 0.0 }
    }

    /// A clock whose wall origin corresponds to model time `origin`.
    pub fn with_origin(time_scale: f64, origin: ModelTime) -> Result<Clock, ModelError> {
        let scale = TimeScale::new(time_scale)?;
        if !origin.is_finite() {
            return Err(ModelError::InvalidInput(format!(
                "clock origin {origin} is not finite"
            )));
        }
        Ok(Clock { scale, origin })
    }

    pub fn time_scale(&self) -> f64 {
        self.scale.get()
    }

    pub fn scale(&self) -> TimeScale {
        self.scale
    }

    /// Wall offset from the origin at which model time `t` is reached
    /// (zero for instants before the origin).
    pub fn wall_offset(&self, t: ModelTime) -> Duration {
        self.scale.wall(t - self.origin)
    }

    /// Model time reached after `elapsed` wall time since the origin.
    pub fn model_time(&self, elapsed: Duration) -> ModelTime {
        self.origin + self.scale.model_s(elapsed)
    }

    /// Convert a model duration to a wall duration (e.g. for a client timeout).
    pub fn wall_duration(&self, model_secs: f64) -> Duration {
        self.scale.wall(model_secs)
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
