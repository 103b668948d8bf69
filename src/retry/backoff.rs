//! How long to wait before the next attempt: exponential backoff with jitter.
//!
//! Every delay is a pure function of the retry number, the previous delay and
//! an injected random number generator, so tests can pin the randomness and
//! check the distributions. The three jitter modes are the ones compared in
//! Marc Brooker's "Exponential Backoff And Jitter" (AWS Architecture Blog):
//! full jitter spreads a crowd of retrying clients best and is the default.

use std::time::Duration;

use rand::{Rng, RngExt};

use crate::error::ConfigError;
use crate::retry::ErrorKind;

/// How a delay is drawn from the exponential envelope `min(cap, base * 2^n)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Jitter {
    /// Uniform in `[0, envelope]`: the least synchronised retries (default).
    #[default]
    Full,
    /// Half the envelope plus uniform in `[0, envelope / 2]`: never retries at once.
    Equal,
    /// Uniform in `[base, 3 * previous delay]`, capped: grows from the last
    /// delay actually slept instead of from the retry number.
    Decorrelated,
}

/// Exponential backoff with jitter, with a base delay per kind of failure.
///
/// Throttling backs off from a longer base than transient failures: DynamoDB
/// refills capacity over the next second, while a dropped connection or a 500
/// is usually gone on the next try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    jitter: Jitter,
    throttle_base: Duration,
    transient_base: Duration,
    cap: Duration,
}

