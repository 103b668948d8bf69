//! What the Redis limiter answers when Redis cannot, and the circuit breaker
//! that stops a dead Redis from costing a deadline on every request.
//!
//! Every Redis call has a hard deadline (a few milliseconds by default). A
//! failed or late call is answered by the [`FailurePolicy`]. After
//! [`BreakerSettings::failures`] failures in a row, the first of them at least
//! [`BreakerSettings::failing_for`] ago, the circuit opens: for
//! [`BreakerSettings::open_for`] no request waits for Redis, the policy
//! answers at once. Then one request probes Redis (half-open); its success
//! closes the circuit, its failure opens it again. A probe whose caller gives
//! up (the future is dropped) counts as a failure, so the circuit never stays
//! half-open with no probe in flight.
//!
//! The time span matters because calls are concurrent: one stall of a few
//! milliseconds (a busy Redis, a descheduled process) fails every call in
//! flight at once, which is many failures in a row but no outage. Without the
//! span, the first such stall under load opened the circuit for a full second
//! in `benches/limiter.rs`.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::ConfigError;

/// How the Redis limiter answers when Redis fails, is late, or the circuit
/// is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Admit: availability over protection. Right for limits that only
    /// smooth traffic, wrong for abuse limits (a dead Redis opens the gate).
    FailOpen,
    /// Deny, with the breaker's open time as retry-after: protection over
    /// availability (login attempts, expensive endpoints).
    FailClosed,
    /// Decide with the in-memory limiter, each quota divided by the number of
    /// instances that share it, so the fleet as a whole stays within the
    /// quota without coordinating (each instance holds its own share, so an
    /// unevenly balanced caller gets less than the whole).
    Fallback {
        /// How many instances enforce the quota together.
        instances: NonZeroU32,
    },
}

impl FailurePolicy {
    /// [`FailurePolicy::Fallback`] for `instances` instances (at least 1).
    pub fn fallback(instances: u32) -> Result<FailurePolicy, ConfigError> {
        let instances = NonZeroU32::new(instances)
            .ok_or_else(|| ConfigError::invalid("instances", "must be at least 1"))?;
        Ok(FailurePolicy::Fallback { instances })
    }

    /// A short stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            FailurePolicy::FailOpen => "fail_open",
            FailurePolicy::FailClosed => "fail_closed",
            FailurePolicy::Fallback { .. } => "fallback",
        }
    }
}

/// When the circuit opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    failures: NonZeroU32,
    failing_for: Duration,
    open_for: Duration,
}

impl Default for BreakerSettings {
    /// Opens after 3 failures in a row spanning at least 50 ms, for 1 s.
    fn default() -> Self {
        BreakerSettings {
            failures: NonZeroU32::new(3).expect("non-zero"),
            failing_for: Duration::from_millis(50),
            open_for: Duration::from_secs(1),
        }
    }
}

impl BreakerSettings {
    /// Opens after `failures` failures in a row (at least 1) for `open_for`
    /// (above zero); the failures must span the default 50 ms (see
    /// [`failing_for`](BreakerSettings::failing_for)).
    pub fn new(failures: u32, open_for: Duration) -> Result<BreakerSettings, ConfigError> {
        let failures = NonZeroU32::new(failures)
            .ok_or_else(|| ConfigError::invalid("breaker failures", "must be at least 1"))?;
        if open_for.is_zero() {
            return Err(ConfigError::invalid(
                "breaker open_for",
                "must be above zero",
            ));
        }
        Ok(BreakerSettings {
            failures,
            failing_for: BreakerSettings::default().failing_for,
            open_for,
        })
    }

    /// How long failures must have gone on, with no success in between,
    /// before they open the circuit (default 50 ms; zero opens on the count
    /// alone).
    pub fn failing_for(mut self, span: Duration) -> BreakerSettings {
        self.failing_for = span;
        self
    }

    /// The span failures must cover to open the circuit.
    pub fn failing_span(&self) -> Duration {
        self.failing_for
    }

    /// Failures in a row that open the circuit.
    pub fn failures(&self) -> u32 {
        self.failures.get()
    }

    /// How long the circuit stays open before a probe.
    pub fn open_for(&self) -> Duration {
        self.open_for
    }
}

/// The circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Requests go to Redis.
    Closed,
    /// Redis is not asked until the given time has passed.
    Open {
        /// Time left until the next probe may go out.
        retry_in: Duration,
    },
    /// One probe is in flight; other requests get the policy's answer.
    HalfOpen,
}

#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    settings: BreakerSettings,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed {
        failures: u32,
        since: Option<Instant>,
    },
    Open {
        until: Instant,
    },
    Probing,
}

/// Leave to call Redis once. Report the result with
/// [`succeeded`](Attempt::succeeded) or [`failed`](Attempt::failed); dropping
/// a probe without a report counts as a failure.
#[derive(Debug)]
pub(crate) struct Attempt<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    reported: bool,
}

impl CircuitBreaker {
    pub(crate) fn new(settings: BreakerSettings) -> CircuitBreaker {
        CircuitBreaker {
            settings,
            state: Mutex::new(State::Closed {
                failures: 0,
                since: None,
            }),
        }
    }

