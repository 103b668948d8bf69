//! What a call really consumed: an SDK interceptor that asks DynamoDB for
//! `ConsumedCapacity` and hands it to the gate that admitted the call and to
//! the [usage meter](crate::usage) in scope.
//!
//! The gate takes an estimate before the call (it cannot see the request:
//! the caller's closure builds it) and corrects by what DynamoDB reports
//! after. The interceptor is registered on every `ResilientClient`'s SDK
//! configuration and is idle outside a gated attempt or a metered scope: only
//! then does an attempt get `ReturnConsumedCapacity = INDEXES` added (when
//! the caller did not ask for it already) and its answer read: the split
//! tells a write's share of the table's own capacity from its global
//! indexes'.

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::{
    batch_get_item::{BatchGetItemInput, BatchGetItemOutput},
    batch_write_item::{BatchWriteItemInput, BatchWriteItemOutput},
    delete_item::{DeleteItemInput, DeleteItemOutput},
    get_item::{GetItemInput, GetItemOutput},
    put_item::{PutItemInput, PutItemOutput},
    query::{QueryInput, QueryOutput},
    scan::{ScanInput, ScanOutput},
    transact_get_items::{TransactGetItemsInput, TransactGetItemsOutput},
    transact_write_items::{TransactWriteItemsInput, TransactWriteItemsOutput},
    update_item::{UpdateItemInput, UpdateItemOutput},
};
use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};

use crate::operation::Direction;
use crate::usage;

tokio::task_local! {
    static WATCHED: Arc<Watched>;
}

/// The capacity one attempt consumed, per table, as DynamoDB reported it.
#[derive(Debug, Default)]
pub(crate) struct Watched(Mutex<Option<Vec<(String, f64)>>>);

impl Watched {
    /// The units consumed on `table`: `None` when DynamoDB reported nothing
    /// (an error, or a backend that does not report capacity).
    pub(crate) fn units_on(&self, table: &str) -> Option<f64> {
        let seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let entries = seen.as_ref()?;
        Some(
            entries
                .iter()
                .filter(|(name, _)| name.is_empty() || name == table)
                .map(|(_, units)| units)
                .sum(),
        )
    }

    fn record(&self, entries: Vec<(String, f64)>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(entries);
    }
}

/// Runs one attempt with its consumed capacity recorded into `watched`.
pub(crate) async fn watch<F: Future>(watched: Arc<Watched>, attempt: F) -> F::Output {
    WATCHED.scope(watched, attempt).await
}

/// Adds `ReturnConsumedCapacity = TOTAL` to gated calls and reads the answer.
#[derive(Debug)]
pub(crate) struct ConsumedCapacityInterceptor;

/// Whether the attempt in flight should ask for `ConsumedCapacity`: a gate
/// watches it or a usage meter is in scope.
pub(crate) fn wanted() -> bool {
    WATCHED.try_with(|_| ()).is_ok() || usage::in_scope()
}

/// Asks for the split by index, unless the caller asked for something already.
pub(crate) fn ask_for_capacity(setting: &mut Option<ReturnConsumedCapacity>) {
    setting.get_or_insert(ReturnConsumedCapacity::Indexes);
}

/// Hands what a read consumed to the usage meter and the watching gate (the
/// direct GetItem path's share of what the interceptor does).
pub(crate) fn record_read(capacity: Option<&ConsumedCapacity>) {
    if let Some(capacity) = capacity {
        record(Direction::Read, std::slice::from_ref(capacity));
    }
}

macro_rules! ask_for_capacity {
    ($input:expr, $($type:ty),+) => {
        $(
            if let Some(input) = $input.downcast_mut::<$type>() {
                ask_for_capacity(&mut input.return_consumed_capacity);
                return Ok(());
            }
        )+
    };
}

/// The consumed capacity of whichever output type `$output` holds: `one`
/// lists the outputs with a single `ConsumedCapacity`, `many` those with one
/// per table.
macro_rules! capacity_of {
    ($output:expr, one: $($one:ty),+; many: $($many:ty),+) => {{
        let mut found = None;
        $(
            if let Some(output) = $output.downcast_ref::<$one>() {
                found = one(output.consumed_capacity());
            }
        )+
        $(
            if let Some(output) = $output.downcast_ref::<$many>() {
                found = many(output.consumed_capacity.as_ref());
            }
        )+
        found
    }};
}

fn one(capacity: Option<&ConsumedCapacity>) -> Option<Vec<ConsumedCapacity>> {
    capacity.map(|c| vec![c.clone()])
}

fn many(capacity: Option<&Vec<ConsumedCapacity>>) -> Option<Vec<ConsumedCapacity>> {
    capacity.cloned()
}