impl Default for Backoff {
    /// Full jitter, 250 ms base for throttling, 25 ms for other retryable
    /// failures, at most 5 s per sleep (the operation's deadline bounds the total).
    ///
    /// The throttle base was chosen with `benches/throttled_writes.rs`
    /// (shorter bases cost more attempts per completed write, longer ones
    /// delay interactive callers); 250 ms keeps the first retry short
    /// (125 ms on average).
    fn default() -> Self {
        Backoff {
            jitter: Jitter::Full,
            throttle_base: Duration::from_millis(250),
            transient_base: Duration::from_millis(25),
            cap: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// A builder starting from [`Backoff::default`]; each delay is named:
    /// `Backoff::builder().throttle_base(..).transient_base(..).cap(..).build()?`.
    pub fn builder() -> BackoffBuilder {
        BackoffBuilder(Backoff::default())
    }

    /// The jitter mode.
    pub fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// The longest single delay.
    pub fn cap(&self) -> Duration {
        self.cap
    }

    /// The base delay for a kind of failure: the throttle base for throttling,
    /// the transient base for everything else.
    pub fn base_for(&self, kind: &ErrorKind) -> Duration {
        match kind {
            ErrorKind::Throttling(_) => self.throttle_base,
            _ => self.transient_base,
        }
    }

    /// The delay before retry number `retry` (0 for the first retry).
    ///
    /// `previous` is the delay slept before the previous retry, if any; only
    /// decorrelated jitter uses it.
    pub fn delay<R: Rng + ?Sized>(
        &self,
        base: Duration,
        retry: u32,
        previous: Option<Duration>,
        rng: &mut R,
    ) -> Duration {
        let cap = nanos(self.cap);
        let base = nanos(base).min(cap);
        let envelope = base.saturating_mul(1u64 << retry.min(63)).min(cap);
        let delay = match self.jitter {
            Jitter::Full => rng.random_range(0..=envelope),
            Jitter::Equal => envelope / 2 + rng.random_range(0..=envelope - envelope / 2),
            Jitter::Decorrelated => {
                let previous = previous.map_or(base, nanos).max(base);
                let upper = previous.saturating_mul(3).min(cap).max(base);
                rng.random_range(base..=upper)
            }
        };
        Duration::from_nanos(delay)
    }
}

/// Builds a [`Backoff`]; both bases must be above zero and no longer than
/// the cap.
#[derive(Debug, Clone)]
pub struct BackoffBuilder(Backoff);

impl BackoffBuilder {
    /// How delays are drawn (default [`Jitter::Full`]).
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.0.jitter = jitter;
        self
    }

    /// The base delay after throttling (default 250 ms).
    pub fn throttle_base(mut self, base: Duration) -> Self {
        self.0.throttle_base = base;
        self
    }

    /// The base delay after other retryable failures (default 25 ms).
    pub fn transient_base(mut self, base: Duration) -> Self {
        self.0.transient_base = base;
        self
    }

    /// The longest single delay (default 5 s).
    pub fn cap(mut self, cap: Duration) -> Self {
        self.0.cap = cap;
        self
    }

    /// Checks the delays and builds the backoff.
    pub fn build(self) -> Result<Backoff, ConfigError> {
        let Backoff {
            throttle_base,
            transient_base,
            cap,
            ..
        } = self.0;
        for (name, base) in [
            ("throttle_base", throttle_base),
            ("transient_base", transient_base),
        ] {
            if base.is_zero() {
                return Err(ConfigError::invalid(name, "must be above zero"));
            }
            if base > cap {
                return Err(ConfigError::invalid(
                    name,
                    format!("{base:?} is longer than the cap {cap:?}"),
                ));
            }
        }
        Ok(self.0)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const MS: Duration = Duration::from_millis(1);

    fn backoff(jitter: Jitter) -> Backoff {
        Backoff::builder()
            .jitter(jitter)
            .throttle_base(100 * MS)
            .transient_base(25 * MS)
            .cap(2000 * MS)
            .build()
            .unwrap()
    }

    fn samples(b: &Backoff, retry: u32, n: usize) -> Vec<Duration> {
        let mut rng = StdRng::seed_from_u64(7);
        (0..n)
            .map(|_| b.delay(100 * MS, retry, None, &mut rng))
            .collect()
    }

    fn mean(v: &[Duration]) -> f64 {
        v.iter().map(Duration::as_secs_f64).sum::<f64>() / v.len() as f64
    }

    #[test]
    fn full_jitter_is_uniform_below_the_doubling_envelope() {
        let b = backoff(Jitter::Full);
        for (retry, envelope) in [(0, 100 * MS), (1, 200 * MS), (3, 800 * MS)] {
            let s = samples(&b, retry, 4000);
            assert!(s.iter().all(|d| *d <= envelope), "retry {retry}");
            let m = mean(&s) / envelope.as_secs_f64();
            assert!(
                (0.47..0.53).contains(&m),
                "mean/envelope {m} at retry {retry}"
            );
            assert!(s.iter().any(|d| *d < envelope / 10), "reaches near zero");
        }
    }

    #[test]
    fn equal_jitter_stays_in_the_upper_half_of_the_envelope() {
        let b = backoff(Jitter::Equal);
        let s = samples(&b, 2, 4000);
        assert!(s.iter().all(|d| *d >= 200 * MS && *d <= 400 * MS));
        let m = mean(&s);
        assert!((0.29..0.31).contains(&m), "mean {m}");
    }

    #[test]
    fn decorrelated_jitter_grows_from_the_previous_delay() {
        let b = backoff(Jitter::Decorrelated);
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..2000 {
            let d = b.delay(100 * MS, 5, Some(300 * MS), &mut rng);
            assert!(d >= 100 * MS && d <= 900 * MS, "{d:?}");
        }
        // Without a previous delay it starts from the base.
        for _ in 0..2000 {
            let d = b.delay(100 * MS, 0, None, &mut rng);
            assert!(d >= 100 * MS && d <= 300 * MS, "{d:?}");
        }
    }

    #[test]
    fn every_mode_respects_the_cap_even_for_huge_retry_numbers() {
        for jitter in [Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
            let b = backoff(jitter);
            let mut rng = StdRng::seed_from_u64(11);
            for retry in [10, 40, 63, 64, u32::MAX] {
                let d = b.delay(100 * MS, retry, Some(10 * b.cap()), &mut rng);
                assert!(d <= b.cap(), "{jitter:?} retry {retry}: {d:?}");
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        let b = Backoff::default();
        assert_eq!(samples(&b, 4, 50), samples(&b, 4, 50));
    }

    #[test]
    fn throttles_back_off_from_a_longer_base_than_transient_failures() {
        use crate::retry::{Ambiguity, Throttle, ThrottleCode};
        let b = Backoff::default();
        let throttle = ErrorKind::Throttling(Throttle::new(
            ThrottleCode::ProvisionedThroughputExceeded,
            vec![],
        ));
        assert!(b.base_for(&throttle) > b.base_for(&ErrorKind::Ambiguous(Ambiguity::Timeout)));
    }

    #[test]
    fn invalid_delays_are_rejected_at_construction() {
        assert!(
            Backoff::builder()
                .throttle_base(Duration::ZERO)
                .transient_base(MS)
                .cap(MS)
                .build()
                .is_err()
        );
        assert!(
            Backoff::builder()
                .throttle_base(10 * MS)
                .transient_base(20 * MS)
                .cap(15 * MS)
                .build()
                .is_err()
        );
        let err = Backoff::builder()
            .throttle_base(MS)
            .transient_base(2 * MS)
            .cap(MS)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("transient_base"), "{err}");
    }
}
