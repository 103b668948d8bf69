//! One request's checks together: what [`RateLimiter::check_all`] takes and
//! answers.
//!
//! [`RateLimiter::check_all`]: crate::limiter::RateLimiter::check_all

use crate::limiter::decision::{Decision, Outcome};
use crate::limiter::limits::Limits;

/// One part of a request's check: a subject's limits and what to take from
/// them.
///
/// Two checks of one call should not name the same bucket (the same
/// namespace and limit name for the same subject): every bucket is read
/// before any is written, so such a bucket would be taken from once.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    /// The limits to check.
    pub limits: &'a Limits,
    /// Whose buckets: an address, a hashed key, a route.
    pub subject: &'a str,
    /// Tokens to take from every bucket of `limits` (0 looks without taking).
    pub cost: u64,
    /// Decided on its own (shadow mode): its buckets take `cost` when they
    /// all hold it, whatever the other checks decide, and it never makes the
    /// request denied.
    pub independent: bool,
}

impl<'a> Check<'a> {
    /// A check that takes part in the request's all-or-nothing.
    pub fn new(limits: &'a Limits, subject: &'a str, cost: u64) -> Check<'a> {
        Check {
            limits,
            subject,
            cost,
            independent: false,
        }
    }

    /// The same check, decided on its own (shadow mode).
    pub fn independent(self) -> Check<'a> {
        Check {
            independent: true,
            ..self
        }
    }
}

/// What [`check_all`](crate::limiter::RateLimiter::check_all) decided: one
/// [`Decision`] per check, in order, and whether the request is admitted
/// (every non-independent check allowed; then, and only then, their buckets
/// took their costs).
///
/// Each decision is the one that check would have got alone at that moment:
/// a check whose buckets held its cost is [allowed](Decision::allowed), with
/// the remaining tokens and reset time it has after taking it, even when
/// another check kept the request from being admitted and its tokens were
/// therefore not taken (or were given back). Whether tokens stayed taken is
/// `admitted` for the non-independent checks, and the check's own outcome
/// for the independent ones.
///
/// A check the limiter did not decide, because another check was refused
/// locally first (see [`DecidedBy::NotAsked`](crate::limiter::DecidedBy::NotAsked)),
/// is allowed with nothing known (0 remaining); it took nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decisions {
    /// One decision per check, in the order of the checks.
    pub each: Vec<Decision>,
    /// True when the request may proceed.
    pub admitted: bool,
}

impl Decisions {
    /// The check the refusal of a request should be answered with, `None`
    /// when it was admitted: among the non-independent checks that were not
    /// allowed, the first whose cost is above a capacity (no wait helps),
    /// else the one with the longest wait (the request is admitted no sooner),
    /// the first of equals. `checks` are the checks that were decided.
    pub fn refused_by(&self, checks: &[Check<'_>]) -> Option<usize> {
        if self.admitted {
            return None;
        }
        let refusing = || {
            self.each
                .iter()
                .zip(checks)
                .enumerate()
                .filter(|(_, (d, c))| !c.independent && !d.allowed())
                .map(|(i, (d, _))| (i, d))
        };
        if let Some((i, _)) = refusing().find(|(_, d)| d.outcome() == Outcome::Never) {
            return Some(i);
        }
        refusing()
            .fold(
                None,
                |best: Option<(usize, &Decision)>, (i, d)| match best {
                    Some((_, b)) if b.retry_after() >= d.retry_after() => best,
                    _ => Some((i, d)),
                },
            )
            .map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::limiter::decision::{DecidedBy, Verdict};
    use crate::limiter::quota::Quota;

    fn decision(outcome: Outcome) -> Decision {
        Decision::new(
            Verdict {
                outcome,
                remaining: 0,
                reset_after: Duration::ZERO,
                limit: 0,
            },
            DecidedBy::Redis,
        )
    }

    fn denied(ms: u64) -> Decision {
        decision(Outcome::Denied {
            retry_after: Duration::from_millis(ms),
        })
    }

    #[test]
    fn a_refusal_is_answered_with_never_first_then_the_longest_wait() {
        let limits = Limits::single("t", "s", Quota::per_second(1).burst(1).unwrap()).unwrap();
        let checks = [
            Check::new(&limits, "a", 1),
            Check::new(&limits, "b", 1),
            Check::new(&limits, "c", 1).independent(),
            Check::new(&limits, "d", 1),
        ];
        let mut decisions = Decisions {
            each: vec![
                decision(Outcome::Allowed),
                denied(200),
                denied(900),
                denied(500),
            ],
            admitted: false,
        };
        assert_eq!(
            decisions.refused_by(&checks),
            Some(3),
            "the shadow check never refuses"
        );
        decisions.each[1] = decision(Outcome::Never);
        assert_eq!(decisions.refused_by(&checks), Some(1));
        decisions.admitted = true;
        assert_eq!(decisions.refused_by(&checks), None);
        assert!(checks[2].independent && !checks[3].independent);
    }
}
