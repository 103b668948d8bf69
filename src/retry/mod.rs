//! The one retry loop of the stack: classify, decide, wait.
//!
//! Each failed attempt is [classified](classify::classify) into an
//! [`ErrorKind`]; [`RetryPolicy::decide`] turns the kind, the attempt count,
//! the [retry budget](budget::RetryBudget) and the operation's deadline into a
//! [`Decision`]; a retry sleeps a [jittered backoff](backoff::Backoff) delay
//! that never runs past the deadline. The AWS SDK's own retries are off (see
//! [`crate::client`]), so this loop owns every retry and attempts never multiply.
//!
//! | failure | retried | when the write is not idempotent |
//! |---|---|---|
//! | throttling (incl. cancelled transactions that only throttled) | yes, throttle base | yes: nothing was applied |
//! | connect failed | yes | yes: nothing was sent |
//! | 5xx | yes | no: handed back ([`GiveUp::MaybeApplied`]) |
//! | timeout / lost connection after sending | yes | no: handed back |
//! | failed condition (`Conflict`), permanent errors | no | no |
//!
//! # Metrics
//!
//! Through the [`metrics`] facade, labelled by `operation`:
//! `dynagate_dynamodb_attempts_total` (`outcome`: `success` or the error kind),
//! `dynagate_dynamodb_retries_total` (`kind`, `reason`: the throttling reason
//! such as `TableWriteKeyRangeThroughputExceeded`, else the kind),
//! `dynagate_dynamodb_give_ups_total` (`reason`) and the gauge
//! `dynagate_retry_budget_tokens`.
//!
//! # Tracing
//!
//! A `dynamodb` span per operation (`operation`, `table`) and a
//! `dynamodb_attempt` span per attempt (`attempt`); each retry logs its kind,
//! reason and delay at debug level, each give-up at warn level.

pub mod backoff;
pub mod budget;
pub mod classify;

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::time::Instant;
use tracing::Instrument;

pub use self::backoff::{Backoff, Jitter};
pub use self::budget::{RetryBudget, RetryCosts};
pub use self::classify::{
    Ambiguity, ErrorKind, Throttle, ThrottleCode, ThrottlingReason, Transient, classify,
};
use crate::capacity::Direction;
use crate::error::{ConfigError, GiveUp, RetryError};

/// One DynamoDB operation as the retry loop sees it: its name, its table,
/// whether repeating it is safe, and its deadline.
#[derive(Debug, Clone)]
pub struct Operation {
    name: &'static str,
    table: Option<String>,
    idempotent: bool,
    deadline: Option<Deadline>,
    capacity: CapacityUse,
}

/// What an operation takes from its table's capacity, for the
/// [capacity gate](crate::capacity): the direction, the estimated units, the
/// index and the partition key value it falls on.
#[derive(Debug, Clone, Default)]
pub(crate) struct CapacityUse {
    pub(crate) direction: Option<Direction>,
    pub(crate) units: Option<f64>,
    pub(crate) index: Option<String>,
    pub(crate) partition_key: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Deadline {
    After(Duration),
    At(Instant),
}

impl Operation {
    /// A read (`GetItem`, `Query`, ...): always safe to repeat.
    pub fn read(name: &'static str, table: impl Into<String>) -> Operation {
        Operation {
            name,
            table: Some(table.into()),
            idempotent: true,
            deadline: None,
            capacity: CapacityUse::of(Direction::Read),
        }
    }

    /// A write. Not idempotent until [`idempotent`](Operation::idempotent) says
    /// so: after an outcome that may have been applied it is handed back
    /// instead of retried.
    pub fn write(name: &'static str, table: impl Into<String>) -> Operation {
        Operation {
            name,
            table: Some(table.into()),
            idempotent: false,
            deadline: None,
            capacity: CapacityUse::of(Direction::Write),
        }
    }

    /// An operation on no single table (`ListTables`, `DescribeLimits`, a
    /// batch across tables, ...). The capacity gate lets it through.
    pub fn untabled(name: &'static str, idempotent: bool) -> Operation {
        Operation {
            name,
            table: None,
            idempotent,
            deadline: None,
            capacity: CapacityUse::default(),
        }
    }

