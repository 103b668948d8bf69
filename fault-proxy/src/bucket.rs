//! A token bucket in integer micro-units, refilled by the instants it is shown.
//!
//! Time is a parameter (`now`), so a bucket is a pure function of the instants
//! it is shown; the server passes `tokio::time::Instant::now()`, which tests
//! can pause. Amounts are integers in micro-units so that refills and
//! half-unit reads never drift through floating point.

use tokio::time::Instant;

use crate::units::HalfUnits;

const MICROS_PER_UNIT: i64 = 1_000_000;

/// A token bucket: `rate` units per second, holding at most `limit` units.
/// Its level may go negative (debt) when reads are charged after the fact.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Bucket {
    rate: u32,
    limit_micros: i64,
    level_micros: i64,
    last: Instant,
    /// Nanosecond-units not yet worth a whole micro-unit, carried so refills
    /// add up exactly however often they happen.
    carry: u128,
}

impl Bucket {
    /// A bucket holding `initial_units` now, refilling at `rate` per second up
    /// to `limit_seconds` seconds' worth.
    pub(crate) fn new(rate: u32, limit_seconds: u32, initial_units: u64, now: Instant) -> Bucket {
        let limit_micros = i64::from(rate) * i64::from(limit_seconds) * MICROS_PER_UNIT;
        let initial =
            i64::try_from(initial_units).unwrap_or(i64::MAX / MICROS_PER_UNIT) * MICROS_PER_UNIT;
        Bucket {
            rate,
            limit_micros,
            level_micros: initial.min(limit_micros),
            last: now,
            carry: 0,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = self.last.max(now);
        if self.level_micros >= self.limit_micros {
            self.carry = 0;
            return;
        }
        // rate units/s * ns * 1e6 micro/unit / 1e9 ns/s = rate * ns / 1000 micro-units.
        let total = elapsed.as_nanos() * u128::from(self.rate) + self.carry;
        let gained = i64::try_from(total / 1000).unwrap_or(i64::MAX);
        self.carry = total % 1000;
        self.level_micros = self
            .level_micros
            .saturating_add(gained)
            .min(self.limit_micros);
    }

    /// The units in the bank at `now` (negative while in debt).
    #[cfg(test)]
    pub(crate) fn level(&mut self, now: Instant) -> f64 {
        self.refill(now);
        self.level_micros as f64 / MICROS_PER_UNIT as f64
    }

    /// Whether `cost` can be paid up front at `now` (writes).
    pub(crate) fn can_pay(&mut self, now: Instant, cost: HalfUnits) -> bool {
        self.refill(now);
        self.level_micros >= cost.micros()
    }

    /// Whether the bank is full at `now` (so forgetting it changes nothing).
    pub(crate) fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.level_micros >= self.limit_micros
    }

    /// Whether the bank is not in debt at `now` (reads are admitted then).
    pub(crate) fn is_solvent(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.level_micros >= 0
    }

    /// Takes `cost` from the bank, into debt if need be.
    pub(crate) fn charge(&mut self, now: Instant, cost: HalfUnits) {
        self.refill(now);
        self.level_micros -= cost.micros();
    }

    /// Changes the rate and size, keeping what is banked (up to the new size).
    pub(crate) fn reconfigure(&mut self, now: Instant, rate: u32, limit_seconds: u32) {
        self.refill(now);
        self.rate = rate;
        self.limit_micros = i64::from(rate) * i64::from(limit_seconds) * MICROS_PER_UNIT;
        self.level_micros = self.level_micros.min(self.limit_micros);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn units(u: u64) -> HalfUnits {
        HalfUnits::from_units(u)
    }

    #[test]
    fn bucket_refills_at_its_rate_and_starts_with_the_initial_bank() {
        let t0 = Instant::now();
        let mut bucket = Bucket::new(5, 300, 0, t0);
        assert!(!bucket.can_pay(t0, units(1)), "empty bank at start");
        assert!(!bucket.can_pay(t0 + secs(0.199), units(1)));
        assert!(
            bucket.can_pay(t0 + secs(0.2), units(1)),
            "5/s gives 1 unit in 200 ms"
        );
        assert_eq!(bucket.level(t0 + secs(1.0)), 5.0);

        let mut banked = Bucket::new(5, 300, 7, t0);
        assert_eq!(banked.level(t0), 7.0);
    }

    #[test]
    fn many_small_refills_add_up_exactly() {
        let t0 = Instant::now();
        let mut bucket = Bucket::new(3, 300, 0, t0);
        let mut now = t0;
        for _ in 0..1000 {
            now += Duration::from_nanos(333_333);
            bucket.refill(now);
        }
        // 0.333333 s at 3/s.
        assert_eq!(bucket.level_micros, 999_999);
    }

    #[test]
    fn bank_is_capped_at_burst_seconds_worth() {
        let t0 = Instant::now();
        let mut bucket = Bucket::new(5, 300, 0, t0);
        assert_eq!(bucket.level(t0 + secs(300.0)), 1500.0);
        assert_eq!(bucket.level(t0 + secs(10_000.0)), 1500.0);
        let mut short = Bucket::new(5, 2, 100, t0);
        assert_eq!(short.level(t0), 10.0, "initial bank is capped too");
    }

    #[test]
    fn writes_pay_up_front_and_reads_go_into_debt() {
        let t0 = Instant::now();
        let mut bucket = Bucket::new(2, 300, 2, t0);
        assert!(bucket.can_pay(t0, units(2)));
        assert!(!bucket.can_pay(t0, units(3)));
        assert!(bucket.is_solvent(t0));
        bucket.charge(t0, units(6));
        assert_eq!(bucket.level(t0), -4.0);
        assert!(!bucket.is_solvent(t0 + secs(1.99)));
        assert!(
            bucket.is_solvent(t0 + secs(2.0)),
            "debt of 4 is repaid in 2 s at 2/s"
        );
    }

    #[test]
    fn half_units_are_exact() {
        let t0 = Instant::now();
        let mut bucket = Bucket::new(1, 300, 1, t0);
        bucket.charge(t0, HalfUnits::new(1));
        assert_eq!(bucket.level(t0), 0.5);
    }

    #[test]
    fn reconfiguring_keeps_the_bank_up_to_the_new_size() {
        let t0 = Instant::now();
        let mut bucket = Bucket::new(10, 300, 100, t0);
        bucket.reconfigure(t0 + secs(1.0), 1, 20);
        assert_eq!(bucket.level(t0 + secs(1.0)), 20.0);
        bucket.charge(t0 + secs(1.0), units(20));
        assert_eq!(bucket.level(t0 + secs(3.0)), 2.0, "refills at the new rate");
    }
}
