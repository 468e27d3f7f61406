//! The engine driver's wake-up at a wall instant.
//!
//! tokio's timer wheel has a 1 ms tick and rounds every deadline up to the
//! next tick, so a 10 µs model service time (1 ms at time scale 0.01) would
//! be served after 1–2 ms. On real time the driver therefore waits on a
//! Linux `timerfd` (a high-resolution timer with no slack) registered with
//! tokio's reactor: it wakes within microseconds of the deadline, and every
//! request whose due time has passed is then served in one batch.
//!
//! On tokio's paused clock (the `sim` backend and virtual-time tests) time
//! is virtual and only tokio's own timer may advance it, so there the
//! driver keeps `tokio::time::sleep_until`, unchanged. A paused clock exists
//! only on a current-thread runtime: the precise timer is used on a
//! multi-thread runtime (the `mock-openstack` binary, the embedded and
//! Docker backends) and nowhere else.

use std::time::Duration;

use tokio::time::Instant;

/// Waits up to this long are spent yielding to the other tasks rather than
/// on a timer: arming and taking a timer interrupt costs about 10 µs of CPU
/// (measured in a VM, docs/benchmarks.md), more than such a wait.
pub const SPIN: Duration = Duration::from_micros(20);

/// How the driver waits for its next deadline.
pub enum Alarm {
    /// tokio's timer (1 ms resolution; follows a paused clock).
    Tokio,
    /// A high-resolution timer on tokio's reactor (real time only).
    #[cfg(target_os = "linux")]
    Precise(precise::TimerFd),
}

impl Alarm {
    /// The precise timer on a multi-thread runtime where the OS offers
    /// one, tokio's timer otherwise (always on a current-thread runtime,
    /// whose clock may be paused). Must be called inside a runtime.
    pub fn for_current_runtime() -> Self {
        let multi = matches!(
            tokio::runtime::Handle::current().runtime_flavor(),
            tokio::runtime::RuntimeFlavor::MultiThread
        );
        if multi {
            #[cfg(target_os = "linux")]
            match precise::TimerFd::new() {
                Ok(t) => return Self::Precise(t),
                Err(e) => tracing::warn!(error = %e, "no timerfd: the engine waits in 1 ms ticks"),
            }
        }
        Self::Tokio
    }

    /// Whether waits are finer than tokio's 1 ms tick.
    pub fn is_precise(&self) -> bool {
        !matches!(self, Self::Tokio)
    }

    /// Resolves at `wake` or later (cancel-safe: dropping the future
    /// before it resolves loses nothing).
    pub async fn wait_until(&mut self, wake: Instant) {
        match self {
            Self::Tokio => tokio::time::sleep_until(wake).await,
            #[cfg(target_os = "linux")]
            Self::Precise(t) => t.wait_until(wake).await,
        }
    }
}

#[cfg(target_os = "linux")]
mod precise {
    use std::io;
    use std::time::Duration;

    use super::SPIN;
    use rustix::time::{
        timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags,
        TimerfdTimerFlags, Timespec,
    };
    use tokio::net::unix::pipe;
    use tokio::time::Instant;

    /// A one-shot `CLOCK_MONOTONIC` timerfd (the clock behind `Instant`),
    /// registered with tokio's reactor. tokio's safe way to register an
    /// owned descriptor for readiness is its pipe receiver; a timerfd reads
    /// like one (8 bytes once it has fired, `EAGAIN` before).
    pub struct TimerFd {
        fd: pipe::Receiver,
        /// The instant the timer is armed for, until it is read as fired.
        armed: Option<Instant>,
    }

    impl TimerFd {
        pub fn new() -> io::Result<Self> {
            let fd = timerfd_create(
                TimerfdClockId::Monotonic,
                TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
            )?;
            Ok(Self {
                fd: pipe::Receiver::from_owned_fd_unchecked(fd)?,
                armed: None,
            })
        }

        /// Arms the timer `d` from now (re-arming resets an unread expiry).
        fn arm(&self, d: Duration) -> io::Result<()> {
            // An all-zero value would disarm: wait at least 1 ns.
            let d = d.max(Duration::from_nanos(1));
            let value = Itimerspec {
                it_interval: Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: Timespec {
                    tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                    tv_nsec: d.subsec_nanos().into(),
                },
            };
            timerfd_settime(&self.fd, TimerfdTimerFlags::empty(), &value)?;
            Ok(())
        }

        pub async fn wait_until(&mut self, wake: Instant) {
            let mut ticks = [0u8; 8];
            loop {
                let now = Instant::now();
                if wake <= now {
                    return;
                }
                if wake - now <= SPIN {
                    // Cheaper than a timer: let every other ready task run
                    // once, then look at the clock again.
                    tokio::task::yield_now().await;
                    continue;
                }
                // Arming costs more than the wait it saves when the
                // deadline keeps moving (a VM exit per hrtimer reprogram):
                // a pending earlier expiry is kept, it wakes us first and
                // we arm again then.
                if self.armed.is_none_or(|a| a > wake) {
                    if let Err(e) = self.arm(wake - now) {
                        // Not expected on a valid timerfd; never spin.
                        tracing::warn!(error = %e, "timerfd_settime failed; using tokio's timer");
                        self.armed = None;
                        return tokio::time::sleep_until(wake).await;
                    }
                    self.armed = Some(wake);
                }
                if let Err(e) = self.fd.readable().await {
                    tracing::warn!(error = %e, "timerfd not readable; using tokio's timer");
                    return tokio::time::sleep_until(wake).await;
                }
                match self.fd.try_read(&mut ticks) {
                    // Fired (armed relative to a `now` read before arming,
                    // on the clock `Instant` reads): look at the clock again.
                    Ok(_) => self.armed = None,
                    // Stale readiness (an expiry reset by re-arming).
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "timerfd read failed; using tokio's timer");
                        self.armed = None;
                        return tokio::time::sleep_until(wake).await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn precise_waits_end_after_the_deadline_and_well_within_a_tick() {
        let mut alarm = Alarm::for_current_runtime();
        if !alarm.is_precise() {
            eprintln!("no precise timer on this OS: skipped");
            return;
        }
        let mut late = Vec::new();
        for _ in 0..50 {
            let wake = Instant::now() + Duration::from_micros(50);
            alarm.wait_until(wake).await;
            let now = Instant::now();
            assert!(now >= wake, "woke before the deadline");
            late.push(now - wake);
        }
        late.sort();
        // tokio's timer would be ~1 ms late every time; allow a loaded host.
        assert!(
            late[late.len() / 2] < Duration::from_micros(500),
            "median lateness {:?}",
            late[late.len() / 2]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_wait_and_a_new_deadline_still_fire() {
        let mut alarm = Alarm::for_current_runtime();
        let far = Instant::now() + Duration::from_secs(3600);
        // Cancelled before it fires.
        let _ = tokio::time::timeout(Duration::from_millis(2), alarm.wait_until(far)).await;
        let soon = Instant::now() + Duration::from_micros(200);
        tokio::time::timeout(Duration::from_secs(5), alarm.wait_until(soon))
            .await
            .expect("re-armed timer fires");
        assert!(Instant::now() >= soon);
        // A deadline in the past returns at once.
        alarm.wait_until(soon).await;
    }

    #[tokio::test(start_paused = true)]
    async fn current_thread_runtimes_keep_tokio_timer() {
        let mut alarm = Alarm::for_current_runtime();
        assert!(!alarm.is_precise());
        let t0 = Instant::now();
        alarm.wait_until(t0 + Duration::from_secs(5)).await;
        assert_eq!(Instant::now() - t0, Duration::from_secs(5));
    }
}