    /// Marks the operation safe to repeat: a full-item put, a delete, a
    /// conditional write that carries its own write token.
    pub fn idempotent(mut self) -> Operation {
        self.idempotent = true;
        self
    }

    /// Overrides the policy's deadline for this operation, counted from its start.
    pub fn deadline(mut self, after: Duration) -> Operation {
        self.deadline = Some(Deadline::After(after));
        self
    }

    /// Ends the operation at a point in time, e.g. the deadline of the HTTP
    /// request it serves.
    pub fn deadline_at(mut self, at: Instant) -> Operation {
        self.deadline = Some(Deadline::At(at));
        self
    }

    /// The capacity units the operation is expected to consume, for the
    /// [capacity gate](crate::capacity) (default 1). The gate takes this
    /// before the call and corrects by the `ConsumedCapacity` DynamoDB
    /// returns; [`crate::capacity::estimate`] computes it from item sizes.
    pub fn units(mut self, units: f64) -> Operation {
        self.capacity.units = Some(units);
        self
    }

    /// The operation reads or writes this index (a `Query` on a global
    /// secondary index): the gate takes from the index's capacity.
    pub fn index(mut self, index: impl Into<String>) -> Operation {
        self.capacity.index = Some(index.into());
        self
    }

    /// The partition key value the operation falls on. When DynamoDB
    /// throttles that key alone (a hot key), the gate slows calls to that key
    /// and leaves the rest of the table alone.
    pub fn partition_key(mut self, value: impl Into<String>) -> Operation {
        self.capacity.partition_key = Some(value.into());
        self
    }

    /// The operation's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The table, if the operation has one.
    pub fn table(&self) -> Option<&str> {
        self.table.as_deref()
    }

    /// Whether repeating the operation is safe.
    pub fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    pub(crate) fn capacity(&self) -> &CapacityUse {
        &self.capacity
    }
}

impl CapacityUse {
    fn of(direction: Direction) -> CapacityUse {
        CapacityUse {
            direction: Some(direction),
            ..CapacityUse::default()
        }
    }
}

/// A gate every attempt passes before it is sent: the
/// [capacity gate](crate::capacity::CapacityGate), or nothing.
pub(crate) trait Gate {
    /// What an admitted attempt carries to [`Gate::settle`].
    type Ticket;

    /// Waits for the attempt's turn. `latest_start` is the last instant an
    /// attempt may start and still fit the deadline; when the turn comes
    /// later, the error says how long the caller would have had to wait.
    async fn admit(
        &self,
        operation: &Operation,
        latest_start: Instant,
    ) -> Result<Self::Ticket, Duration>;

    /// Runs the attempt, watching what it consumed.
    async fn attempt<F: Future>(&self, ticket: &Self::Ticket, attempt: F) -> F::Output;

    /// Reports the attempt's outcome: `None` on success, else its error kind.
    async fn settle(
        &self,
        operation: &Operation,
        ticket: Self::Ticket,
        failure: Option<&ErrorKind>,
    );
}

/// No gate: every attempt goes at once.
pub(crate) struct Ungated;

impl Gate for Ungated {
    type Ticket = ();

    async fn admit(&self, _: &Operation, _: Instant) -> Result<(), Duration> {
        Ok(())
    }

    async fn attempt<F: Future>(&self, _: &(), attempt: F) -> F::Output {
        attempt.await
    }

    async fn settle(&self, _: &Operation, _: (), _: Option<&ErrorKind>) {}
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
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
    max_attempts: NonZeroU32,
    backoff: Backoff,
    deadline: Duration,
    min_attempt_time: Duration,
    budget: Arc<RetryBudget>,
    rng: Arc<Mutex<StdRng>>,
    attempt_time: Arc<AttemptTime>,
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

