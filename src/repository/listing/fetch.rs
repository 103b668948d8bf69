//! One DynamoDB call of a listing: the Query or Scan request as built, sent
//! through the resilient client, and its answer as the listing counts it.

use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::capacity::estimate;
use crate::operation::Operation;
use crate::repository::RepositoryError;
use crate::repository::codec::{Item, item_size};
use crate::repository::listing::{ListKind, Listing, Progress};

/// One DynamoDB answer.
pub(super) struct Fetched {
    pub(super) items: Vec<Item>,
    pub(super) last_key: Option<Item>,
    pub(super) units: f64,
    pub(super) scanned: u64,
    pub(super) count: u64,
}

impl<T> Listing<'_, T>
where
    T: Serialize + DeserializeOwned,
{
    /// One call. Every call runs through the resilient client (retries,
    /// budget, deadline, capacity gate), estimated at the cost per call so far.
    pub(super) async fn fetch(
        &self,
        progress: &Progress,
        limit: i32,
    ) -> Result<Fetched, RepositoryError<T>> {
        let repository = self.repository;
        let table = repository.table();
        let estimate = if progress.calls == 0 {
            estimate::read_units(0, self.strong)
        } else {
            progress.units / f64::from(progress.calls)
        };
        let start = progress.start.clone();
        let fetched = match &self.kind {
            ListKind::Query {
                index,
                key_condition,
                partition_label,
            } => {
                let mut operation = Operation::read("Query", table)
                    .units(estimate)
                    .partition_key(partition_label.clone());
                if let Some(index) = index {
                    operation = operation.index(index.clone());
                }
                let output = repository
                    .client()
                    .call(operation, |sdk| {
                        sdk.query()
                            .table_name(table)
                            .set_index_name(index.clone())
                            .key_condition_expression(key_condition)
                            .set_filter_expression(self.filter.clone())
                            .set_projection_expression(self.projection.clone())
                            .set_expression_attribute_names(self.names.clone())
                            .set_expression_attribute_values(self.values.clone())
                            .consistent_read(self.strong)
                            .scan_index_forward(self.forward)
                            .set_exclusive_start_key(start.clone())
                            .limit(limit)
                            .return_consumed_capacity(ReturnConsumedCapacity::Total)
                            .send()
                    })
                    .await
                    .map_err(|e| RepositoryError::Dynamodb(e.into()))?;
                let units = output.consumed_capacity().and_then(|c| c.capacity_units());
                Fetched::new(
                    output.items,
                    output.last_evaluated_key,
                    units,
                    output.scanned_count,
                    output.count,
                    self.strong,
                )
            }
            ListKind::Scan { index, segment } => {
                let mut operation = Operation::read("Scan", table).units(estimate);
                if let Some(index) = index {
                    operation = operation.index(index.clone());
                }
                let output = repository
                    .client()
                    .call(operation, |sdk| {
                        sdk.scan()
                            .table_name(table)
                            .set_index_name(index.clone())
                            .set_filter_expression(self.filter.clone())
                            .set_projection_expression(self.projection.clone())
                            .set_expression_attribute_names(self.names.clone())
                            .set_expression_attribute_values(self.values.clone())
                            .consistent_read(self.strong)
                            .set_segment(segment.map(|s| s.index as i32))
                            .set_total_segments(segment.map(|s| s.total as i32))
                            .set_exclusive_start_key(start.clone())
                            .limit(limit)
                            .return_consumed_capacity(ReturnConsumedCapacity::Total)
                            .send()
                    })
                    .await
                    .map_err(|e| RepositoryError::Dynamodb(e.into()))?;
                let units = output.consumed_capacity().and_then(|c| c.capacity_units());
                Fetched::new(
                    output.items,
                    output.last_evaluated_key,
                    units,
                    output.scanned_count,
                    output.count,
                    self.strong,
                )
            }
        };
        Ok(fetched)
    }
}

impl Fetched {
    fn new(
        items: Option<Vec<Item>>,
        last_key: Option<Item>,
        units: Option<f64>,
        scanned: i32,
        count: i32,
        strong: bool,
    ) -> Fetched {
        let items = items.unwrap_or_default();
        // A backend that reports no capacity: the returned items' size is a
        // floor (a filter's discarded items are not in the answer).
        let units = units
            .unwrap_or_else(|| estimate::read_units(items.iter().map(item_size).sum(), strong));
        Fetched {
            items,
            last_key: last_key.filter(|k| !k.is_empty()),
            units,
            scanned: u64::try_from(scanned).unwrap_or(0),
            count: u64::try_from(count).unwrap_or(0),
        }
    }
}
