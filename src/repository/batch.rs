//! Batch reads and writes that never lose an unprocessed item.
//!
//! DynamoDB takes at most 100 keys per `BatchGetItem` and 25 requests per
//! `BatchWriteItem`, and may answer a successful call with part of it left
//! over (`UnprocessedKeys`, `UnprocessedItems`), typically when throttled. The
//! repository chunks, re-sends what is left with jittered backoff inside the
//! operation's deadline, and when it has to stop, names exactly the keys that
//! were not processed. A key it reports processed was confirmed by DynamoDB.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use aws_sdk_dynamodb::types::{DeleteRequest, KeysAndAttributes, PutRequest, WriteRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::{Consistency, Item, Key, Repository, RepositoryError};
use crate::capacity::estimate;
use crate::operation::Operation;
use crate::repository::codec::item_size;
use crate::retry::{ErrorKind, Throttle, ThrottleCode};

/// DynamoDB's largest `BatchGetItem`.
pub const MAX_BATCH_GET: usize = 100;
/// DynamoDB's largest `BatchWriteItem`.
pub const MAX_BATCH_WRITE: usize = 25;

impl<T> Repository<T>
where
    T: Serialize + DeserializeOwned,
{
    /// Reads many items by key, in any order; missing items are left out.
    ///
    /// On [`RepositoryError::BatchIncomplete`], `read` holds the items read
    /// and `unprocessed` exactly the keys not read.
    pub async fn batch_get(
        &self,
        keys: &[Key],
        consistency: Consistency,
    ) -> Result<Vec<T>, RepositoryError<T>> {
        let mut pending: VecDeque<Item> = self.unique_key_maps(keys)?.into();
        let deadline = Instant::now() + self.client.policy().deadline();
        let mut read = Vec::new();
        let mut backoff = Backoff::default();
        while !pending.is_empty() {
            let chunk: Vec<Item> = pending.drain(..pending.len().min(MAX_BATCH_GET)).collect();
            let request = KeysAndAttributes::builder()
                .set_keys(Some(chunk.clone()))
                .consistent_read(consistency == Consistency::Strong)
                .build()
                .map_err(|e| RepositoryError::InvalidKey(e.to_string()))?;
            let result = self
                .client
                .call(
                    Operation::read("BatchGetItem", &self.table)
                        .units(
                            chunk.len() as f64
                                * estimate::read_units(0, consistency == Consistency::Strong),
                        )
                        .deadline_at(deadline),
                    |sdk| {
                        sdk.batch_get_item()
                            .request_items(&self.table, request.clone())
                            .send()
                    },
                )
                .await;
            let mut output = match result {
                Ok(output) => output,
                Err(error) => {
                    // A read applies nothing: everything left is simply unread.
                    pending.extend(chunk);
                    return Err(self.incomplete(
                        pending,
                        VecDeque::new(),
                        read,
                        Some(error.into()),
                    ));
                }
            };
            for item in output
                .responses
                .as_mut()
                .and_then(|r| r.remove(&self.table))
                .unwrap_or_default()
            {
                read.push(self.decode(item)?);
            }
            let left: Vec<Item> = output
                .unprocessed_keys
                .as_mut()
                .and_then(|u| u.remove(&self.table))
                .map(|k| k.keys)
                .unwrap_or_default();
            if !left.is_empty() {
                pending.extend(left);
                if !backoff.wait(self, deadline).await {
                    return Err(self.incomplete(pending, VecDeque::new(), read, None));
                }
            }
        }
        Ok(read)
    }

    /// Writes many items (unconditional full-item puts, so repeating one is
    /// harmless). On [`RepositoryError::BatchIncomplete`], `unprocessed` holds
    /// exactly the keys certainly not written and `uncertain` those whose
    /// write may have been applied without an answer; all others are written.
    pub async fn batch_put(&self, items: &[T]) -> Result<(), RepositoryError<T>> {
        let mut requests = Vec::with_capacity(items.len());
        for item in items {
            let (encoded, key) = self.encode(item)?;
            super::check_size(&encoded)?;
            let put = PutRequest::builder()
                .set_item(Some(encoded))
                .build()
                .map_err(|e| RepositoryError::InvalidItem(e.to_string()))?;
            requests.push((key, WriteRequest::builder().put_request(put).build()));
        }
        self.batch_write(requests).await
    }

    /// Deletes many items by key. On [`RepositoryError::BatchIncomplete`],
    /// `unprocessed` holds exactly the keys certainly not deleted and
    /// `uncertain` those that may have been; all others are deleted.
    pub async fn batch_delete(&self, keys: &[Key]) -> Result<(), RepositoryError<T>> {
        let mut requests = Vec::with_capacity(keys.len());
        for key in keys {
            let delete = DeleteRequest::builder()
                .set_key(Some(self.key_map(key)?))
                .build()
                .map_err(|e| RepositoryError::InvalidKey(e.to_string()))?;
            requests.push((
                key.clone(),
                WriteRequest::builder().delete_request(delete).build(),
            ));
        }
        self.batch_write(requests).await
    }

    async fn batch_write(
        &self,
        requests: Vec<(Key, WriteRequest)>,
    ) -> Result<(), RepositoryError<T>> {
        reject_duplicates(requests.iter().map(|(key, _)| key))?;
        let mut pending: VecDeque<WriteRequest> = requests.into_iter().map(|(_, r)| r).collect();
        let deadline = Instant::now() + self.client.policy().deadline();
        let mut backoff = Backoff::default();
        while !pending.is_empty() {
            let chunk: Vec<WriteRequest> = pending
                .drain(..pending.len().min(MAX_BATCH_WRITE))
                .collect();
            let result = self
                .client
                .call(
                    Operation::write("BatchWriteItem", &self.table)
                        .idempotent()
                        .units(chunk.iter().map(write_units).sum())
                        .deadline_at(deadline),
                    |sdk| {
                        sdk.batch_write_item()
                            .set_request_items(Some(HashMap::from([(
                                self.table.clone(),
                                chunk.clone(),
                            )])))
                            .send()
                    },
                )
                .await;
            let mut output = match result {
                Ok(output) => output,
                Err(error) => {
                    let failure: super::DynamoFailure = error.into();
                    // The chunk in flight may have been applied if its answer was
                    // lost; what was never sent certainly was not.
                    let (unprocessed, uncertain) = if failure.may_have_applied() {
                        (pending, chunk.into())
                    } else {
                        pending.extend(chunk);
                        (pending, VecDeque::new())
                    };
                    return Err(self.incomplete(
                        self.request_maps(unprocessed).into(),
                        self.request_maps(uncertain).into(),
                        Vec::new(),
                        Some(failure),
                    ));
                }
            };
            let left = output
                .unprocessed_items
                .as_mut()
                .and_then(|u| u.remove(&self.table))
                .unwrap_or_default();
            if !left.is_empty() {
                pending.extend(left);
                if !backoff.wait(self, deadline).await {
                    let keys = self.request_maps(pending);
                    return Err(self.incomplete(keys.into(), VecDeque::new(), Vec::new(), None));
                }
            }
        }
        Ok(())
    }

    fn unique_key_maps(&self, keys: &[Key]) -> Result<Vec<Item>, RepositoryError<T>> {
        reject_duplicates(keys.iter())?;
        keys.iter().map(|key| self.key_map(key)).collect()
    }

    /// The key maps of write requests (a put's item holds its key).
    fn request_maps(&self, requests: VecDeque<WriteRequest>) -> Vec<Item> {
        requests
            .into_iter()
            .filter_map(|r| match (r.put_request, r.delete_request) {
                (Some(put), _) => Some(put.item),
                (None, Some(delete)) => Some(delete.key),
                (None, None) => None,
            })
            .collect()
    }

    fn incomplete(
        &self,
        unprocessed: VecDeque<Item>,
        uncertain: VecDeque<Item>,
        read: Vec<T>,
        cause: Option<super::DynamoFailure>,
    ) -> RepositoryError<T> {
        let keys = |maps: VecDeque<Item>| {
            maps.iter()
                .filter_map(|map| self.schema.key_of(map).ok())
                .collect()
        };
        RepositoryError::BatchIncomplete {
            unprocessed: keys(unprocessed),
            uncertain: keys(uncertain),
            read,
            cause: cause.map(Box::new),
        }
    }
}

