//! Settling a request's cost after the fact: the model. `settle.lua` is the
//! same function for Redis, and `tests/limiter_script.rs` checks both agree.
//!
//! A caller whose cost is known only once its work is done (the read units a
//! query really consumed) reserves the most it may take with an ordinary
//! check, then settles the difference: a refund of what it did not use, or a
//! debit of what it took beyond the reservation. A settle decides nothing; it
//! moves the TATs of [`crate::limiter::gcra`] by `tokens * T` within the
//! bounds a bucket can have, full and empty.

use crate::limiter::quota::Quota;

/// Moves `tokens` into every bucket at time `now` (microseconds): a debit
/// when positive, a refund when negative, nothing at 0. `tats` are the stored
/// TATs as for [`decide`](crate::limiter::gcra::decide); `None` afterwards
/// means the bucket is full and its key is deleted.
///
/// - A debit takes the tokens even when the bucket does not hold them, but
///   never leaves a bucket more than empty: the TAT becomes
///   `min(max(tat, now) + tokens * T, now + tau)`. Debt beyond empty could
///   not be kept anyway: a TAT beyond `now + tau` is what a check reads as a
///   backward clock step and clamps. A caller that reserves the most a
///   request may take up front only debits beyond empty when the request
///   overran its reservation; that overrun is forgiven.
/// - A refund gives back up to what the bucket lacks and never makes it
///   fuller than full: a TAT above now becomes `max(tat - tokens * T, now)`,
///   reading a TAT beyond `now + tau` as `now + tau` as a check does; a TAT
///   that reaches now is deleted (a full bucket), and a full bucket (no TAT,
///   or one not above now) stays as it is.
///
/// # Panics
///
/// When `quotas` and `tats` differ in length.
#[allow(unreachable_pub)] // public through `test_util` (feature test-util)
pub fn settle(now: u64, quotas: &[Quota], tats: &mut [Option<u64>], tokens: i64) {
    assert_eq!(quotas.len(), tats.len(), "one stored TAT per quota");
    // At most a full refill moves: beyond that both bounds clamp anyway, and
    // `capacity * T` cannot overflow (refill times are capped at 2^45 µs).
    let moved =
        |quota: &Quota| tokens.unsigned_abs().min(quota.capacity()) * quota.interval_micros();
    for (quota, tat) in quotas.iter().zip(tats.iter_mut()) {
        let empty = now + quota.refill_micros();
        if tokens > 0 {
            let from = tat.unwrap_or(now).max(now);
            *tat = Some((from + moved(quota)).min(empty));
        } else if tokens < 0
            && let Some(stored) = tat.filter(|stored| *stored > now)
        {
            let refunded = stored.min(empty).saturating_sub(moved(quota)).max(now);
            *tat = (refunded > now).then_some(refunded);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::limiter::decision::Outcome;
    use crate::limiter::gcra::decide;

    const START: u64 = 1_780_000_000_000_000;

    /// 10 tokens, one a second.
    fn per_second_10() -> Quota {
        Quota::per_second(1).burst(10).unwrap()
    }

    fn admits(now: u64, quotas: &[Quota], tats: &mut [Option<u64>], cost: u64) -> bool {
        decide(now, quotas, tats, cost).outcome == Outcome::Allowed
    }

    fn denied_for(micros: u64) -> Outcome {
        Outcome::Denied {
            retry_after: Duration::from_micros(micros),
        }
    }

    #[test]
    fn a_debit_denies_until_the_debt_is_repaid() {
        let q = [per_second_10()];
        let mut tats = [None];
        assert!(admits(START, &q, &mut tats, 2));
        // The request took 7 tokens, not the 2 it reserved: 3 are left.
        settle(START, &q, &mut tats, 5);
        assert_eq!(decide(START, &q, &mut tats, 0).remaining, 3);
        let v = decide(START, &q, &mut tats, 5);
        assert_eq!(
            v.outcome,
            denied_for(2_000_000),
            "5 tokens minus the 3 left"
        );
        assert!(!admits(START + 1_999_999, &q, &mut tats, 5));
        assert!(admits(START + 2_000_000, &q, &mut tats, 5));
    }

    #[test]
    fn a_debit_saturates_at_an_empty_bucket() {
        let q = [per_second_10(), Quota::per_day(100).burst(100).unwrap()];
        let mut tats = [None, Some(START + 5)];
        settle(START, &q, &mut tats, 13);
        assert_eq!(
            tats[0],
            Some(START + 10_000_000),
            "13 of 10 tokens: empty, not in debt"
        );
        settle(START, &q, &mut tats, i64::MAX);
        assert_eq!(
            tats,
            [
                Some(START + q[0].refill_micros()),
                Some(START + q[1].refill_micros())
            ]
        );
        let v = decide(START, &q, &mut tats, 1);
        assert_eq!(v.outcome, denied_for(q[1].interval_micros()));
        // An empty bucket, not a longer wait: one token a second comes back.
        assert!(admits(START + 1_000_000, &q[..1], &mut tats[..1], 1));
    }

    #[test]
    fn a_refund_after_a_reservation_restores_exactly_the_unused_tokens() {
        let q = [per_second_10(), Quota::per_minute(60).burst(30).unwrap()];
        let mut tats = [None, None];
        assert!(admits(START, &q, &mut tats, 8));
        // The request used 3 of the 8 it reserved.
        settle(START + 100, &q, &mut tats, -5);
        let v = decide(START + 100, &q, &mut tats, 0);
        assert_eq!(
            v.remaining, 7,
            "10 - 3, with 100 µs of refill below a token"
        );
        assert!(admits(START + 100, &q, &mut tats, 7));
        assert!(!admits(START + 100, &q, &mut tats, 1));
    }

    #[test]
    fn a_refund_never_makes_a_bucket_fuller_than_full() {
        let q = [per_second_10()];
        let mut tats = [None];
        decide(START, &q, &mut tats, 2);
        settle(START, &q, &mut tats, -5);
        assert_eq!(tats[0], None, "full: the key goes");
        assert_eq!(decide(START, &q, &mut tats, 11).outcome, Outcome::Never);
        assert!(admits(START, &q, &mut tats, 10));
        assert!(!admits(START, &q, &mut tats, 1));

        let mut full = [None];
        settle(START, &q, &mut full, i64::MIN);
        assert_eq!(full[0], None, "a full bucket stays full");
        let mut passed = [Some(START - 7)];
        settle(START, &q, &mut passed, -1);
        assert_eq!(passed[0], Some(START - 7), "a passed TAT is already full");
        let mut stepped_back = [Some(START + 3_600_000_000)];
        settle(START, &q, &mut stepped_back, -1);
        assert_eq!(
            stepped_back[0],
            Some(START + 9_000_000),
            "read as an empty bucket, as a check reads it"
        );
    }

    #[test]
    fn settling_zero_writes_nothing() {
        let q = [per_second_10(), per_second_10()];
        let mut tats = [None, Some(START + 3_000_000)];
        settle(START, &q, &mut tats, 0);
        assert_eq!(tats, [None, Some(START + 3_000_000)]);
    }
}
