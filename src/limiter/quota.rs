//! How much a bucket holds and how fast it refills, checked once at start-up.
//!
//! A quota is kept the way the decision function uses it: a capacity (the
//! burst, in tokens) and an emission interval (the time that refills one
//! token, in whole microseconds). The interval is rounded *up* to a whole
//! microsecond, so a quota never refills faster than configured: 3 tokens per
//! second refill every 333 334 µs. That loses at most 1 µs per token, which is
//! below 1% of the rate for every rate up to 10 000 tokens per second.
//!
//! Every product the decision function forms stays far below 2^53, the largest
//! integer a Lua number (a double) holds exactly, so the Redis script computes
//! the same integers as the Rust model: a bucket's full refill time (capacity
//! times interval) is capped at [`Quota::MAX_REFILL_TIME`].

use std::fmt;
use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use crate::error::ConfigError;

/// A token bucket's size and refill rate. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    capacity: NonZeroU64,
    interval_us: NonZeroU64,
}

impl Quota {
    /// The longest time a bucket may need to refill from empty to full:
    /// 2^45 µs, a little over 407 days.
    pub const MAX_REFILL_TIME: Duration = Duration::from_micros(1 << 45);

    /// The shortest refill period accepted.
    pub const MIN_PERIOD: Duration = Duration::from_millis(1);

    /// `rate` tokens per second; name the burst next:
    /// `Quota::per_second(10).burst(20)?`.
    pub fn per_second(rate: u64) -> QuotaBuilder {
        Quota::per_period(rate, Duration::from_secs(1))
    }

    /// `rate` tokens per minute; name the burst next.
    pub fn per_minute(rate: u64) -> QuotaBuilder {
        Quota::per_period(rate, Duration::from_secs(60))
    }

    /// `rate` tokens per hour; name the burst next.
    pub fn per_hour(rate: u64) -> QuotaBuilder {
        Quota::per_period(rate, Duration::from_secs(3600))
    }

    /// `rate` tokens per day; name the burst next (a daily allowance when the
    /// burst equals the rate).
    pub fn per_day(rate: u64) -> QuotaBuilder {
        Quota::per_period(rate, Duration::from_secs(86_400))
    }

    /// `tokens` tokens every `period` (at least 1 ms), evenly spread over the
    /// period; name the burst next.
    pub fn per_period(tokens: u64, period: Duration) -> QuotaBuilder {
        QuotaBuilder { tokens, period }
    }

    /// A bucket of `capacity` tokens that regains `tokens` tokens every
    /// `period`; see [`QuotaBuilder::burst`] for what is refused.
    fn new(capacity: u64, tokens: u64, period: Duration) -> Result<Quota, ConfigError> {
        let capacity = NonZeroU64::new(capacity)
            .ok_or_else(|| ConfigError::invalid("capacity", "must be at least 1 token"))?;
        let tokens = NonZeroU64::new(tokens)
            .ok_or_else(|| ConfigError::invalid("refill tokens", "must be at least 1 token"))?;
        if period < Quota::MIN_PERIOD {
            return Err(ConfigError::invalid(
                "refill period",
                format!("{period:?} is shorter than the minimum of 1 ms"),
            ));
        }
        let period_us = period.as_micros();
        if u128::from(tokens.get()) > period_us {
            return Err(ConfigError::invalid(
                "refill rate",
                format!("{tokens} tokens per {period:?} is faster than one token per microsecond"),
            ));
        }
        let interval_us = period_us.div_ceil(u128::from(tokens.get()));
        let refill_us = interval_us.saturating_mul(u128::from(capacity.get()));
        if refill_us > Quota::MAX_REFILL_TIME.as_micros() {
            return Err(ConfigError::invalid(
                "capacity",
                format!(
                    "{capacity} tokens at {tokens} per {period:?} take {:?} to refill, more than \
                     the maximum of {:?}",
                    Duration::from_micros(u64::try_from(refill_us).unwrap_or(u64::MAX)),
                    Quota::MAX_REFILL_TIME
                ),
            ));
        }
        let interval_us = NonZeroU64::new(interval_us as u64).expect("rounded up from above zero");
        Ok(Quota {
            capacity,
            interval_us,
        })
    }

    /// The burst: how many tokens a full bucket holds.
    pub fn capacity(&self) -> u64 {
        self.capacity.get()
    }

    /// The time that refills one token.
    pub fn interval(&self) -> Duration {
        Duration::from_micros(self.interval_us.get())
    }

    /// The time that refills one token, in microseconds.
    pub fn interval_micros(&self) -> u64 {
        self.interval_us.get()
    }

    /// The time an empty bucket needs to become full, in microseconds (the
    /// GCRA's tolerance, tau).
    pub fn refill_micros(&self) -> u64 {
        self.capacity.get() * self.interval_us.get()
    }

