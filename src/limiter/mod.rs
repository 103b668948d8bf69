//! Rate limiting: token buckets that gate callers and share a table's capacity.
//!
//! A [`Quota`] is a bucket's capacity (the burst) and refill rate. A
//! [`Limits`] names the quotas one call checks together for one subject (per
//! second *and* per day, say). A [`RateLimiter`] takes a cost of N tokens from
//! every one of them, or from none, and answers with a [`Decision`]: allowed or
//! not, tokens remaining, retry-after and reset-after, and a distinct
//! [`Outcome::Never`] when the cost is above a capacity and no wait can help.
//!
//! A caller whose cost is known only afterwards (the capacity a query really
//! consumed) reserves the most it may take with a check and then
//! [settles](RateLimiter::settle) the difference: a refund of what it did not
//! use, or a debit of what it took beyond the reservation.
//!
//! A request checked against several subjects (its address, its key, its
//! route) is decided in one [`check_all`](RateLimiter::check_all): every
//! [`Check`] allowed or none keeps its tokens, in one Redis round trip on a
//! single Redis; a check marked [independent](Check::independent) (shadow
//! mode) takes on its own and never refuses. Its exactness on each backend is
//! stated there.
//!
//! Two backends share one decision function (`gcra::decide`, the model) and
//! one settle function (`settle::settle`):
//!
//! - [`RedisLimiter`]: the buckets live in Redis or Redis Cluster, one integer
//!   key each, decided by one Lua script on the server's clock, so a whole
//!   fleet shares them exactly. Every call has a deadline; a [`FailurePolicy`]
//!   (fail open, fail closed, or the in-memory limiter with a share of the
//!   quota) answers when Redis cannot, and a circuit breaker keeps a dead Redis
//!   from costing a deadline per request. A local deny cache answers a subject
//!   that was just denied until its retry-after, without a round trip.
//! - [`MemoryLimiter`]: the same buckets in this process, on an injected
//!   [`Clock`]; for development, tests, and as the fallback.
//!
//! ```no_run
//! use dynagate::limiter::{Limits, Quota, RateLimiter, RedisLimiter};
//!
//! # async fn demo(table_capacity: dynagate::limiter::Limits) -> Result<(), Box<dyn std::error::Error>> {
//! let client = redis::cluster::ClusterClient::new(vec!["redis://127.0.0.1:7000"])?;
//! let limiter = RedisLimiter::builder(client.get_async_connection().await?).build()?;
//!
//! let per_ip = Limits::builder("ip")
//!     .limit("second", Quota::per_second(5).burst(10)?)
//!     .limit("hour", Quota::per_hour(1_000).burst(1_000)?)
//!     .build()?;
//! let decision = limiter.check(&per_ip, "203.0.113.9", 1).await;
//! println!("{} left, retry after {:?}", decision.remaining(), decision.retry_after());
//!
//! // A capacity gate: take 25 write units from a table's bucket.
//! let writes = limiter.check(&table_capacity, "users", 25).await;
//! # Ok(())
//! # }
//! ```
//!
//! # Metrics
//!
//! Through the [`metrics`] facade, labelled by `namespace`:
//! `dynagate_limiter_decisions_total` (`outcome`: allowed, denied, never;
//! `decided_by`: redis, memory, deny_cache, lease, fail_open, fail_closed,
//! fallback;
//! one per check of a [`check_all`](RateLimiter::check_all), except the
//! checks it did not ask),
//! `dynagate_limiter_redis_errors_total` (`kind`: timeout, connection,
//! server, reply), `dynagate_limiter_fallbacks_total` (`policy`, `reason`:
//! error or circuit_open), `dynagate_limiter_script_reloads_total` (after a
//! `NOSCRIPT`), `dynagate_limiter_settle_failures_total` (a settle Redis
//! did not apply: skipped, or applied to the fallback), and the gauge `dynagate_circuit_open{breaker="limiter"}`.
//!
//! # Errors
//!
//! A check never fails (its failure policy answers), nor does a settle (it is
//! skipped, or applied to the fallback); builders return
//! [`ConfigError`](crate::ConfigError), and the calls that ask Redis without
//! the failure policy ([`RedisLimiter::try_check`],
//! [`RedisLimiter::try_settle`], [`RedisLimiter::load_script`]) return a
//! [`ScriptError`](crate::ScriptError).

