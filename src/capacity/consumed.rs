//! What a call really consumed: an SDK interceptor that asks DynamoDB for
//! `ConsumedCapacity` and hands it to the gate that admitted the call and to
//! the [usage meter](crate::usage) in scope.
//!
//! The gate takes an estimate before the call (it cannot see the request:
//! the caller's closure builds it) and corrects by what DynamoDB reports
//! after. The interceptor is registered on every `ResilientClient`'s SDK
//! configuration and is idle outside a gated attempt or a metered scope: only
//! then does an attempt get `ReturnConsumedCapacity = TOTAL` added (when the
//! caller did not ask for it already) and its answer read.

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

macro_rules! ask_for_capacity {
    ($input:expr, $($type:ty),+) => {
        $(
            if let Some(input) = $input.downcast_mut::<$type>() {
                input.return_consumed_capacity.get_or_insert(ReturnConsumedCapacity::Total);
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

fn one(capacity: Option<&ConsumedCapacity>) -> Option<Vec<(String, f64)>> {
    capacity.map(|c| vec![entry(c)])
}

fn many(capacity: Option<&Vec<ConsumedCapacity>>) -> Option<Vec<(String, f64)>> {
    capacity.map(|all| all.iter().map(entry).collect())
}

fn entry(capacity: &ConsumedCapacity) -> (String, f64) {
    (
        capacity.table_name().unwrap_or_default().to_owned(),
        capacity.capacity_units().unwrap_or(0.0),
    )
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
        if WATCHED.try_with(|_| ()).is_err() && !usage::in_scope() {
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
        if let Some(entries) = entries {
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
            usage::record(direction, entries.iter().map(|(_, units)| units).sum());
            let _ = WATCHED.try_with(|watched| watched.record(entries));
        }
        Ok(())
    }
}