    /// Tokens regained per second (after the rounding of the interval).
    pub fn rate_per_second(&self) -> f64 {
        1e6 / self.interval_us.get() as f64
    }

    /// This instance's share when `instances` processes enforce the quota
    /// without talking to each other (the in-memory fallback while Redis is
    /// down): the interval multiplied, so the rates of all shares add up to
    /// at most the whole rate; and the burst divided, rounded down, but never
    /// below one token. So the bursts add up to at most the whole burst, except
    /// when the burst is smaller than `instances`: then every share still
    /// holds one token, and together they hold `instances` tokens (a burst of
    /// 2 shared by 8 instances admits 8 at once, then the whole rate).
    pub fn shared_by(&self, instances: NonZeroU32) -> Quota {
        let n = u64::from(instances.get());
        let capacity = (self.capacity.get() / n).max(1);
        let max_interval = (Quota::MAX_REFILL_TIME.as_micros() as u64) / capacity;
        let interval = self.interval_us.get().saturating_mul(n).min(max_interval);
        Quota {
            capacity: NonZeroU64::new(capacity).expect("at least 1"),
            interval_us: NonZeroU64::new(interval.max(1)).expect("at least 1"),
        }
    }
}

/// A quota's refill rate, waiting for its burst: the two numbers of a quota
/// are named at the call site, so they cannot be swapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a rate is not a quota until its burst is named: .burst(n)"]
pub struct QuotaBuilder {
    tokens: u64,
    period: Duration,
}

impl QuotaBuilder {
    /// The burst: how many tokens a full bucket holds.
    ///
    /// Fails when a number is zero, the period is under a millisecond, the
    /// refill is faster than one token per microsecond, or a full refill would
    /// take longer than [`Quota::MAX_REFILL_TIME`].
    pub fn burst(self, capacity: u64) -> Result<Quota, ConfigError> {
        Quota::new(capacity, self.tokens, self.period)
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} tokens, one more every {:?}",
            self.capacity,
            self.interval()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_rounded_up_so_the_rate_never_exceeds_the_configuration() {
        let q = Quota::per_second(3).burst(3).unwrap();
        assert_eq!(q.interval_micros(), 333_334);
        assert!(q.rate_per_second() <= 3.0);
        let q = Quota::per_day(10_000).burst(10_000).unwrap();
        assert_eq!(q.interval(), Duration::from_micros(8_640_000));
        assert_eq!(q.refill_micros(), 86_400_000_000);
    }

    #[test]
    fn periods_down_to_a_millisecond_are_accepted() {
        let q = Quota::per_period(1, Duration::from_millis(1))
            .burst(5)
            .unwrap();
        assert_eq!(q.interval_micros(), 1000);
        let err = Quota::per_period(1, Duration::from_micros(999))
            .burst(5)
            .unwrap_err();
        assert!(err.to_string().contains("refill period"), "{err}");
    }

    #[test]
    fn bad_quotas_are_rejected_with_the_setting_named() {
        for (quota, setting) in [
            (Quota::per_second(1).burst(0), "capacity"),
            (Quota::per_second(0).burst(1), "refill tokens"),
            (Quota::per_second(2_000_000).burst(1), "refill rate"),
            (Quota::per_day(1).burst(1_000_000), "capacity"),
        ] {
            let err = quota.unwrap_err();
            assert!(err.to_string().contains(setting), "{setting}: {err}");
        }
        assert!(
            Quota::per_second(1_000_000).burst(1).is_ok(),
            "1 µs is the limit"
        );
        assert!(Quota::per_day(1).burst(400).is_ok(), "400 days refill");
    }

    #[test]
    fn shares_split_the_rate_exactly_and_the_burst_down_to_one_token_each() {
        let whole = Quota::per_second(50).burst(100).unwrap();
        let share = whole.shared_by(NonZeroU32::new(4).unwrap());
        assert_eq!(share.capacity(), 25);
        assert_eq!(share.interval_micros(), 4 * whole.interval_micros());
        let tiny = Quota::per_second(1).burst(2).unwrap();
        let share = tiny.shared_by(NonZeroU32::new(8).unwrap());
        assert_eq!(share.capacity(), 1, "never an empty bucket");
        assert_eq!(share.interval_micros(), 8_000_000);
        // Eight shares of one token: eight at once, more than the burst of 2
        // (the doc says so); the rates still add up to the whole.
        assert_eq!(8 * share.capacity(), 8);
        assert_eq!(share.interval_micros() / 8, tiny.interval_micros());
        let huge = Quota::per_day(1).burst(400).unwrap();
        let share = huge.shared_by(NonZeroU32::new(1000).unwrap());
        assert!(share.refill_micros() <= Quota::MAX_REFILL_TIME.as_micros() as u64);
    }
}
