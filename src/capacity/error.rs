//! The capacity gate's own error: a table's capacity could not be read.
//! (A Redis failure of the gate is not an error to its callers: the gate
//! fails open; [`CapacityGate::state`](crate::capacity::CapacityGate::state)
//! reports it as a [`ScriptError`](crate::ScriptError).)

use std::error::Error as StdError;

/// The capacity of a table could not be read for the
/// [capacity gate](crate::capacity).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CapacityError {
    /// `DescribeTable` failed.
    #[error("DescribeTable {table} failed; check the table name, region and permissions")]
    Describe {
        /// The table.
        table: String,
        /// What the SDK reported.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The table bills on demand and has no maximum throughput, so there is
    /// nothing to pace by.
    #[error(
        "table {table} bills on demand without a maximum throughput: configure the ceiling \
         the fleet should stay under with TableCapacity::provisioned"
    )]
    OnDemand {
        /// The table.
        table: String,
    },
}
