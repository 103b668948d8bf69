//! Transactions whose retries are idempotent.
//!
//! `TransactWriteItems` is idempotent for ten minutes under one
//! `ClientRequestToken`. The AWS SDK generates a fresh token on every send, so
//! a transaction retried after a lost answer could be applied twice. Here the
//! token is the caller's write token (or a generated one), fixed before the
//! first attempt and sent with every retry.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::TransactWriteItem;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{CancellationCode, CancellationReason, Repository, RepositoryError, WriteToken};
use crate::capacity::estimate;
use crate::operation::Operation;
use crate::repository::codec::item_size;

/// DynamoDB's largest transaction.
pub const MAX_TRANSACTION_ITEMS: usize = 100;
/// The longest `ClientRequestToken` DynamoDB accepts.
const MAX_REQUEST_TOKEN: usize = 36;

impl<T> Repository<T>
where
    T: Serialize + DeserializeOwned,
{
    /// Runs a write transaction (on any tables) through the retry policy with
    /// one `ClientRequestToken` for all attempts: `token` (at most 36
    /// characters; [`WriteToken::generate`] fits). DynamoDB keeps request
    /// tokens for ten minutes across the account: one token per logical
    /// transaction, never reused for another.
    ///
    /// A cancelled transaction comes back as
    /// [`RepositoryError::TransactionCanceled`] with one reason per item, in
    /// request order; cancellations caused only by throttling or conflicts
    /// with other transactions are retried first.
    pub async fn transact_write(
        &self,
        items: Vec<TransactWriteItem>,
        token: &WriteToken,
    ) -> Result<(), RepositoryError<T>> {
        if items.is_empty() || items.len() > MAX_TRANSACTION_ITEMS {
            return Err(RepositoryError::InvalidItem(format!(
                "a transaction holds 1 to {MAX_TRANSACTION_ITEMS} items, got {}",
                items.len()
            )));
        }
        if token.as_str().len() > MAX_REQUEST_TOKEN {
            return Err(RepositoryError::InvalidItem(format!(
                "a transaction token has at most {MAX_REQUEST_TOKEN} characters"
            )));
        }
        let operation = match single_table(&items) {
            // The table's capacity gate sees the transaction at its price.
            Some(table) => Operation::write("TransactWriteItems", table)
                .idempotent()
                .units(transaction_write_units(&items)),
            // Across tables there is no one gate to ask: not gated.
            None => Operation::untabled("TransactWriteItems").idempotent(),
        };
        let result = self
            .client
            .call(operation, |sdk| {
                sdk.transact_write_items()
                    .set_transact_items(Some(items.clone()))
                    .client_request_token(token.as_str())
                    .send()
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => {
                if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                    error.last_error().and_then(|e| e.as_service_error())
                {
                    let reasons = cancelled
                        .cancellation_reasons()
                        .iter()
                        .map(|r| CancellationReason {
                            code: CancellationCode::parse(r.code()),
                            message: r.message().map(str::to_owned),
                            item: r.item().cloned(),
                        })
                        .collect();
                    return Err(RepositoryError::TransactionCanceled { reasons });
                }
                Err(RepositoryError::Dynamodb(error.into()))
            }
        }
    }
}

/// The table every action of `items` names, when they all name one.
fn single_table(items: &[TransactWriteItem]) -> Option<&str> {
    let mut tables = items.iter().map(|item| {
        item.put()
            .map(|a| a.table_name())
            .or_else(|| item.update().map(|a| a.table_name()))
            .or_else(|| item.delete().map(|a| a.table_name()))
            .or_else(|| item.condition_check().map(|a| a.table_name()))
    });
    let first = tables.next()??;
    tables.all(|t| t == Some(first)).then_some(first)
}

/// What a transaction is estimated to write: DynamoDB performs two
/// underlying writes of every item, one to prepare the transaction and one
/// to commit it ("Capacity management for transactions",
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-capacity-handling>),
/// so each action costs twice a write of its item: a put by its item's size,
/// any other action (whose item's size is not known here) as one of up to
/// 1 KB. The capacity gate settles the estimate against the consumed
/// capacity DynamoDB reports.
fn transaction_write_units(items: &[TransactWriteItem]) -> f64 {
    items
        .iter()
        .map(|item| {
            let bytes = item.put().map_or(0, |put| item_size(put.item()));
            2.0 * estimate::write_units(bytes)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put};

    use super::*;

    fn put(table: &str, bytes: usize) -> TransactWriteItem {
        let put = Put::builder()
            .table_name(table)
            .item("id", AttributeValue::S("a".repeat(bytes)))
            .build()
            .unwrap();
        TransactWriteItem::builder().put(put).build()
    }

    fn check(table: &str) -> TransactWriteItem {
        let check = ConditionCheck::builder()
            .table_name(table)
            .key("id", AttributeValue::S("a".into()))
            .condition_expression("attribute_exists(id)")
            .build()
            .unwrap();
        TransactWriteItem::builder().condition_check(check).build()
    }

    #[test]
    fn a_transaction_on_one_table_is_gated_there_at_twice_its_writes() {
        let items = [put("users", 10), put("users", 1500), check("users")];
        assert_eq!(single_table(&items), Some("users"));
        // 2 x (1 + 2 + 1): prepare and commit of every item.
        assert_eq!(transaction_write_units(&items), 8.0);
    }

    #[test]
    fn a_transaction_across_tables_names_none() {
        assert_eq!(single_table(&[put("users", 1), check("orders")]), None);
        assert_eq!(single_table(&[]), None);
    }
}
