//! Settling on Redis: `settle.lua` (the Redis twin of
//! [`crate::limiter::settle`]) on the same keys as the decision script, with
//! a check's machinery: `EVALSHA` with `NOSCRIPT` recovery, the deadline, the
//! circuit breaker. A settle Redis cannot apply is skipped and counted, or,
//! under [`FailurePolicy::Fallback`], applied to the fallback buckets, where
//! the checks are decided while Redis is away.

use std::sync::LazyLock;

use crate::limiter::failure::FailurePolicy;
use crate::limiter::limits::Limits;
use crate::limiter::redis::{RedisLimiter, count_error};
use crate::redis_support::{Script, ScriptError, run_script};

/// The Lua source of the settle script. Its contract (`KEYS`, `ARGV`, the
/// reply) is described at its top; [`RedisLimiter::settle_script_sha1`] is
/// its hash.
pub(crate) const SETTLE_SOURCE: &str = include_str!("../settle.lua");

pub(super) static SETTLE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(SETTLE_SOURCE));

impl RedisLimiter {
    /// The SHA1 that `EVALSHA` names the settle script by.
    pub fn settle_script_sha1() -> &'static str {
        SETTLE_SCRIPT.hash()
    }

    /// Settles on Redis, within the deadline, without the failure policy,
    /// breaker or deny cache: a failure comes back as the error. 0 tokens
    /// asks nothing. See [`RateLimiter::settle`](crate::limiter::RateLimiter::settle)
    /// for what a settle does.
    pub async fn try_settle(
        &self,
        limits: &Limits,
        subject: &str,
        tokens: i64,
    ) -> Result<(), ScriptError> {
        if tokens == 0 {
            return Ok(());
        }
        let keys = limits.keys(&self.inner.prefix, subject);
        // Intervals and capacities stay below 2^45 (a quota's refill time is
        // capped there), so they fit the signed arguments `tokens` needs.
        let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut args = Vec::with_capacity(1 + 2 * limits.len());
        args.push(tokens);
        for limit in limits.iter() {
            args.push(signed(limit.quota().interval_micros()));
            args.push(signed(limit.quota().capacity()));
        }
        let namespace = limits.namespace();
        let on_reload = || {
            metrics::counter!(
                "dynagate_limiter_script_reloads_total",
                "namespace" => namespace.to_owned(),
            )
            .increment(1);
            tracing::debug!(namespace, "NOSCRIPT: sending the settle script again");
        };
        let call = run_script::<_, redis::Value>(
            &self.inner.connection,
            &SETTLE_SCRIPT,
            &keys,
            &args,
            self.inner.deadline,
            on_reload,
        );
        let outcome = call.await.and_then(|reply| match reply {
            redis::Value::Int(_) => Ok(()),
            other => Err(ScriptError::UnexpectedReply {
                reply: format!("{other:?}"),
            }),
        });
        if let Err(error) = &outcome {
            count_error(limits, error.label());
        }
        outcome
    }

    /// A settle through the breaker and, when Redis cannot apply it, the
    /// failure policy. Never fails, never waits past the deadline.
    pub(super) async fn settle_or_fall_back(&self, limits: &Limits, subject: &str, tokens: i64) {
        if tokens == 0 {
            return;
        }
        match self.inner.breaker.attempt() {
            None => self.settle_failed(limits, subject, tokens, "circuit_open"),
            Some(attempt) => match self.try_settle(limits, subject, tokens).await {
                Ok(()) => attempt.succeeded(),
                Err(error) => {
                    let probe = attempt.is_probe();
                    attempt.failed();
                    tracing::warn!(
                        namespace = limits.namespace(),
                        tokens,
                        probe,
                        error = %error,
                        "settling with Redis failed"
                    );
                    self.settle_failed(limits, subject, tokens, "error");
                }
            },
        }
        // A refund makes a cached denial too strict: forget it (see
        // `deny_cache`). After the call, so that a check answered by Redis
        // before the refund landed cannot leave its denial behind; whether
        // Redis applied the refund or not, forgetting only sends the next
        // request to Redis, which is always right.
        if tokens < 0
            && let Some(cache) = &self.inner.deny_cache
        {
            cache.forget(&limits.subject_key(&self.inner.prefix, subject));
        }
    }

    /// Counts a settle Redis did not apply and, under the fallback policy,
    /// applies it to the fallback's share of the quotas, where this
    /// instance's checks are decided while Redis is away (as `on_failure`
    /// decides them there). Failing open or closed, the settle is lost: the
    /// buckets in Redis keep the reservation as it was.
    fn settle_failed(&self, limits: &Limits, subject: &str, tokens: i64, reason: &'static str) {
        metrics::counter!(
            "dynagate_limiter_settle_failures_total",
            "namespace" => limits.namespace().to_owned(),
        )
        .increment(1);
        let policy = self.inner.policy;
        tracing::debug!(
            namespace = limits.namespace(),
            tokens,
            reason,
            policy = policy.label(),
            "a settle was not applied in Redis"
        );
        match policy {
            FailurePolicy::Fallback { instances } => {
                let share = limits.shared_by(instances);
                self.inner.fallback.settle_now(&share, subject, tokens);
            }
            FailurePolicy::FailOpen | FailurePolicy::FailClosed => {}
        }
    }
}