    pub(crate) fn settings(&self) -> BreakerSettings {
        self.settings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn state(&self) -> CircuitState {
        match *self.lock() {
            State::Closed { .. } => CircuitState::Closed,
            State::Open { until } => CircuitState::Open {
                retry_in: until.saturating_duration_since(Instant::now()),
            },
            State::Probing => CircuitState::HalfOpen,
        }
    }

    /// Leave to call Redis, or `None` while the circuit is open or a probe
    /// is in flight.
    pub(crate) fn attempt(&self) -> Option<Attempt<'_>> {
        let mut state = self.lock();
        let probe = match *state {
            State::Closed { .. } => false,
            State::Open { until } if Instant::now() >= until => {
                *state = State::Probing;
                true
            }
            State::Open { .. } | State::Probing => return None,
        };
        Some(Attempt {
            breaker: self,
            probe,
            reported: false,
        })
    }

    fn record(&self, probe: bool, success: bool) {
        let mut state = self.lock();
        let open_until = || {
            tracing::warn!(
                open_for_ms = self.settings.open_for.as_millis() as u64,
                "Redis keeps failing: rate-limit circuit open"
            );
            State::Open {
                until: Instant::now() + self.settings.open_for,
            }
        };
        let now = Instant::now();
        let closed = State::Closed {
            failures: 0,
            since: None,
        };
        let next = match *state {
            State::Closed { .. } if success => closed,
            State::Closed { failures, since } => {
                let since = since.unwrap_or(now);
                if failures + 1 >= self.settings.failures()
                    && now.duration_since(since) >= self.settings.failing_for
                {
                    open_until()
                } else {
                    State::Closed {
                        failures: failures + 1,
                        since: Some(since),
                    }
                }
            }
            State::Probing if probe && success => {
                tracing::info!("Redis answers again: rate-limit circuit closed");
                closed
            }
            State::Probing if probe => open_until(),
            // Open, or a late answer of a call made before a probe went out.
            other => other,
        };
        let open = !matches!(next, State::Closed { .. });
        *state = next;
        metrics::gauge!("dynagate_limiter_circuit_open").set(if open { 1.0 } else { 0.0 });
    }
}

impl Attempt<'_> {
    pub(crate) fn is_probe(&self) -> bool {
        self.probe
    }

    pub(crate) fn succeeded(mut self) {
        self.reported = true;
        self.breaker.record(self.probe, true);
    }

    pub(crate) fn failed(mut self) {
        self.reported = true;
        self.breaker.record(self.probe, false);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.reported && self.probe {
            self.breaker.record(true, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        let settings = BreakerSettings::new(2, Duration::from_secs(1)).unwrap();
        CircuitBreaker::new(settings.failing_for(Duration::ZERO))
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_simultaneous_failures_is_not_an_outage() {
        let b = CircuitBreaker::new(BreakerSettings::new(3, Duration::from_secs(1)).unwrap());
        for _ in 0..32 {
            b.attempt().unwrap().failed();
        }
        assert_eq!(b.state(), CircuitState::Closed, "all within one instant");
        tokio::time::advance(Duration::from_millis(50)).await;
        b.attempt().unwrap().failed();
        assert!(
            matches!(b.state(), CircuitState::Open { .. }),
            "50 ms of failures"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_failures_in_a_row_and_probes_once_after_the_wait() {
        let b = breaker();
        b.attempt().unwrap().failed();
        b.attempt().unwrap().succeeded();
        b.attempt().unwrap().failed();
        assert_eq!(b.state(), CircuitState::Closed, "a success reset the count");
        b.attempt().unwrap().failed();
        assert!(matches!(b.state(), CircuitState::Open { .. }));
        assert!(b.attempt().is_none(), "open: nobody waits for Redis");
        tokio::time::advance(Duration::from_secs(1)).await;
        let probe = b.attempt().unwrap();
        assert!(probe.is_probe());
        assert!(b.attempt().is_none(), "one probe at a time");
        probe.succeeded();
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_or_abandoned_probe_opens_the_circuit_again() {
        let b = breaker();
        b.attempt().unwrap().failed();
        b.attempt().unwrap().failed();
        tokio::time::advance(Duration::from_secs(1)).await;
        b.attempt().unwrap().failed();
        assert_eq!(
            b.state(),
            CircuitState::Open {
                retry_in: Duration::from_secs(1)
            }
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(b.attempt().unwrap());
        assert!(matches!(b.state(), CircuitState::Open { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn late_answers_from_before_the_opening_do_not_close_it() {
        let b = breaker();
        let slow = b.attempt().unwrap();
        b.attempt().unwrap().failed();
        b.attempt().unwrap().failed();
        slow.succeeded();
        assert!(matches!(b.state(), CircuitState::Open { .. }));
    }

    #[test]
    fn settings_are_validated() {
        assert!(BreakerSettings::new(0, Duration::from_secs(1)).is_err());
        assert!(BreakerSettings::new(1, Duration::ZERO).is_err());
        assert!(FailurePolicy::fallback(0).is_err());
        assert_eq!(FailurePolicy::fallback(3).unwrap().label(), "fallback");
    }
}
