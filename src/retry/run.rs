//! The loop: attempt, classify, decide, wait; every attempt through the gate
//! and within the operation's deadline.

use std::future::Future;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use tokio::time::Instant;
use tracing::Instrument;

use crate::operation::{Deadline, Direction, Operation};
use crate::retry::{
    Ambiguity, ErrorKind, Gate, GiveUp, RetryDecision, RetryError, RetryPolicy, Ungated, classify,
};

impl RetryPolicy {
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
        let deadline = match operation.own_deadline() {
            Some(Deadline::At(at)) => at,
            Some(Deadline::After(after)) => started + after,
            None => started + self.deadline,
        };
        let span = tracing::debug_span!(
            "dynamodb",
            operation = operation.name(),
            table = operation.table().unwrap_or(""),
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
                // Boxed: an SDK request future is several KB; held unboxed in
                // this loop's state it pushed `ResilientClient::call`'s future
                // above clippy's `large_futures` threshold, copied whole on
                // every move and nested in every caller's future (the unit test
                // `a_call_future_stays_small` keeps it small). One allocation
                // per attempt.
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
                if kind == ErrorKind::Conflict {
                    charge_failed_condition(operation);
                }
                gate.settle(operation, ticket, Some(&kind)).await;
                count_attempt(operation, kind.label());
                state.may_have_applied |= kind.may_have_applied();
                match self.decide(&kind, operation, state.attempts, previous_delay, deadline) {
                    RetryDecision::Retry { delay } => {
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
                            "operation" => operation.name(),
                            "kind" => kind.label(),
                            "reason" => reason,
                        )
                        .increment(1);
                        metrics::gauge!("dynagate_retry_budget_tokens").set(self.budget.level());
                        previous_delay = Some(delay);
                        tokio::time::sleep(delay).await;
                        last_failure = Some((kind, error));
                    }
                    RetryDecision::GiveUp(reason) => {
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
            operation = state.operation.name(),
            attempts = state.attempts,
            reason = reason.label(),
            kind = kind.as_ref().map_or("none", ErrorKind::label),
            "giving up"
        );
        metrics::counter!(
            "dynagate_dynamodb_give_ups_total",
            "operation" => state.operation.name(),
            "reason" => reason.label(),
        )
        .increment(1);
        metrics::gauge!("dynagate_retry_budget_tokens").set(self.budget.level());
        RetryError {
            operation: state.operation.name(),
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
        "operation" => operation.name(),
        "outcome" => outcome,
    )
    .increment(1);
}

/// Counts a write whose condition failed in the [usage meter](crate::usage)
/// at its estimate ([`Operation::units`], 1 when none): DynamoDB charges
/// such a write (a conditional write that fails consumes the capacity the
/// write would have; a transaction cancelled by a condition, its items')
/// but reports no `ConsumedCapacity` with the error. Left uncounted, a caller
/// charged by what its requests consumed could repeat a write that always
/// fails (an `Idempotency-Key` replayed in a loop) for free, at the table's
/// expense.
fn charge_failed_condition(operation: &Operation) {
    let capacity = operation.capacity();
    if capacity.direction == Some(Direction::Write) {
        crate::usage::record(Direction::Write, capacity.units.unwrap_or(1.0));
    }
}
