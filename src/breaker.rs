//! A named circuit breaker: stops a dead Redis from costing a deadline on
//! every call. The rate limiter and the capacity gate each have one, and its
//! name (`limiter`, `capacity`) labels its log lines and its gauge
//! `dynagate_circuit_open{breaker}`, so an outage of one Redis is never
//! reported as the other's.
//!
//! Every Redis call has a hard deadline. After
//! [`BreakerSettings::failures`] failures in a row, the first of them at least
//! [`BreakerSettings::failing_span`] ago, the circuit opens: for
//! [`BreakerSettings::open_for`] nobody waits for Redis, the caller's
//! fallback answers at once. Then one call probes Redis (half-open); its
//! success closes the circuit, its failure opens it again. A probe whose
//! caller gives up (the future is dropped) counts as a failure, so the
//! circuit never stays half-open with no probe in flight.
//!
//! The time span matters because calls are concurrent: one stall of a few
//! milliseconds (a busy Redis, a descheduled process) fails every call in
//! flight at once, which is many failures in a row but no outage. Without the
//! span, the first such stall under load opened the circuit in
//! `benches/limiter.rs`.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::ConfigError;

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
    /// Labels logs and metrics: `limiter` or `capacity`.
    name: &'static str,
    settings: BreakerSettings,
    state: Mutex<State>,
    /// The gauge was set once: after that it is set only when the circuit
    /// opens or closes, not on every call (a registry lookup each).
    reported: AtomicBool,
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
    pub(crate) fn new(name: &'static str, settings: BreakerSettings) -> CircuitBreaker {
        CircuitBreaker {
            name,
            settings,
            state: Mutex::new(State::Closed {
                failures: 0,
                since: None,
            }),
            reported: AtomicBool::new(false),
        }
    }

    #[cfg(test)]
    pub(crate) fn name(&self) -> &'static str {
        self.name
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
                breaker = self.name,
                open_for_ms = self.settings.open_for.as_millis() as u64,
                "Redis keeps failing: circuit open"
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
                tracing::info!(breaker = self.name, "Redis answers again: circuit closed");
                closed
            }
            State::Probing if probe => open_until(),
            // Open, or a late answer of a call made before a probe went out.
            other => other,
        };
        let was_open = !matches!(*state, State::Closed { .. });
        let open = !matches!(next, State::Closed { .. });
        *state = next;
        if open != was_open || !self.reported.swap(true, Ordering::Relaxed) {
            metrics::gauge!("dynagate_circuit_open", "breaker" => self.name).set(if open {
                1.0
            } else {
                0.0
            });
        }
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
        CircuitBreaker::new("test", settings.failing_for(Duration::ZERO))
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_simultaneous_failures_is_not_an_outage() {
        let b = CircuitBreaker::new(
            "test",
            BreakerSettings::new(3, Duration::from_secs(1)).unwrap(),
        );
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
    }

    /// The defect this name fixes: the capacity gate's breaker logged
    /// "rate-limit circuit open" and set the limiter's unlabelled gauge, so a
    /// dead capacity Redis looked like the limiter failing.
    #[test]
    fn an_open_circuit_is_logged_and_measured_under_its_own_name() {
        use std::io::Write;
        use std::sync::Arc;

        #[derive(Clone, Default)]
        struct Captured(Arc<Mutex<Vec<u8>>>);
        impl Write for Captured {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let settings = BreakerSettings::new(1, Duration::from_secs(1))
            .unwrap()
            .failing_for(Duration::ZERO);
        let capacity = CircuitBreaker::new("capacity", settings);
        assert_eq!(capacity.name(), "capacity");
        tracing::subscriber::with_default(subscriber, || {
            metrics::with_local_recorder(&recorder, || capacity.attempt().unwrap().failed())
        });

        let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert!(logs.contains("circuit open"), "{logs}");
        assert!(logs.contains("breaker=\"capacity\""), "{logs}");
        assert!(!logs.contains("rate-limit"), "{logs}");
        let rendered = handle.render();
        assert!(
            rendered.contains("dynagate_circuit_open{breaker=\"capacity\"} 1"),
            "{rendered}"
        );
        assert!(!rendered.contains("limiter"), "{rendered}");
    }
}
