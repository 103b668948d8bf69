//! What the retry loop and the capacity gate know about one DynamoDB call:
//! [`Operation`] (name, table, whether repeating it is safe, deadline) and
//! its capacity hints ([`Direction`], units, index, partition key).
//!
//! Both [`crate::retry`] and [`crate::capacity`] depend on this module and
//! neither on the other's internals: the loop reads the deadline and the
//! idempotency, the gate reads the capacity hints.

use std::time::Duration;

use tokio::time::Instant;

/// Reads or writes: each has its own units and its own bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Read capacity units.
    Read,
    /// Write capacity units.
    Write,
}

impl Direction {
    /// `"read"` or `"write"`, for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Direction::Read => "read",
            Direction::Write => "write",
        }
    }
}

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

/// When an operation must end: after a span from its start, or at an instant.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Deadline {
    After(Duration),
    At(Instant),
}

impl Operation {
    /// A read (`GetItem`, `Query`, ...): always safe to repeat.
    pub fn read(name: &'static str, table: impl Into<String>) -> Operation {
        Operation::on_table(name, table.into(), Direction::Read, true)
    }

    /// A write. Not idempotent until [`idempotent`](Operation::idempotent) says
    /// so: after an outcome that may have been applied it is handed back
    /// instead of retried.
    pub fn write(name: &'static str, table: impl Into<String>) -> Operation {
        Operation::on_table(name, table.into(), Direction::Write, false)
    }

    /// An operation on no single table (`ListTables`, `DescribeLimits`, a
    /// batch across tables, ...). The capacity gate lets it through. Not
    /// idempotent until [`idempotent`](Operation::idempotent) says so.
    pub fn untabled(name: &'static str) -> Operation {
        Operation {
            name,
            table: None,
            idempotent: false,
            deadline: None,
            capacity: CapacityUse::default(),
        }
    }

    fn on_table(
        name: &'static str,
        table: String,
        direction: Direction,
        idempotent: bool,
    ) -> Operation {
        Operation {
            name,
            table: Some(table),
            idempotent,
            deadline: None,
            capacity: CapacityUse {
                direction: Some(direction),
                ..CapacityUse::default()
            },
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

    /// The operation's own deadline, if it overrides the policy's.
    pub(crate) fn own_deadline(&self) -> Option<Deadline> {
        self.deadline
    }

    pub(crate) fn capacity(&self) -> &CapacityUse {
        &self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_idempotent_and_writes_and_untabled_calls_are_not_until_marked() {
        assert!(Operation::read("GetItem", "t").is_idempotent());
        assert!(!Operation::write("PutItem", "t").is_idempotent());
        assert!(!Operation::untabled("ListTables").is_idempotent());
        assert!(
            Operation::untabled("ListTables")
                .idempotent()
                .is_idempotent()
        );
        assert_eq!(Operation::untabled("ListTables").table(), None);
        assert_eq!(
            Operation::write("PutItem", "t").capacity().direction,
            Some(Direction::Write)
        );
    }
}