mod checks;
mod decision;
mod deny_cache;
mod failure;
pub(crate) mod gcra;
pub(crate) mod gcra_all;
pub(crate) mod handles;
mod lease;
mod limits;
mod memory;
mod quota;
mod redis;
pub(crate) mod settle;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use self::checks::{Check, Decisions};
pub use self::decision::{DecidedBy, Decision, Outcome, Verdict};
pub use self::failure::FailurePolicy;
pub use self::lease::Leases;
pub use self::limits::{Limit, Limits, LimitsBuilder};
pub use self::memory::{Clock, ManualClock, MemoryLimiter, TokioClock};
pub use self::quota::{Quota, QuotaBuilder};
#[cfg(feature = "test-util")]
pub(crate) use self::redis::{ALL_SCRIPT_SOURCE, SCRIPT_SOURCE, SETTLE_SOURCE};
pub use self::redis::{RedisLimiter, RedisLimiterBuilder};

/// The future a [`RateLimiter`] returns: boxed, so the trait can be used as
/// `dyn RateLimiter` (one allocation next to a network round trip).
pub type LimitFuture<'a> = Pin<Box<dyn Future<Output = Decision> + Send + 'a>>;

/// The future [`RateLimiter::settle`] returns: boxed, like [`LimitFuture`].
pub type SettleFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// The future [`RateLimiter::check_all`] returns: boxed, like [`LimitFuture`].
pub type CheckAllFuture<'a> = Pin<Box<dyn Future<Output = Decisions> + Send + 'a>>;

/// Takes tokens from a subject's buckets.
///
/// A check never fails: when its backend cannot decide, the backend's
/// failure policy does, and [`Decision::decided_by`] says so.
pub trait RateLimiter: Send + Sync + fmt::Debug {
    /// Takes `cost` tokens from every bucket of `limits` for `subject`, or
    /// none of them. A cost of 0 looks without taking.
    fn check<'a>(&'a self, limits: &'a Limits, subject: &'a str, cost: u64) -> LimitFuture<'a>;

    /// Decides every check of one request (the client's address, its key,
    /// the route: each its own subject, limits and cost) together. The
    /// request is admitted when every check that is not
    /// [independent](Check::independent) is allowed, and only then do those
    /// checks keep their tokens; an independent check (shadow mode) takes its
    /// cost whenever its own buckets hold it and never refuses the request.
    /// [`Decisions`] says what each check's decision means when the request
    /// was not admitted; [`Decisions::refused_by`] picks the one to answer a
    /// refusal with.
    ///
    /// How exact the all-or-nothing is depends on the backend:
    ///
    /// - [`MemoryLimiter`]: exact; every check is decided under one lock.
    /// - [`RedisLimiter`] on a single Redis: exact; one script call decides
    ///   and writes every check atomically (one round trip).
    /// - [`RedisLimiter`] on Redis Cluster: the subjects' buckets live in
    ///   different slots, so the checks are grouped by slot, one script call
    ///   per group, all sent at once (one round trip of latency); each group
    ///   is all or nothing on its own. When one group refuses, the groups
    ///   that took their tokens give them back with a
    ///   [settle](RateLimiter::settle), one more round trip. Never more is
    ///   admitted than the quotas allow; until the refund lands (one round
    ///   trip, or the deadline if Redis does not answer), those tokens are
    ///   missing, so a concurrent request may be refused that would otherwise
    ///   have been admitted. A refund Redis cannot apply is handled as any
    ///   settle (skipped, or applied to the fallback): the tokens stay taken
    ///   until the buckets refill, again on the strict side. An instance
    ///   whose deny cache remembered a denial caused by tokens that were
    ///   later refunded elsewhere answers that subject too strictly until
    ///   that denial's retry-after at the latest.
    ///
    /// Before asking Redis, a non-independent check that the deny cache
    /// knows is refused at this cost refuses the request without a round
    /// trip; the other checks are then [not asked](DecidedBy::NotAsked).
    /// When Redis cannot decide, the failure policy answers for every check
    /// it could not decide, as for [`check`](RateLimiter::check).
    fn check_all<'a>(&'a self, checks: &'a [Check<'a>]) -> CheckAllFuture<'a>;

    /// Moves `tokens` into (negative: back into) every bucket of `limits`
    /// for `subject`, without deciding anything: after a check reserved the
    /// most a request may take, a refund of what it did not use or a debit
    /// of what it took beyond the reservation. 0 does nothing.
    ///
    /// A debit is taken even when the buckets do not hold the tokens, but
    /// never leaves a bucket more than empty: a debt beyond empty would be
    /// read by the next check as a clock that stepped back, and clamped. So a
    /// request that overran its reservation by more than what was left is
    /// forgiven the rest; reserve the most a request may take to avoid that.
    /// A refund never makes a bucket fuller than full.
    ///
    /// A settle never fails: when the backend cannot apply it, it is skipped
    /// (or applied where the backend's failure policy decides) and counted.
    fn settle<'a>(&'a self, limits: &'a Limits, subject: &'a str, tokens: i64) -> SettleFuture<'a>;
}