/// DynamoDB refuses a batch that names one key twice; say which, before any call.
fn reject_duplicates<'k, T>(keys: impl Iterator<Item = &'k Key>) -> Result<(), RepositoryError<T>> {
    let mut seen = HashSet::new();
    for key in keys {
        if !seen.insert(key.to_string()) {
            return Err(RepositoryError::InvalidKey(format!(
                "key {key} appears twice in one batch"
            )));
        }
    }
    Ok(())
}

/// The backoff between rounds of unprocessed items: the policy's throttle
/// backoff, since unprocessed items are DynamoDB's partial throttle.
#[derive(Debug, Default)]
struct Backoff {
    rounds: u32,
    previous: Option<Duration>,
}

impl Backoff {
    /// Sleeps before the next round; false, without sleeping, when the
    /// deadline cannot fit the sleep and another attempt.
    async fn wait<T>(&mut self, repository: &Repository<T>, deadline: Instant) -> bool {
        let policy = repository.client.policy();
        let kind = ErrorKind::Throttling(Throttle::new(
            ThrottleCode::ProvisionedThroughputExceeded,
            Vec::new(),
        ));
        let delay = policy.draw_delay(&kind, self.rounds, self.previous);
        if Instant::now() + delay + policy.expected_attempt_time() > deadline {
            return false;
        }
        self.rounds += 1;
        self.previous = Some(delay);
        metrics::counter!("dynagate_batch_unprocessed_rounds_total").increment(1);
        tokio::time::sleep(delay).await;
        true
    }
}

/// The write units a batch request is estimated to take: a put by its
/// item's size, a delete one unit (DynamoDB's answer corrects both).
fn write_units(request: &WriteRequest) -> f64 {
    match request.put_request() {
        Some(put) => estimate::write_units(item_size(put.item())),
        None => 1.0,
    }
}
