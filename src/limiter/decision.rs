//! What a limiter answers: the outcome, and the numbers an HTTP response
//! needs for its `Retry-After` and `RateLimit-*` headers.

use std::time::Duration;

/// Whether the request may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Every bucket held the cost, and the tokens were taken, unless this
    /// was one check of a request that another check kept from being
    /// admitted (see [`Decisions`](crate::limiter::Decisions)).
    Allowed,
    /// Not enough tokens now; nothing was taken. The same request would be
    /// admitted after `retry_after`, if nothing else takes tokens meanwhile.
    Denied {
        /// How long until the bucket holds enough tokens.
        retry_after: Duration,
    },
    /// The cost is above a limit's capacity: no wait will ever admit it
    /// (an HTTP service answers 413 or 400, without `Retry-After`).
    Never,
}

/// Who made the decision: Redis, or one of the answers the failure policy
/// gives when Redis cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecidedBy {
    /// The Redis script.
    Redis,
    /// The in-memory limiter, as the configured backend.
    Memory,
    /// The local deny cache: the subject was denied moments ago and its
    /// retry-after has not passed, so Redis was not asked.
    DenyCache,
    /// Redis failed or the circuit is open; the policy admits.
    FailOpen,
    /// Redis failed or the circuit is open; the policy denies.
    FailClosed,
    /// Redis failed or the circuit is open; the in-memory limiter decided
    /// with this instance's share of the quota.
    Fallback,
    /// Not decided: another check of the same request was refused first by
    /// the deny cache, so nothing was asked for this one and nothing was
    /// taken (see [`Decisions`](crate::limiter::Decisions)).
    NotAsked,
    /// Spent from this instance's lease of the subject's tokens, without a
    /// round trip (see [`Leases`](crate::limiter::Leases)).
    Lease,
}

impl DecidedBy {
    /// A short stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            DecidedBy::Redis => "redis",
            DecidedBy::Memory => "memory",
            DecidedBy::DenyCache => "deny_cache",
            DecidedBy::FailOpen => "fail_open",
            DecidedBy::FailClosed => "fail_closed",
            DecidedBy::Fallback => "fallback",
            DecidedBy::NotAsked => "not_asked",
            DecidedBy::Lease => "lease",
        }
    }
}

/// The answer of the decision function for every limit of one call, in the
/// integers the Redis script returns. [`Decision`] adds who decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Verdict {
    /// Allowed, denied or never.
    pub outcome: Outcome,
    /// Whole tokens left after the decision, the smallest over the limits.
    pub remaining: u64,
    /// Time until every bucket is full again, the longest over the limits.
    pub reset_after: Duration,
    /// Index (into the `Limits`) of the limit that decided: the first one
    /// whose capacity is below the cost, else the one with the longest wait,
    /// else the one with the fewest tokens left.
    pub limit: usize,
}

/// A limiter's answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decision {
    verdict: Verdict,
    decided_by: DecidedBy,
}

impl Decision {
    /// Combines a verdict with who reached it.
    pub fn new(verdict: Verdict, decided_by: DecidedBy) -> Decision {
        Decision {
            verdict,
            decided_by,
        }
    }

    /// True when the request may proceed (its tokens were taken).
    pub fn allowed(&self) -> bool {
        self.verdict.outcome == Outcome::Allowed
    }

    /// Allowed, denied (with a wait) or never.
    pub fn outcome(&self) -> Outcome {
        self.verdict.outcome
    }

    /// How long until this request would be admitted: zero when it was,
    /// `None` when it never will be (cost above capacity).
    pub fn retry_after(&self) -> Option<Duration> {
        match self.verdict.outcome {
            Outcome::Allowed => Some(Duration::ZERO),
            Outcome::Denied { retry_after } => Some(retry_after),
            Outcome::Never => None,
        }
    }

    /// Whole tokens left, the smallest over the limits checked. Zero when the
    /// policy admitted or denied without knowing.
    pub fn remaining(&self) -> u64 {
        self.verdict.remaining
    }

    /// Time until every bucket checked is full again.
    pub fn reset_after(&self) -> Duration {
        self.verdict.reset_after
    }

    /// Index of the limit that decided (see [`Verdict::limit`]).
    pub fn limit(&self) -> usize {
        self.verdict.limit
    }

    /// Redis, the in-memory limiter, the deny cache or the failure policy.
    pub fn decided_by(&self) -> DecidedBy {
        self.decided_by
    }

    /// The numbers without who decided.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// A short stable label of the outcome for logs and metrics.
    pub fn outcome_label(&self) -> &'static str {
        match self.verdict.outcome {
            Outcome::Allowed => "allowed",
            Outcome::Denied { .. } => "denied",
            Outcome::Never => "never",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(outcome: Outcome) -> Decision {
        Decision::new(
            Verdict {
                outcome,
                remaining: 0,
                reset_after: Duration::from_secs(1),
                limit: 0,
            },
            DecidedBy::Redis,
        )
    }

    #[test]
    fn never_is_told_apart_from_a_wait() {
        assert_eq!(
            decision(Outcome::Allowed).retry_after(),
            Some(Duration::ZERO)
        );
        let wait = Duration::from_millis(250);
        let denied = decision(Outcome::Denied { retry_after: wait });
        assert_eq!(denied.retry_after(), Some(wait));
        assert!(!denied.allowed());
        let never = decision(Outcome::Never);
        assert_eq!(never.retry_after(), None);
        assert_eq!(never.outcome_label(), "never");
    }
}
