//! The port the loop calls around every attempt: the
//! [capacity gate](crate::capacity::CapacityGate) implements it, [`Ungated`]
//! is the no-op. The loop knows only this trait, never the gate's internals.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::operation::Operation;
use crate::retry::ErrorKind;

/// A gate every attempt passes before it is sent.
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
