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
use crate::operation::Operation;

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
        let result = self
            .client
            .call(
                Operation::untabled("TransactWriteItems").idempotent(),
                |sdk| {
                    sdk.transact_write_items()
                        .set_transact_items(Some(items.clone()))
                        .client_request_token(token.as_str())
                        .send()
                },
            )
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
