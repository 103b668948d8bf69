//! The one retry loop of the stack: classify, decide, wait.
//!
//! Each failed attempt is [classified](classify()) into an [`ErrorKind`]; the
//! policy turns the kind, the attempt count, the [retry budget](RetryBudget)
//! and the operation's deadline into a [`RetryDecision`]; a retry sleeps a
//! [jittered backoff](Backoff) delay that never runs past the deadline. The
//! AWS SDK's own retries are off (see [`ResilientClient`](crate::ResilientClient)),
//! so this loop owns every retry and attempts never multiply.
//!
//! | failure | retried | when the write is not idempotent |
//! |---|---|---|
//! | throttling (incl. cancelled transactions that throttled), 429 | yes, throttle base | yes: nothing was applied |
//! | contention (transaction conflict or in progress, replicated write conflict) | yes, transient base; never cuts the capacity gate's rate | yes: nothing was applied |
//! | connect failed; a signature rejected for clock skew over 4 min | yes | yes: nothing was sent or applied |
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

mod backoff;
mod budget;
mod classify;
mod error;
mod gate;
mod kind;
mod policy;
mod run;

pub use self::backoff::{Backoff, BackoffBuilder, Jitter};
pub use self::budget::{RetryBudget, RetryBudgetBuilder, RetryCosts};
pub use self::classify::classify;
pub use self::error::{GiveUp, RetryError};
pub(crate) use self::gate::{Gate, Ungated};
pub use self::kind::{
    Ambiguity, Contention, ErrorKind, Throttle, ThrottleCode, ThrottlingReason, Transient,
};
pub use self::policy::{RetryDecision, RetryPolicy, RetryPolicyBuilder};

#[cfg(test)]
mod tests;
