//! Conditional writes that are safe to retry: create, idempotent put,
//! versioned update, delete.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    DeleteCondition, Item, Key, Repository, RepositoryError, WriteToken, Written, check_size,
    stored_version,
};
use crate::capacity::estimate;
use crate::operation::Operation;
use crate::repository::codec::item_size;
use crate::retry::ErrorKind;

/// The condition a put is made under.
#[derive(Debug, Clone, Copy)]
enum Guard {
    /// No item with this key exists.
    Absent,
    /// The stored item is at this version.
    Version(u64),
    /// The stored item (if any) was not written with this write's token.
    NotThisToken,
}

/// The result of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// True when an item was there to delete (by this call or, when
    /// `replayed`, by an earlier attempt of it).
    pub existed: bool,
    /// True when an earlier attempt of this delete had already removed the item.
    pub replayed: bool,
}

impl<T> Repository<T>
where
    T: Serialize + DeserializeOwned,
{
    /// Writes `item` only if no item has its key; otherwise
    /// [`RepositoryError::Conflict`] with the stored item. The item is stored at
    /// version 1.
    ///
    /// Retrying with the same token is safe: if an earlier attempt (or an
    /// earlier call) with this token stored this item, the result is
    /// `Written { replayed: true, .. }`, not a conflict.
    pub async fn create(
        &self,
        item: &T,
        token: &WriteToken,
    ) -> Result<Written, RepositoryError<T>> {
        let (encoded, _) = self.encode(item)?;
        self.conditional_put(encoded, Guard::Absent, token, Some(1))
            .await
    }

    /// Writes `item` whatever is stored, once per token: repeating the call
    /// with the same token and item does nothing more (`replayed`); the same
    /// token with another item is [`RepositoryError::TokenReused`]. The item's
    /// version attribute is written as the item has it (unversioned put).
    pub async fn put_idempotent(
        &self,
        item: &T,
        token: &WriteToken,
    ) -> Result<Written, RepositoryError<T>> {
        let (encoded, _) = self.encode(item)?;
        self.conditional_put(encoded, Guard::NotThisToken, token, None)
            .await
    }

    /// Replaces the stored item with `item` if it is still at
    /// `expected_version` (optimistic locking), storing it at
    /// `expected_version + 1`; [`RepositoryError::VersionMismatch`] when
    /// another write came first, [`RepositoryError::NotFound`] when there is no
    /// item.
    pub async fn update_versioned(
        &self,
        item: &T,
        expected_version: u64,
        token: &WriteToken,
    ) -> Result<Written, RepositoryError<T>> {
        let (encoded, _) = self.encode(item)?;
        self.conditional_put(
            encoded,
            Guard::Version(expected_version),
            token,
            Some(expected_version + 1),
        )
        .await
    }

    async fn conditional_put(
        &self,
        mut item: Item,
        guard: Guard,
        token: &WriteToken,
        new_version: Option<u64>,
    ) -> Result<Written, RepositoryError<T>> {
        item.insert(
            self.token_attribute.clone(),
            AttributeValue::S(token.as_str().to_owned()),
        );
        if let Some(version) = new_version {
            item.insert(
                self.version_attribute.clone(),
                AttributeValue::N(version.to_string()),
            );
        }
        check_size(&item)?;
        let (condition, names, values) = self.condition(guard, token);
        let result = self
            .client
            .call(
                Operation::write("PutItem", &self.table)
                    .idempotent()
                    .units(estimate::write_units(item_size(&item)))
                    .partition_key(self.partition_label(&item)),
                |sdk| {
                    sdk.put_item()
                        .table_name(&self.table)
                        .set_item(Some(item.clone()))
                        .condition_expression(condition)
                        .set_expression_attribute_names(Some(names.clone()))
                        .set_expression_attribute_values(values.clone())
                        .return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .send()
                },
            )
            .await;
        match result {
            Ok(_) => Ok(Written {
                version: new_version,
                replayed: false,
            }),
            Err(error) if error.kind() == Some(&ErrorKind::Conflict) => {
                let stored = match error.last_error().and_then(|e| e.as_service_error()) {
                    Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                        failed.item().cloned()
                    }
                    _ => None,
                };
                self.resolve_failed_condition(stored, &item, guard, token)
            }
            Err(error) => Err(RepositoryError::Dynamodb(error.into())),
        }
    }

    /// The condition expression of a guard, with its names and values.
    fn condition(
        &self,
        guard: Guard,
        token: &WriteToken,
    ) -> (
        &'static str,
        HashMap<String, String>,
        Option<HashMap<String, AttributeValue>>,
    ) {
        match guard {
            Guard::Absent => (
                "attribute_not_exists(#pk)",
                HashMap::from([("#pk".to_owned(), self.schema.partition_name().to_owned())]),
                None,
            ),
            Guard::Version(expected) => (
                "#version = :expected",
                HashMap::from([("#version".to_owned(), self.version_attribute.clone())]),
                Some(HashMap::from([(
                    ":expected".to_owned(),
                    AttributeValue::N(expected.to_string()),
                )])),
            ),
            Guard::NotThisToken => (
                "attribute_not_exists(#token) OR #token <> :token",
                HashMap::from([("#token".to_owned(), self.token_attribute.clone())]),
                Some(HashMap::from([(
                    ":token".to_owned(),
                    AttributeValue::S(token.as_str().to_owned()),
                )])),
            ),
        }
    }

    /// A failed condition is this write's own earlier success when the stored
    /// item carries its token; otherwise it is a real conflict.
    fn resolve_failed_condition(
        &self,
        stored: Option<Item>,
        ours: &Item,
        guard: Guard,
        token: &WriteToken,
    ) -> Result<Written, RepositoryError<T>> {
        let token_value = AttributeValue::S(token.as_str().to_owned());
        if let Some(stored) = &stored
            && stored.get(&self.token_attribute) == Some(&token_value)
        {
            return if stored == ours {
                Ok(Written {
                    version: stored_version(stored, &self.version_attribute),
                    replayed: true,
                })
            } else {
                Err(RepositoryError::TokenReused {
                    token: token.as_str().to_owned(),
                })
            };
        }
        match (guard, stored) {
            (Guard::Version(expected), Some(stored)) => Err(RepositoryError::VersionMismatch {
                expected,
                current: stored_version(&stored, &self.version_attribute),
            }),
            (Guard::Version(_), None) => Err(RepositoryError::NotFound),
            (_, stored) => Err(RepositoryError::Conflict {
                existing: stored.map(|s| self.decode(s)).transpose()?.map(Box::new),
            }),
        }
    }

    /// Deletes the item with `key` under `condition`.
    ///
    /// Retrying is safe: when an earlier attempt's answer was lost and the
    /// retry finds the item gone, the result is `Deleted { replayed: true }`.
    pub async fn delete(
        &self,
        key: &Key,
        condition: DeleteCondition,
    ) -> Result<Deleted, RepositoryError<T>> {
        let key_map = self.key_map(key)?;
        let (expression, names, values) = match condition {
            DeleteCondition::Always => (None, None, None),
            DeleteCondition::MustExist => (
                Some("attribute_exists(#pk)"),
                Some(HashMap::from([(
                    "#pk".to_owned(),
                    self.schema.partition_name().to_owned(),
                )])),
                None,
            ),
            DeleteCondition::AtVersion(version) => (
                Some("#version = :expected"),
                Some(HashMap::from([(
                    "#version".to_owned(),
                    self.version_attribute.clone(),
                )])),
                Some(HashMap::from([(
                    ":expected".to_owned(),
                    AttributeValue::N(version.to_string()),
                )])),
            ),
        };
        let result = self
            .client
            .call(
                Operation::write("DeleteItem", &self.table)
                    .idempotent()
                    .partition_key(self.partition_label(&key_map)),
                |sdk| {
                    sdk.delete_item()
                        .table_name(&self.table)
                        .set_key(Some(key_map.clone()))
                        .set_condition_expression(expression.map(str::to_owned))
                        .set_expression_attribute_names(names.clone())
                        .set_expression_attribute_values(values.clone())
                        .return_values(ReturnValue::AllOld)
                        .return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .send()
                },
            )
            .await;
        match result {
            Ok(output) => Ok(Deleted {
                existed: output.attributes.is_some_and(|a| !a.is_empty()),
                replayed: false,
            }),
            Err(error) if error.kind() == Some(&ErrorKind::Conflict) => {
                let stored = match error.last_error().and_then(|e| e.as_service_error()) {
                    Some(DeleteItemError::ConditionalCheckFailedException(failed)) => {
                        failed.item().cloned()
                    }
                    _ => None,
                };
                match (stored, condition) {
                    // Gone, and an earlier attempt may be what removed it.
                    (None, _) if error.may_have_applied() => Ok(Deleted {
                        existed: true,
                        replayed: true,
                    }),
                    (None, _) => Err(RepositoryError::NotFound),
                    (Some(stored), DeleteCondition::AtVersion(expected)) => {
                        Err(RepositoryError::VersionMismatch {
                            expected,
                            current: stored_version(&stored, &self.version_attribute),
                        })
                    }
                    (Some(_), _) => Err(RepositoryError::NotFound),
                }
            }
            Err(error) => Err(RepositoryError::Dynamodb(error.into())),
        }
    }
}
