//! What one unit of work (an HTTP request, a job) consumed from DynamoDB:
//! a [`Meter`] in scope around it collects the read and write capacity units
//! of every call made inside, as DynamoDB reported them.
//!
//! The HTTP layer uses it to charge a caller for the capacity its request
//! really cost (a list that read 40 units costs its caller 40, a GET of a
//! small item half a unit), instead of a fixed price per request that a
//! scraper would happily pay.
//!
//! Every [`ResilientClient`](crate::ResilientClient) call made while a meter
//! is in scope asks DynamoDB for `ReturnConsumedCapacity = TOTAL` (when the
//! caller did not ask already) and adds the answer to the meter. What is not
//! counted: calls made on another task than the metered future (a
//! `tokio::spawn` inside the handler leaves the scope), attempts that failed
//! (DynamoDB reports no capacity with an error, and a throttled attempt
//! consumed none) and backends that report no `ConsumedCapacity`. The one
//! failure counted is a write whose condition did not hold: DynamoDB charges
//! it without saying so, and the meter counts the operation's estimate
//! ([`Operation::units`](crate::Operation::units)) for it.

use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;

use crate::operation::Direction;

tokio::task_local! {
    static METER: Arc<Meter>;
}

/// The capacity consumed inside one [`metered`] scope.
#[derive(Debug, Default)]
pub struct Meter(Mutex<Usage>);

/// Read and write capacity units, as DynamoDB reports them (halves for
/// eventually consistent reads).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Read capacity units.
    pub read_units: f64,
    /// Write capacity units.
    pub write_units: f64,
    /// Calls whose consumed capacity was reported.
    pub calls: u32,
}

impl Usage {
    /// The units in one direction.
    pub fn units(&self, direction: Direction) -> f64 {
        match direction {
            Direction::Read => self.read_units,
            Direction::Write => self.write_units,
        }
    }
}

impl Meter {
    /// What was consumed so far.
    pub fn usage(&self) -> Usage {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, direction: Direction, units: f64) {
        let mut usage = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match direction {
            Direction::Read => usage.read_units += units,
            Direction::Write => usage.write_units += units,
        }
        usage.calls += 1;
    }
}

/// Runs `work` with a meter in scope, and returns its output with what its
/// DynamoDB calls consumed.
pub async fn metered<F: Future>(work: F) -> (F::Output, Usage) {
    let meter = Arc::new(Meter::default());
    let output = METER.scope(Arc::clone(&meter), work).await;
    (output, meter.usage())
}

/// Whether a meter is in scope (the interceptor asks DynamoDB for capacity
/// only then, or when the capacity gate watches the attempt).
pub(crate) fn in_scope() -> bool {
    METER.try_with(|_| ()).is_ok()
}

/// Adds one call's consumed units to the meter in scope, if any.
pub(crate) fn record(direction: Direction, units: f64) {
    let _ = METER.try_with(|meter| meter.add(direction, units));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_meter_sums_what_is_recorded_inside_its_scope_only() {
        record(Direction::Read, 100.0); // outside: goes nowhere
        let ((), usage) = metered(async {
            assert!(in_scope());
            record(Direction::Read, 0.5);
            record(Direction::Read, 2.0);
            record(Direction::Write, 1.0);
        })
        .await;
        assert_eq!(
            usage,
            Usage {
                read_units: 2.5,
                write_units: 1.0,
                calls: 3
            }
        );
        assert!(!in_scope());
    }
}
