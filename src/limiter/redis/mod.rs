//! The Redis backend: one Lua script per decision, one key per bucket.
//!
//! The script (`gcra.lua`, the Redis twin of [`crate::limiter::gcra`]) reads
//! the server's `TIME`, checks every limit of the call, and writes (with an
//! expiry at the moment the bucket is full again) only when all of them
//! allow. It runs atomically, so callers on any number of processes and hosts
//! share each bucket exactly, and it costs one round trip. Several checks of
//! one request whose buckets share a slot (all of them on a single Redis) go
//! in one call of `gcra_all.lua`, the twin of [`crate::limiter::gcra_all`]
//! (see `call` and `check_all`).
//!
//! It is sent as `EVALSHA`; on `NOSCRIPT` (Redis forgot it) the same call
//! goes again as `EVAL`, so the caller never sees the `NOSCRIPT` (see
//! `redis_support`).
//!
//! A settle runs `settle.lua` on the same keys, with the same machinery (see
//! `settle`).
//!
//! Every call has a hard deadline; failures go to the [`FailurePolicy`]
//! through a circuit breaker, and recent denials can be answered locally (see
//! [`crate::limiter`]).

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use crate::breaker::{BreakerSettings, CircuitBreaker, CircuitState};
use crate::error::ConfigError;
use crate::limiter::checks::Check;
use crate::limiter::decision::{DecidedBy, Decision};
use crate::limiter::deny_cache::DenyCache;
use crate::limiter::failure::FailurePolicy;
use crate::limiter::lease::{LeaseBook, Leases};
use crate::limiter::limits::{Limits, check_no_braces};
use crate::limiter::memory::MemoryLimiter;
use crate::limiter::{CheckAllFuture, LimitFuture, RateLimiter, SettleFuture, count_decision};
use crate::redis_support::{RedisConnection, Script, ScriptError};

mod call;
mod check_all;
mod leased;
mod settle;

#[cfg(feature = "test-util")]
pub(crate) use self::call::ALL_SCRIPT_SOURCE;
#[cfg(test)]
use self::call::parse_reply;
#[cfg(feature = "test-util")]
pub(crate) use self::settle::SETTLE_SOURCE;

/// The Lua source of the decision script. Its contract (`KEYS`, `ARGV`, the
/// reply) is described at its top; [`RedisLimiter::script_sha1`] is its hash.
pub(crate) const SCRIPT_SOURCE: &str = include_str!("../gcra.lua");

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(SCRIPT_SOURCE));

/// A rate limiter whose buckets live in Redis or Redis Cluster.
///
/// Cheap to clone: clones share the connection, breaker and deny cache.
///
/// ```no_run
/// use dynagate::limiter::{FailurePolicy, Limits, Quota, RateLimiter, RedisLimiter};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let client = redis::Client::open("redis://127.0.0.1:6379")?;
/// let connection = redis::aio::ConnectionManager::new(client).await?;
/// let limiter = RedisLimiter::builder(connection)
///     .on_failure(FailurePolicy::fallback(4)?) // 4 instances share the quotas
///     .build()?;
///
/// let per_key = Limits::builder("api-key")
///     .limit("second", Quota::per_second(10).burst(20)?)
///     .limit("day", Quota::per_day(10_000).burst(10_000)?)
///     .build()?;
///
/// let decision = limiter.check(&per_key, "key-123", 1).await;
/// if !decision.allowed() {
///     // 429 with Retry-After: decision.retry_after()
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RedisLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    connection: RedisConnection,
    prefix: String,
    deadline: Duration,
    policy: FailurePolicy,
    breaker: CircuitBreaker,
    deny_cache: Option<DenyCache>,
    leases: Option<LeaseBook>,
    fallback: MemoryLimiter,
}

/// How many subjects' leases an instance remembers at most.
const MAX_LEASED_SUBJECTS: usize = 10_000;