impl<L: RateLimiter + ?Sized> RateLimiter for Arc<L> {
    fn check<'a>(&'a self, limits: &'a Limits, subject: &'a str, cost: u64) -> LimitFuture<'a> {
        (**self).check(limits, subject, cost)
    }

    fn check_all<'a>(&'a self, checks: &'a [Check<'a>]) -> CheckAllFuture<'a> {
        (**self).check_all(checks)
    }

    fn settle<'a>(&'a self, limits: &'a Limits, subject: &'a str, tokens: i64) -> SettleFuture<'a> {
        (**self).settle(limits, subject, tokens)
    }
}

impl<L: RateLimiter + ?Sized> RateLimiter for Box<L> {
    fn check<'a>(&'a self, limits: &'a Limits, subject: &'a str, cost: u64) -> LimitFuture<'a> {
        (**self).check(limits, subject, cost)
    }

    fn check_all<'a>(&'a self, checks: &'a [Check<'a>]) -> CheckAllFuture<'a> {
        (**self).check_all(checks)
    }

    fn settle<'a>(&'a self, limits: &'a Limits, subject: &'a str, tokens: i64) -> SettleFuture<'a> {
        (**self).settle(limits, subject, tokens)
    }
}

pub(crate) fn count_decision(limits: &Limits, decision: &Decision) {
    let cached = match (decision.allowed(), decision.decided_by()) {
        (true, DecidedBy::Redis) => Some(&limits.handles().allowed_by_redis),
        (true, DecidedBy::Memory) => Some(&limits.handles().allowed_by_memory),
        (true, DecidedBy::Lease) => Some(&limits.handles().allowed_by_lease),
        _ => None,
    };
    let register = || {
        metrics::counter!(
            "dynagate_limiter_decisions_total",
            "namespace" => limits.namespace().to_owned(),
            "outcome" => decision.outcome_label(),
            "decided_by" => decision.decided_by().label(),
        )
    };
    match cached {
        Some(slot) => slot.increment(register),
        None => register().increment(1),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn limiters_are_usable_as_trait_objects() {
        let limiter: Arc<dyn RateLimiter> = Arc::new(MemoryLimiter::new());
        let limits = Limits::single("t", "s", Quota::per_second(2).burst(2).unwrap()).unwrap();
        assert!(limiter.check(&limits, "a", 2).await.allowed());
        let denied = limiter.check(&limits, "a", 1).await;
        assert_eq!(denied.retry_after(), Some(Duration::from_millis(500)));
        assert_eq!(limiter.check(&limits, "a", 3).await.retry_after(), None);
        let boxed: Box<dyn RateLimiter> = Box::new(Arc::clone(&limiter));
        boxed.settle(&limits, "a", -1).await;
        assert!(limiter.check(&limits, "a", 1).await.allowed(), "refunded");
    }
}