/// What a call consumed in total: the table, its local indexes and its
/// global indexes. A caller is charged this (the [usage meter](crate::usage)).
fn total(capacity: &ConsumedCapacity) -> f64 {
    capacity.capacity_units().unwrap_or(0.0)
}

/// What a write consumed of the table's own capacity: the table and its
/// local secondary indexes, which share it, without the global secondary
/// indexes, which have capacity of their own (Developer Guide, "Global
/// secondary indexes: provisioned throughput considerations": a write to a
/// table with a GSI also consumes the index's write capacity). The
/// `INDEXES` answer has the split; without it, the total.
///
/// A table's gate settled against the total charged it every GSI write
/// too: on a table with one GSI each write cost it twice, and the gate shed
/// writes while the table had room (the abuse arena).
fn table_share(capacity: &ConsumedCapacity) -> f64 {
    match capacity.table() {
        Some(table) => {
            let local: f64 = capacity
                .local_secondary_indexes()
                .map(|indexes| indexes.values().filter_map(|c| c.capacity_units()).sum())
                .unwrap_or(0.0);
            table.capacity_units().unwrap_or(0.0) + local
        }
        None => total(capacity),
    }
}

/// Charges the usage meter in scope the total, and tells the watching gate
/// each table's share: a read on an index is reported under the index, and
/// the gate settles reads against the total, writes against the table's share.
fn record(direction: Direction, capacities: &[ConsumedCapacity]) {
    usage::record(direction, capacities.iter().map(total).sum());
    let share = match direction {
        Direction::Read => total,
        Direction::Write => table_share,
    };
    let entries: Vec<(String, f64)> = capacities
        .iter()
        .map(|c| (c.table_name().unwrap_or_default().to_owned(), share(c)))
        .collect();
    let _ = WATCHED.try_with(|watched| watched.record(entries));
}

impl Intercept for ConsumedCapacityInterceptor {
    fn name(&self) -> &'static str {
        "dynagate::ConsumedCapacity"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if !wanted() {
            return Ok(());
        }
        let input = context.input_mut();
        ask_for_capacity!(
            input,
            PutItemInput,
            UpdateItemInput,
            DeleteItemInput,
            GetItemInput,
            QueryInput,
            ScanInput,
            BatchWriteItemInput,
            BatchGetItemInput,
            TransactWriteItemsInput,
            TransactGetItemsInput
        );
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Ok(output) = context.output_or_error() else {
            return Ok(());
        };
        let entries = capacity_of!(
            output,
            one: PutItemOutput, UpdateItemOutput, DeleteItemOutput, GetItemOutput, QueryOutput,
                ScanOutput;
            many: BatchWriteItemOutput, BatchGetItemOutput, TransactWriteItemsOutput,
                TransactGetItemsOutput
        );
        if let Some(capacities) = entries {
            // Reads consume read units; everything else here writes.
            let reads = output.downcast_ref::<GetItemOutput>().is_some()
                || output.downcast_ref::<QueryOutput>().is_some()
                || output.downcast_ref::<ScanOutput>().is_some()
                || output.downcast_ref::<BatchGetItemOutput>().is_some()
                || output.downcast_ref::<TransactGetItemsOutput>().is_some();
            let direction = if reads {
                Direction::Read
            } else {
                Direction::Write
            };
            record(direction, &capacities);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::types::Capacity;

    use super::*;

    fn units(n: f64) -> Capacity {
        Capacity::builder().capacity_units(n).build()
    }

    #[test]
    fn a_write_charges_the_table_its_own_share_and_its_local_indexes() {
        // What DynamoDB Local answers INDEXES for a put on a table with one
        // GSI: 2 in total, 1 of them the index's.
        let with_gsi = ConsumedCapacity::builder()
            .table_name("users")
            .capacity_units(2.0)
            .table(units(1.0))
            .set_global_secondary_indexes(Some(HashMap::from([("by_email".into(), units(1.0))])))
            .build();
        assert_eq!(total(&with_gsi), 2.0);
        assert_eq!(table_share(&with_gsi), 1.0);
        let with_lsi = ConsumedCapacity::builder()
            .table_name("users")
            .capacity_units(2.0)
            .table(units(1.0))
            .set_local_secondary_indexes(Some(HashMap::from([("by_date".into(), units(1.0))])))
            .build();
        assert_eq!(
            table_share(&with_lsi),
            2.0,
            "a local index shares the table's"
        );
        let total_only = ConsumedCapacity::builder()
            .table_name("users")
            .capacity_units(3.0)
            .build();
        assert_eq!(table_share(&total_only), 3.0, "no split: the total");
    }
}
