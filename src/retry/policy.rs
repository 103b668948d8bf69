//! The retry policy: its settings and builder, and the decision after a
//! failed attempt. The loop that applies it is in `run.rs`.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::time::Instant;

use crate::error::ConfigError;
use crate::operation::Operation;
use crate::retry::{Backoff, ErrorKind, GiveUp, RetryBudget};

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryDecision {
    /// Sleep this long, then try again.
    Retry {
        /// The backoff delay.
        delay: Duration,
    },
    /// Stop and report the failure.
    GiveUp(GiveUp),
}

/// How dynagate retries: maximum attempts, backoff, budget, deadline.
///
/// Cloning shares the budget and the random number generator: clones belong
/// to the same client.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub(super) max_attempts: NonZeroU32,
    pub(super) backoff: Backoff,
    pub(super) deadline: Duration,
    pub(super) min_attempt_time: Duration,
    pub(super) budget: Arc<RetryBudget>,
    pub(super) rng: Arc<Mutex<StdRng>>,
    pub(super) attempt_time: Arc<AttemptTime>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::builder().build().expect("valid defaults")
    }
}

impl RetryPolicy {
    /// A builder starting from the defaults: 10 attempts, [`Backoff::default`],
    /// [`RetryBudget::default`], a 10 s deadline per operation.
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder::default()
    }

    /// The maximum number of attempts per operation, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts.get()
    }

    /// The backoff.
    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }

    /// The default deadline of an operation.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The retry budget shared by everything that uses this policy.
    pub fn budget(&self) -> &RetryBudget {
        &self.budget
    }

    /// The time an attempt needs, as far as the deadline is concerned: the
    /// larger of the configured minimum and a moving average of recent attempts.
    pub fn expected_attempt_time(&self) -> Duration {
        self.attempt_time.get().max(self.min_attempt_time)
    }

    /// Decides what follows the failed attempt number `attempts` (1-based),
    /// and on a retry withdraws its cost from the budget: crate-private, as a
    /// call that looks like a query must not spend.
    ///
    /// The order matters: only a retry that will really be made (retryable,
    /// allowed for this operation, within max attempts and the deadline) draws
    /// from the budget.
    pub(crate) fn decide(
        &self,
        kind: &ErrorKind,
        operation: &Operation,
        attempts: u32,
        previous_delay: Option<Duration>,
        deadline: Instant,
    ) -> RetryDecision {
        if !kind.is_retryable() {
            return RetryDecision::GiveUp(GiveUp::NotRetryable);
        }
        if !operation.is_idempotent() && kind.may_have_applied() {
            return RetryDecision::GiveUp(GiveUp::MaybeApplied);
        }
        if attempts >= self.max_attempts.get() {
            return RetryDecision::GiveUp(GiveUp::MaxAttempts);
        }
        let delay = self.draw_delay(kind, attempts - 1, previous_delay);
        if Instant::now() + delay + self.expected_attempt_time() > deadline {
            return RetryDecision::GiveUp(GiveUp::DeadlineExceeded);
        }
        if !self.budget.try_withdraw(kind) {
            return RetryDecision::GiveUp(GiveUp::BudgetExhausted);
        }
        RetryDecision::Retry { delay }
    }

    /// Draws the backoff delay before retry number `retry` (0 for the first)
    /// after a failure of `kind`, from this policy's backoff and random number
    /// generator. For retry loops of their own, such as re-sending a batch's
    /// unprocessed items.
    pub fn draw_delay(&self, kind: &ErrorKind, retry: u32, previous: Option<Duration>) -> Duration {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        self.backoff
            .delay(self.backoff.base_for(kind), retry, previous, &mut *rng)
    }
}

/// A moving average of successful attempt durations, in microseconds.
#[derive(Debug, Default)]
pub(crate) struct AttemptTime(AtomicU64);

impl AttemptTime {
    pub(crate) fn get(&self) -> Duration {
        Duration::from_micros(self.0.load(Ordering::Relaxed))
    }

    pub(crate) fn record(&self, took: Duration) {
        let sample = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        // Races between concurrent updates lose a sample at worst; it is an estimate.
        let old = self.0.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        self.0.store(new, Ordering::Relaxed);
    }
}

/// Builds a [`RetryPolicy`], validating every setting.
#[derive(Debug)]
pub struct RetryPolicyBuilder {
    max_attempts: u32,
    backoff: Backoff,
    deadline: Duration,
    min_attempt_time: Duration,
    budget: Option<Arc<RetryBudget>>,
    seed: Option<u64>,
}

impl Default for RetryPolicyBuilder {
    fn default() -> Self {
        RetryPolicyBuilder {
            max_attempts: 10,
            backoff: Backoff::default(),
            deadline: Duration::from_secs(10),
            min_attempt_time: Duration::from_millis(5),
            budget: None,
            seed: None,
        }
    }
}

impl RetryPolicyBuilder {
    /// Attempts per operation, the first included (default 10; at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The backoff (default [`Backoff::default`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The default deadline of an operation (default 10 s).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The least time an attempt is assumed to need (default 5 ms): no attempt
    /// starts when less than this (or the recent average, if longer) remains.
    pub fn min_attempt_time(mut self, time: Duration) -> Self {
        self.min_attempt_time = time;
        self
    }

    /// The retry budget; share one `Arc` between policies to share the budget.
    pub fn budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Seeds the jitter's random number generator, for reproducible tests and
    /// benchmarks (default: seeded from the operating system).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Checks the settings and builds the policy.
    pub fn build(self) -> Result<RetryPolicy, ConfigError> {
        let max_attempts = NonZeroU32::new(self.max_attempts)
            .ok_or_else(|| ConfigError::invalid("max_attempts", "must be at least 1"))?;
        if self.deadline.is_zero() {
            return Err(ConfigError::invalid("deadline", "must be above zero"));
        }
        if self.min_attempt_time >= self.deadline {
            return Err(ConfigError::invalid(
                "min_attempt_time",
                format!(
                    "{:?} leaves no attempt inside the deadline {:?}",
                    self.min_attempt_time, self.deadline
                ),
            ));
        }
        let rng = match self.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => rand::make_rng(),
        };
        Ok(RetryPolicy {
            max_attempts,
            backoff: self.backoff,
            deadline: self.deadline,
            min_attempt_time: self.min_attempt_time,
            budget: self.budget.unwrap_or_default(),
            rng: Arc::new(Mutex::new(rng)),
            attempt_time: Arc::default(),
        })
    }
}