    /// Decides what follows the failed attempt number `attempts` (1-based).
    ///
    /// The order matters: only a retry that will really be made (retryable,
    /// allowed for this operation, within max attempts and the deadline) draws
    /// from the budget.
    pub fn decide(
        &self,
        kind: &ErrorKind,
        operation: &Operation,
        attempts: u32,
        previous_delay: Option<Duration>,
        deadline: Instant,
    ) -> Decision {
        if !kind.is_retryable() {
            return Decision::GiveUp(GiveUp::NotRetryable);
        }
        if !operation.idempotent && kind.may_have_applied() {
            return Decision::GiveUp(GiveUp::MaybeApplied);
        }
        if attempts >= self.max_attempts.get() {
            return Decision::GiveUp(GiveUp::MaxAttempts);
        }
        let delay = self.draw_delay(kind, attempts - 1, previous_delay);
        if Instant::now() + delay + self.expected_attempt_time() > deadline {
            return Decision::GiveUp(GiveUp::DeadlineExceeded);
        }
        if !self.budget.try_withdraw(kind) {
            return Decision::GiveUp(GiveUp::BudgetExhausted);
        }
        Decision::Retry { delay }
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

    /// Runs `attempt` until it succeeds or the policy gives up.
    ///
    /// `attempt` builds and sends one request each time it is called.
    pub async fn run<T, E, F, Fut>(
        &self,
        operation: &Operation,
        attempt: F,
    ) -> Result<T, RetryError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        self.run_gated(operation, &Ungated, attempt).await
    }

