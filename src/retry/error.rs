//! Why the retry loop gave up, and the error a failed call returns.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};

use crate::retry::ErrorKind;

/// Why the retry loop stopped trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GiveUp {
    /// The error is not one a retry can fix (validation, a failed condition, ...).
    NotRetryable,
    /// A write that is not idempotent may have been applied (a timeout, a lost
    /// connection, a 5xx): retrying could apply it twice, so the caller decides.
    MaybeApplied,
    /// The policy's maximum number of attempts was reached.
    MaxAttempts,
    /// The client's retry budget is empty: too many calls are failing.
    BudgetExhausted,
    /// The operation's deadline leaves no time for another attempt.
    DeadlineExceeded,
    /// The [capacity gate](crate::capacity) could not give the attempt a turn
    /// within the deadline, or shed it from a standing queue: the fleet
    /// already uses the table's capacity. Nothing was sent; `retry_after`
    /// says when a turn is free.
    OverCapacity,
}

impl GiveUp {
    /// A short stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            GiveUp::NotRetryable => "not_retryable",
            GiveUp::MaybeApplied => "maybe_applied",
            GiveUp::MaxAttempts => "max_attempts",
            GiveUp::BudgetExhausted => "budget_exhausted",
            GiveUp::DeadlineExceeded => "deadline_exceeded",
            GiveUp::OverCapacity => "over_capacity",
        }
    }
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GiveUp::NotRetryable => "the error is not retryable",
            GiveUp::MaybeApplied => {
                "the write may have been applied and is not idempotent, so it was not retried"
            }
            GiveUp::MaxAttempts => "the maximum number of attempts was reached",
            GiveUp::BudgetExhausted => "the client's retry budget is exhausted",
            GiveUp::DeadlineExceeded => "the deadline leaves no time for another attempt",
            GiveUp::OverCapacity => {
                "the table's capacity is taken (until after the deadline, or by a standing \
                 queue the gate sheds), so nothing was sent; retry after the wait it gave"
            }
        })
    }
}

/// A DynamoDB operation failed for good: what happened, after how many
/// attempts, and the last error DynamoDB or the connection gave.
///
/// `E` is the operation's error type, e.g. `PutItemError`; [`last_error`]
/// gives access to it for matching on DynamoDB's exceptions.
///
/// [`last_error`]: RetryError::last_error
#[derive(Debug)]
pub struct RetryError<E> {
    pub(crate) operation: &'static str,
    pub(crate) reason: GiveUp,
    pub(crate) attempts: u32,
    pub(crate) elapsed: Duration,
    pub(crate) kind: Option<ErrorKind>,
    pub(crate) may_have_applied: bool,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) last: Option<SdkError<E, HttpResponse>>,
}

impl<E> RetryError<E> {
    /// The DynamoDB operation, e.g. `PutItem`.
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// Why the loop stopped.
    pub fn reason(&self) -> GiveUp {
        self.reason
    }

    /// How many attempts were made (0 when the deadline left no room for one).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Time from the first attempt's start to giving up.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// The classification of the last error, if an attempt failed with one.
    pub fn kind(&self) -> Option<&ErrorKind> {
        self.kind.as_ref()
    }

    /// True when some attempt may have changed the table even though the
    /// operation failed (a timeout, a lost connection or a 5xx on the way).
    /// A conditional write that fails its condition after such an attempt may
    /// be failing on its own earlier success.
    pub fn may_have_applied(&self) -> bool {
        self.may_have_applied
    }

    /// True when DynamoDB was throttling: the caller should slow down. An HTTP
    /// service maps this (and [`GiveUp::BudgetExhausted`]) to 503.
    pub fn is_throttling(&self) -> bool {
        matches!(self.kind, Some(ErrorKind::Throttling(_)))
    }

    /// How long a caller should wait before trying the operation again, for a
    /// failure that time can fix (throttling, transient errors, an exhausted
    /// budget or deadline); `None` when waiting will not help.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The last error the SDK returned, if an attempt was made.
    pub fn last_error(&self) -> Option<&SdkError<E, HttpResponse>> {
        self.last.as_ref()
    }

    /// Takes the last error the SDK returned.
    pub fn into_last_error(self) -> Option<SdkError<E, HttpResponse>> {
        self.last
    }
}

impl<E> fmt::Display for RetryError<E>
where
    E: StdError + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DynamoDB {} failed after {} attempt{} in {:.0?}: {}",
            self.operation,
            self.attempts,
            if self.attempts == 1 { "" } else { "s" },
            self.elapsed,
            self.reason
        )?;
        if let Some(last) = &self.last {
            write!(f, "; last error: {}", DisplayErrorContext(last))?;
        }
        Ok(())
    }
}

impl<E> StdError for RetryError<E>
where
    E: StdError + 'static,
{
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.last.as_ref().map(|e| e as &(dyn StdError + 'static))
    }
}