impl RedisLimiter {
    /// The SHA1 that `EVALSHA` names the script by.
    pub fn script_sha1() -> &'static str {
        SCRIPT.hash()
    }

    /// A builder with the defaults: prefix `dynagate:rl:`, a 5 ms deadline,
    /// fail open, the default breaker, a deny cache of 10 000 subjects.
    pub fn builder(connection: impl Into<RedisConnection>) -> RedisLimiterBuilder {
        RedisLimiterBuilder {
            connection: connection.into(),
            prefix: "dynagate:rl:".to_owned(),
            deadline: Duration::from_millis(5),
            policy: FailurePolicy::FailOpen,
            breaker: BreakerSettings::default(),
            deny_cache: 10_000,
            leases: None,
        }
    }

    /// The prefix of every key.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The deadline of every Redis call.
    pub fn deadline(&self) -> Duration {
        self.inner.deadline
    }

    /// The failure policy.
    pub fn policy(&self) -> FailurePolicy {
        self.inner.policy
    }

    /// The circuit breaker's state.
    pub fn circuit_state(&self) -> CircuitState {
        self.inner.breaker.state()
    }

    /// The keys of `subject`'s buckets, in the order of `limits`.
    pub fn keys(&self, limits: &Limits, subject: &str) -> Vec<String> {
        limits.keys(&self.inner.prefix, subject)
    }

    /// Loads the scripts (decide, decide several checks, settle) into Redis (every master of a
    /// cluster) ahead of the first request. Optional: a missing script is
    /// loaded on demand.
    pub async fn load_script(&self) -> Result<(), ScriptError> {
        for script in [&*SCRIPT, &*call::ALL_SCRIPT, &*settle::SETTLE_SCRIPT] {
            let mut connection = self.inner.connection.clone();
            let mut command = redis::cmd("SCRIPT");
            command.arg("LOAD").arg(script.source());
            let load = command.query_async::<redis::Value>(&mut connection);
            let deadline = self.inner.deadline.max(Duration::from_secs(1));
            match tokio::time::timeout(deadline, load).await {
                Ok(Ok(_)) => {}
                Ok(Err(source)) => return Err(ScriptError::Redis { source }),
                Err(_) => return Err(ScriptError::Timeout { deadline }),
            }
        }
        Ok(())
    }

    /// Asks Redis, within the deadline, without the failure policy, breaker
    /// or deny cache: a failure comes back as the error.
    pub async fn try_check(
        &self,
        limits: &Limits,
        subject: &str,
        cost: u64,
    ) -> Result<Decision, ScriptError> {
        let subject_key = limits.subject_key(&self.inner.prefix, subject);
        let verdicts = self
            .try_group(&[Check::new(limits, subject, cost)], &[&subject_key])
            .await?;
        Ok(Decision::new(verdicts[0], DecidedBy::Redis))
    }
}

impl RateLimiter for RedisLimiter {
    fn check<'a>(&'a self, limits: &'a Limits, subject: &'a str, cost: u64) -> LimitFuture<'a> {
        Box::pin(async move {
            let checks = [Check::new(limits, subject, cost)];
            let mut decisions = self.check_all(&checks).await;
            decisions.each.remove(0)
        })
    }

    fn check_all<'a>(&'a self, checks: &'a [Check<'a>]) -> CheckAllFuture<'a> {
        Box::pin(async move {
            let decisions = self.decide_all(checks).await;
            for (check, decision) in checks.iter().zip(&decisions.each) {
                if decision.decided_by() != DecidedBy::NotAsked {
                    count_decision(check.limits, decision);
                }
            }
            decisions
        })
    }

    fn settle<'a>(&'a self, limits: &'a Limits, subject: &'a str, tokens: i64) -> SettleFuture<'a> {
        Box::pin(self.settle_or_fall_back(limits, subject, tokens))
    }
}

fn count_error(limits: &Limits, kind: &'static str) {
    metrics::counter!(
        "dynagate_limiter_redis_errors_total",
        "namespace" => limits.namespace().to_owned(),
        "kind" => kind,
    )
    .increment(1);
}

/// Builds a [`RedisLimiter`], validating every setting.
#[derive(Debug)]
pub struct RedisLimiterBuilder {
    connection: RedisConnection,
    prefix: String,
    deadline: Duration,
    policy: FailurePolicy,
    breaker: BreakerSettings,
    deny_cache: usize,
    leases: Option<Leases>,
}

impl RedisLimiterBuilder {
    /// The prefix of every key (default `dynagate:rl:`; no braces).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The hard deadline of every Redis call (default 5 ms; above zero). A
    /// late call is answered by the failure policy; Redis may still apply it.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// What to answer when Redis fails (default [`FailurePolicy::FailOpen`]).
    pub fn on_failure(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// When the circuit opens and for how long (default
    /// [`BreakerSettings::default`]).
    pub fn breaker(mut self, settings: BreakerSettings) -> Self {
        self.breaker = settings;
        self
    }

    /// How many denied subjects to remember locally (default 10 000; 0 turns
    /// the deny cache off).
    pub fn deny_cache(mut self, max_subjects: usize) -> Self {
        self.deny_cache = max_subjects;
        self
    }

    /// Local leases for busy subjects (default off): most of a busy subject's
    /// requests are then decided without a round trip, never admitting more
    /// than its buckets hold, at the price of admitting fewer by the tokens
    /// of leases that expire unspent. Near its limit a subject is judged
    /// exactly. The whole contract is on [`Leases`].
    pub fn leases(mut self, leases: Leases) -> Self {
        self.leases = Some(leases);
        self
    }

    /// Checks the settings and builds the limiter.
    pub fn build(self) -> Result<RedisLimiter, ConfigError> {
        check_no_braces("prefix", &self.prefix)?;
        if self.deadline.is_zero() {
            return Err(ConfigError::invalid("deadline", "must be above zero"));
        }
        Ok(RedisLimiter {
            inner: Arc::new(Inner {
                connection: self.connection,
                prefix: self.prefix,
                deadline: self.deadline,
                policy: self.policy,
                breaker: CircuitBreaker::new("limiter", self.breaker),
                deny_cache: (self.deny_cache > 0).then(|| DenyCache::new(self.deny_cache)),
                leases: self.leases.map(|l| LeaseBook::new(l, MAX_LEASED_SUBJECTS)),
                fallback: MemoryLimiter::fallback(),
            }),
        })
    }
}

#[cfg(test)]
mod tests;
