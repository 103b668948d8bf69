//! The decision function: a token bucket in its GCRA form, in integer
//! microseconds. This is the model; `gcra.lua` is the same function for Redis,
//! and the tests in `tests/limiter_script.rs` check that both agree.
//!
//! A bucket is stored as one number, its *theoretical arrival time* (TAT): the
//! moment it will be full again. With `T` the emission interval (time per
//! token) and `tau = capacity * T` the full refill time, the bucket holds
//! `(now + tau - max(tat, now)) / T` tokens. Taking `cost` tokens moves the
//! TAT to `max(tat, now) + cost * T`, which is allowed while it stays within
//! `now + tau`. So:
//!
//! - a bucket with `tat <= now` is full, which is why a missing key means
//!   full and a key can expire exactly at its TAT;
//! - only an admitted request changes the TAT, so only admissions write;
//! - a TAT beyond `now + tau` cannot happen unless the clock stepped back (a
//!   failover to a replica whose clock is behind, an NTP step); it is clamped
//!   to `now + tau`, an empty bucket, and the clamped value is written even
//!   when the request is denied, so a backward step never locks a caller out
//!   for longer than one full refill. This is the only write that is not an
//!   admission.
//!
//! All limits of one call are checked first, and their TATs move only when
//! every one allows.

use std::time::Duration;

use crate::limiter::decision::{Outcome, Verdict};
use crate::limiter::quota::Quota;

/// One limit's view of a request, before the limits are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Check {
    /// The stored TAT, raised to now and clamped to now + tau.
    tat: u64,
    /// The stored TAT was beyond now + tau: the clock stepped back.
    clamped: bool,
    /// The TAT after taking the cost; only meaningful when `cost <= capacity`.
    new_tat: u64,
    /// Cost above capacity.
    never: bool,
    /// Microseconds until the cost fits; 0 when it fits now.
    wait: u64,
}

fn check(quota: &Quota, stored: Option<u64>, now: u64, cost: u64) -> Check {
    let interval = quota.interval_micros();
    let tau = quota.refill_micros();
    let stored = stored.unwrap_or(now).max(now);
    let clamped = stored > now + tau;
    let tat = stored.min(now + tau);
    if cost > quota.capacity() {
        return Check {
            tat,
            clamped,
            new_tat: tat,
            never: true,
            wait: 0,
        };
    }
    let new_tat = tat + cost * interval;
    Check {
        tat,
        clamped,
        new_tat,
        never: false,
        wait: (new_tat - now).saturating_sub(tau),
    }
}

/// Decides a request of `cost` tokens against every bucket at time `now`
/// (microseconds), and on admission moves the buckets' TATs in `tats` (and
/// otherwise clamps those a backward clock step left beyond a full refill).
///
/// `tats[i]` is the stored TAT of `quotas[i]`'s bucket, `None` when there is
/// none (a full bucket). A cost of 0 looks without taking and writes nothing.
///
/// # Panics
///
/// When `quotas` and `tats` differ in length or are empty.
#[allow(unreachable_pub)]
// public through `test_util` (feature test-util)
// The limiters decide through `decide_all`; this one-part form is the model
// the tests and `test_util` check the scripts against.
#[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
pub fn decide(now: u64, quotas: &[Quota], tats: &mut [Option<u64>], cost: u64) -> Verdict {
    let judged = judge(now, quotas, tats, cost);
    judged.write(tats, judged.allowed());
    judged.verdict
}

/// What [`judge`] found: the verdict, and what each bucket would store.
#[derive(Debug, Clone)]
pub(crate) struct Judged {
    pub(crate) verdict: Verdict,
    checks: Vec<Check>,
    cost: u64,
}

impl Judged {
    /// True when every bucket holds the cost.
    pub(crate) fn allowed(&self) -> bool {
        self.verdict.outcome == Outcome::Allowed
    }

    /// Writes the decision into `tats`: the new TATs when `take` (and the
    /// cost is above 0), else only the clamps of a backward clock step.
    pub(crate) fn write(&self, tats: &mut [Option<u64>], take: bool) {
        let take = take && self.allowed() && self.cost > 0;
        for (tat, c) in tats.iter_mut().zip(&self.checks) {
            if take {
                *tat = Some(c.new_tat);
            } else if c.clamped {
                *tat = Some(c.tat);
            }
        }
    }
}