    /// [`run`](RetryPolicy::run), every attempt passing `gate` first.
    pub(crate) async fn run_gated<T, E, F, Fut, G>(
        &self,
        operation: &Operation,
        gate: &G,
        mut attempt: F,
    ) -> Result<T, RetryError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
        G: Gate,
    {
        let started = Instant::now();
        let deadline = match operation.deadline {
            Some(Deadline::At(at)) => at,
            Some(Deadline::After(after)) => started + after,
            None => started + self.deadline,
        };
        let span = tracing::debug_span!(
            "dynamodb",
            operation = operation.name,
            table = operation.table.as_deref().unwrap_or(""),
        );
        let mut state = LoopState {
            operation,
            started,
            attempts: 0,
            may_have_applied: false,
        };
        let mut previous_delay = None;
        // The failure that led to the current retry: if the deadline then
        // leaves no room for the attempt, the caller still learns what it was.
        let mut last_failure: Option<(ErrorKind, SdkError<E, HttpResponse>)> = None;
        async {
            loop {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining < self.expected_attempt_time() {
                    let (kind, last) = last_failure.take().unzip();
                    return Err(self.give_up(&state, GiveUp::DeadlineExceeded, kind, last));
                }
                let latest_start = deadline
                    .checked_sub(self.expected_attempt_time())
                    .unwrap_or(deadline);
                let ticket = match gate.admit(operation, latest_start).await {
                    Ok(ticket) => ticket,
                    Err(wait) => {
                        let (kind, last) = last_failure.take().unzip();
                        let mut error = self.give_up(&state, GiveUp::OverCapacity, kind, last);
                        error.retry_after = Some(wait);
                        return Err(error);
                    }
                };
                let remaining = deadline.saturating_duration_since(Instant::now());
                state.attempts += 1;
                let attempt_started = Instant::now();
                // Boxed: an SDK request future is about 5.5 KB, and held
                // unboxed in this loop's state it made `ResilientClient::call`'s
                // future 18.6 KB (3.3 KB boxed), above clippy's `large_futures`
                // threshold of 16 KiB, copied whole on every move, and nested
                // once more in every caller's future. One allocation per attempt.
                let outcome =
                    tokio::time::timeout(remaining, gate.attempt(&ticket, Box::pin(attempt())))
                        .instrument(tracing::debug_span!(
                            "dynamodb_attempt",
                            attempt = state.attempts
                        ))
                        .await;
                let error = match outcome {
                    Ok(Ok(value)) => {
                        gate.settle(operation, ticket, None).await;
                        self.attempt_time.record(attempt_started.elapsed());
                        self.budget.deposit_success();
                        count_attempt(operation, "success");
                        return Ok(value);
                    }
                    Ok(Err(error)) => error,
                    Err(_deadline_reached) => {
                        // The request may be in flight; dropping it does not undo it.
                        let kind = ErrorKind::Ambiguous(Ambiguity::Timeout);
                        count_attempt(operation, kind.label());
                        state.may_have_applied = true;
                        return Err(self.give_up(
                            &state,
                            GiveUp::DeadlineExceeded,
                            Some(kind),
                            None,
                        ));
                    }
                };
                let kind = classify(&error);
                gate.settle(operation, ticket, Some(&kind)).await;
                count_attempt(operation, kind.label());
                state.may_have_applied |= kind.may_have_applied();
                match self.decide(&kind, operation, state.attempts, previous_delay, deadline) {
                    Decision::Retry { delay } => {
                        let reason = match &kind {
                            ErrorKind::Throttling(t) => t.label().to_owned(),
                            other => other.label().to_owned(),
                        };
                        tracing::debug!(
                            attempt = state.attempts,
                            kind = kind.label(),
                            reason = %reason,
                            delay_ms = delay.as_millis() as u64,
                            "retrying"
                        );
                        metrics::counter!(
                            "dynagate_dynamodb_retries_total",
                            "operation" => operation.name,
                            "kind" => kind.label(),
                            "reason" => reason,
                        )
                        .increment(1);
                        metrics::gauge!("dynagate_retry_budget_tokens").set(self.budget.level());
                        previous_delay = Some(delay);
                        tokio::time::sleep(delay).await;
                        last_failure = Some((kind, error));
                    }
                    Decision::GiveUp(reason) => {
                        return Err(self.give_up(&state, reason, Some(kind), Some(error)));
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    fn give_up<E>(
        &self,
        state: &LoopState<'_>,
        reason: GiveUp,
        kind: Option<ErrorKind>,
        last: Option<SdkError<E, HttpResponse>>,
    ) -> RetryError<E> {
        let waiting_helps = match reason {
            GiveUp::BudgetExhausted
            | GiveUp::DeadlineExceeded
            | GiveUp::MaxAttempts
            | GiveUp::OverCapacity => true,
            GiveUp::NotRetryable | GiveUp::MaybeApplied => false,
        };
        let retry_after = match &kind {
            Some(k) if waiting_helps && k.is_retryable() => {
                Some(self.draw_delay(k, state.attempts.saturating_sub(1), None))
            }
            None if waiting_helps => Some(self.backoff.cap().min(self.deadline)),
            _ => None,
        };
        tracing::warn!(
            operation = state.operation.name,
            attempts = state.attempts,
            reason = reason.label(),
            kind = kind.as_ref().map_or("none", ErrorKind::label),
            "giving up"
        );
        metrics::counter!(
            "dynagate_dynamodb_give_ups_total",
            "operation" => state.operation.name,
            "reason" => reason.label(),
        )
        .increment(1);
        metrics::gauge!("dynagate_retry_budget_tokens").set(self.budget.level());
        RetryError {
            operation: state.operation.name,
            reason,
            attempts: state.attempts,
            elapsed: state.started.elapsed(),
            kind,
            may_have_applied: state.may_have_applied,
            retry_after,
            last,
        }
    }
}

struct LoopState<'a> {
    operation: &'a Operation,
    started: Instant,
    attempts: u32,
    may_have_applied: bool,
}

fn count_attempt(operation: &Operation, outcome: &'static str) {
    metrics::counter!(
        "dynagate_dynamodb_attempts_total",
        "operation" => operation.name,
        "outcome" => outcome,
    )
    .increment(1);
}

/// A moving average of successful attempt durations, in microseconds.
#[derive(Debug, Default)]
struct AttemptTime(AtomicU64);

impl AttemptTime {
    fn get(&self) -> Duration {
        Duration::from_micros(self.0.load(Ordering::Relaxed))
    }

    fn record(&self, took: Duration) {
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

#[cfg(test)]
mod tests;