/// Decides without writing: the verdict a request of `cost` gets, with the
/// remaining tokens and reset time as they are after taking the cost when
/// every bucket holds it (whether the caller then takes it or not), and as
/// they are otherwise.
///
/// # Panics
///
/// When `quotas` and `tats` differ in length or are empty.
pub(crate) fn judge(now: u64, quotas: &[Quota], tats: &[Option<u64>], cost: u64) -> Judged {
    assert_eq!(quotas.len(), tats.len(), "one stored TAT per quota");
    assert!(!quotas.is_empty(), "at least one quota");
    let checks: Vec<Check> = quotas
        .iter()
        .zip(tats.iter())
        .map(|(quota, tat)| check(quota, *tat, now, cost))
        .collect();

    let never = checks.iter().position(|c| c.never);
    let longest_wait = checks.iter().enumerate().filter(|(_, c)| c.wait > 0).fold(
        None,
        |best: Option<(usize, u64)>, (i, c)| match best {
            Some((_, wait)) if wait >= c.wait => best,
            _ => Some((i, c.wait)),
        },
    );
    let allowed = never.is_none() && longest_wait.is_none();

    // The TAT each bucket has after the decision.
    let after = |c: &Check| if allowed { c.new_tat } else { c.tat };
    let remaining = |(quota, c): (&Quota, &Check)| {
        (now + quota.refill_micros() - after(c)) / quota.interval_micros()
    };
    let fewest_left = quotas.iter().zip(&checks).map(remaining).enumerate().fold(
        (0, u64::MAX),
        |best, (i, left)| {
            if left < best.1 { (i, left) } else { best }
        },
    );
    let reset_after = checks.iter().map(|c| after(c) - now).max().unwrap_or(0);

    let (outcome, limit) = match (never, longest_wait) {
        (Some(i), _) => (Outcome::Never, i),
        (None, Some((i, wait))) => (
            Outcome::Denied {
                retry_after: Duration::from_micros(wait),
            },
            i,
        ),
        (None, None) => (Outcome::Allowed, fewest_left.0),
    };
    Judged {
        verdict: Verdict {
            outcome,
            remaining: fewest_left.1,
            reset_after: Duration::from_micros(reset_after),
            limit,
        },
        checks,
        cost,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const START: u64 = 1_780_000_000_000_000; // 2026, as Redis TIME reports it

    fn quota(capacity: u64, tokens: u64, period_ms: u64) -> Quota {
        Quota::per_period(tokens, Duration::from_millis(period_ms))
            .burst(capacity)
            .unwrap()
    }

    #[test]
    fn a_full_bucket_admits_its_capacity_then_refills_one_token_per_interval() {
        let q = [quota(3, 1, 1000)];
        let mut tats = [None];
        for left in [2, 1, 0] {
            let v = decide(START, &q, &mut tats, 1);
            assert_eq!(v.outcome, Outcome::Allowed);
            assert_eq!(v.remaining, left);
        }
        assert_eq!(tats[0], Some(START + 3_000_000));
        let v = decide(START, &q, &mut tats, 1);
        assert_eq!(
            v.outcome,
            Outcome::Denied {
                retry_after: Duration::from_secs(1)
            }
        );
        assert_eq!(v.reset_after, Duration::from_secs(3));
        assert_eq!(tats[0], Some(START + 3_000_000), "a denial writes nothing");
        let v = decide(START + 999_999, &q, &mut tats, 1);
        assert!(!matches!(v.outcome, Outcome::Allowed));
        let v = decide(START + 1_000_000, &q, &mut tats, 1);
        assert_eq!(v.outcome, Outcome::Allowed);
    }

    #[test]
    fn a_cost_above_capacity_is_never_admitted_and_takes_nothing() {
        let q = [quota(5, 5, 1000)];
        let mut tats = [None];
        let v = decide(START, &q, &mut tats, 6);
        assert_eq!(v.outcome, Outcome::Never);
        assert_eq!(v.remaining, 5);
        assert_eq!(tats[0], None);
        let v = decide(START, &q, &mut tats, u64::MAX);
        assert_eq!(v.outcome, Outcome::Never);
        assert_eq!(decide(START, &q, &mut tats, 5).outcome, Outcome::Allowed);
    }

    #[test]
    fn a_zero_cost_looks_without_writing() {
        let q = [quota(5, 5, 1000)];
        let mut tats = [None];
        let v = decide(START, &q, &mut tats, 0);
        assert_eq!((v.outcome, v.remaining), (Outcome::Allowed, 5));
        assert_eq!(tats[0], None);
    }

    #[test]
    fn several_limits_take_from_all_or_from_none() {
        let q = [quota(10, 10, 1000), quota(3, 3, 86_400_000)];
        let mut tats = [None, None];
        for _ in 0..3 {
            assert_eq!(decide(START, &q, &mut tats, 1).outcome, Outcome::Allowed);
        }
        let before = tats;
        let v = decide(START, &q, &mut tats, 1);
        assert!(matches!(v.outcome, Outcome::Denied { .. }));
        assert_eq!(v.limit, 1, "the daily limit denied");
        assert_eq!(v.remaining, 0);
        assert_eq!(tats, before, "the per-second bucket kept its tokens");
        let v = decide(START, &q, &mut tats, 20);
        assert_eq!((v.outcome, v.limit), (Outcome::Never, 0));
    }

    #[test]
    fn a_clock_stepping_back_costs_at_most_one_full_refill() {
        let q = [quota(2, 1, 1000)];
        let mut tats = [Some(START + 3_600_000_000)]; // written by a clock an hour ahead
        let v = decide(START, &q, &mut tats, 1);
        assert_eq!(
            v.outcome,
            Outcome::Denied {
                retry_after: Duration::from_secs(1)
            },
            "clamped to an empty bucket, not an hour's wait"
        );
        assert_eq!(v.reset_after, Duration::from_secs(2));
        assert_eq!(
            decide(START + 1_000_000, &q, &mut tats, 1).outcome,
            Outcome::Allowed
        );
    }

    /// A quota whose configured interval (before rounding) is at least
    /// `min_interval_us`, with that configured interval in microseconds.
    fn configured(min_interval_us: u64) -> impl Strategy<Value = (Quota, f64)> {
        (1u64..=50, 1u64..=20, 1u64..=5_000).prop_filter_map(
            "interval too short",
            move |(capacity, tokens, period_ms)| {
                (period_ms * 1000 / tokens >= min_interval_us).then(|| {
                    let exact = (period_ms * 1000) as f64 / tokens as f64;
                    (quota(capacity, tokens, period_ms), exact)
                })
            },
        )
    }

    fn quotas(min_interval_us: u64) -> impl Strategy<Value = Quota> {
        configured(min_interval_us).prop_map(|(q, _)| q)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// In every window [a, b] of admission times, a token bucket admits
        /// at most capacity + (b - a) / T tokens.
        #[test]
        fn never_admits_more_than_capacity_plus_rate_times_window(
            q in quotas(1),
            steps in prop::collection::vec((0u64..2_000_000, 0u64..8), 1..120),
        ) {
            let mut tats = [None];
            let mut now = START;
            let mut admitted: Vec<(u64, u64)> = Vec::new();
            for (dt, cost) in steps {
                now += dt % (q.refill_micros() * 2 + 1);
                if decide(now, &[q], &mut tats, cost).outcome == Outcome::Allowed {
                    admitted.push((now, cost));
                }
            }
            for (i, &(start, _)) in admitted.iter().enumerate() {
                let mut total = 0;
                for &(end, cost) in &admitted[i..] {
                    total += cost;
                    prop_assert!(
                        total * q.interval_micros() <= q.refill_micros() + (end - start),
                        "{total} tokens in {} µs with {q}", end - start
                    );
                }
            }
        }

        /// A caller spacing single tokens at 1/0.99 of the configured interval
        /// is never denied, even right after it emptied the bucket in a burst.
        /// (Intervals of at least 200 µs: below that, the rounding of the
        /// interval to whole microseconds takes more than 0.5% of the rate.)
        #[test]
        fn never_denies_a_caller_pacing_at_99_percent_of_the_rate(
            (q, exact_interval) in configured(200),
            burst in 0u64..60,
            requests in 1usize..200,
        ) {
            let pace = exact_interval / 0.99;
            let mut tats = [None];
            for _ in 0..burst {
                decide(START, &[q], &mut tats, 1);
            }
            for k in 1..=requests {
                let now = START + (k as f64 * pace) as u64;
                let v = decide(now, &[q], &mut tats, 1);
                prop_assert_eq!(v.outcome, Outcome::Allowed, "request {} of {}", k, q);
            }
        }

        /// Denials and never-answers leave every bucket as it was.
        #[test]
        fn only_admissions_write(
            qs in prop::collection::vec(quotas(1), 1..4),
            steps in prop::collection::vec((0u64..500_000, 0u64..60), 1..60),
        ) {
            let mut tats = vec![None; qs.len()];
            let mut now = START;
            for (dt, cost) in steps {
                now += dt;
                let before = tats.clone();
                let v = decide(now, &qs, &mut tats, cost);
                if v.outcome != Outcome::Allowed || cost == 0 {
                    prop_assert_eq!(&tats, &before);
                } else {
                    prop_assert!(tats.iter().all(|t| t.is_some_and(|t| t > now)));
                }
            }
        }
    }
}
