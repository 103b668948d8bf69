//! `Idempotency-Key`: a retried request replays the first result, and a key
//! is never silently reused for another request.
//!
//! The key is bound to the caller the rate-limit layer authenticated and to a
//! fingerprint of the request (method, path, the parsed body's fields): its
//! record, keyed by a hash of (caller, key), is written in one
//! `TransactWriteItems` with the user it guards, in the users table. So the
//! record exists exactly when the write was applied, however requests race:
//! - the same caller, key and fingerprint again: the stored result is
//!   replayed, nothing is written. The record is read first (one read unit):
//!   a replay costs a read, not a cancelled transaction, which DynamoDB
//!   charges at twice the write units of its items. Two requests that race
//!   past the read meet at the record's condition, which fails for one of
//!   them, and that one replays the other's result;
//! - the same caller and key with another fingerprint: 422;
//! - another caller's same key: another record, independent.
//!
//! A request that fails (409, 412, 404) writes no record, so its key stays
//! free for the corrected request. Records expire after [`KEEP_FOR`]: the
//! condition treats an expired record as absent, and `expires_at` is the
//! attribute for the table's DynamoDB TTL to delete them by.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use dynagate::Operation;
use dynagate::capacity::estimate;
use dynagate::http::Caller;
use dynagate::repository::{
    CancellationCode, CancellationReason, DEFAULT_TOKEN_ATTRIBUTE, Item, RepositoryError,
    WriteToken,
};
use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::errors::ApiError;
use crate::model::User;
use crate::state::AppState;

/// How long a key replays its first result.
pub const KEEP_FOR: Duration = Duration::from_secs(24 * 60 * 60);
/// The record's expiry (Unix seconds), for the table's TTL.
pub const EXPIRES_ATTRIBUTE: &str = "expires_at";
/// Records share the users table's partition key. `#` is not allowed in a
/// user id, so a record never collides with a user and no route can read one.
pub(crate) const RECORD_PREFIX: &str = "idem#";
/// The users table's partition key.
const PARTITION_KEY: &str = "user_id";

/// An `Idempotency-Key` bound to its caller and request.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    record_id: String,
    fingerprint: String,
}

impl IdempotencyKey {
    /// The request's key, `None` without the header. `fields` are the parsed
    /// body's fields in a fixed order: the fingerprint ignores how the JSON
    /// was spelled (key order, spacing), not what it says.
    pub fn from_request(
        headers: &HeaderMap,
        caller: Option<&Caller>,
        method: &Method,
        path: &str,
        fields: &[&str],
    ) -> Result<Option<IdempotencyKey>, ApiError> {
        let Some(value) = headers.get("idempotency-key") else {
            return Ok(None);
        };
        let key = value
            .to_str()
            .ok()
            .filter(|v| WriteToken::new(*v).is_ok())
            .ok_or_else(|| {
                ApiError::InvalidInput(
                    "Idempotency-Key must be 1 to 255 printable ASCII characters".into(),
                )
            })?;
        // Without the layer (the overhead benchmark) callers share one space.
        let caller = caller.map_or("", |c| c.id.as_str());
        let mut request = vec![method.as_str(), path];
        request.extend_from_slice(fields);
        Ok(Some(IdempotencyKey {
            record_id: format!("{RECORD_PREFIX}{}", digest(&[caller, key])),
            fingerprint: digest(&request),
        }))
    }
}

/// SHA-256 of length-prefixed parts, so no two lists of parts share a digest.
fn digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// What the user item's write requires.
#[derive(Debug, Clone, Copy)]
pub enum Precondition {
    /// No user with this id.
    Absent,
    /// The stored user is at this version.
    Version(u64),
}

/// The result of a keyed write: the first one's, when replayed.
#[derive(Debug)]
pub struct Outcome {
    pub status: StatusCode,
    pub user: User,
    pub replayed: bool,
}

/// Writes `user` (at its final version) under `precondition` together with
/// the key's record, once: the outcome `status` and `user`, or the first
/// request's when this key and request were already applied.
pub async fn write_once(
    state: &AppState,
    key: &IdempotencyKey,
    user: &User,
    precondition: Precondition,
    status: StatusCode,
) -> Result<Outcome, ApiError> {
    let table = state.users.table();
    if let Some(record) = stored_record(state, key).await? {
        return replay(key, &record);
    }
    let token = WriteToken::generate();
    let response = serde_json::to_string(user).map_err(|e| ApiError::Internal(e.to_string()))?;
    let expires_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + KEEP_FOR.as_secs();
    let record = Item::from([
        (PARTITION_KEY.to_owned(), s(&key.record_id)),
        ("fingerprint".to_owned(), s(&key.fingerprint)),
        ("status".to_owned(), n(status.as_u16())),
        ("response".to_owned(), s(&response)),
        (EXPIRES_ATTRIBUTE.to_owned(), n(expires_at)),
    ]);
    let now = expires_at - KEEP_FOR.as_secs();
    let record_put = Put::builder()
        .table_name(table)
        .set_item(Some(record))
        .condition_expression("attribute_not_exists(#pk) OR #expires < :now")
        .expression_attribute_names("#pk", PARTITION_KEY)
        .expression_attribute_names("#expires", EXPIRES_ATTRIBUTE)
        .expression_attribute_values(":now", n(now));
    let mut user_item = item_of(user)?;
    user_item.insert(DEFAULT_TOKEN_ATTRIBUTE.to_owned(), s(token.as_str()));
    let user_put = match precondition {
        Precondition::Absent => Put::builder()
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PARTITION_KEY),
        Precondition::Version(expected) => Put::builder()
            .condition_expression("#version = :expected")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":expected", n(expected)),
    }
    .table_name(table)
    .set_item(Some(user_item));
    // The record first: whatever DynamoDB reports about the user, it reports
    // on the record too.
    let items = [record_put, user_put]
        .into_iter()
        .map(|put| {
            put.return_values_on_condition_check_failure(
                ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .build()
            .map(|put| TransactWriteItem::builder().put(put).build())
            .map_err(|e| ApiError::Internal(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    match state.users.transact_write(items, &token).await {
        Ok(()) => Ok(Outcome {
            status,
            user: user.clone(),
            replayed: false,
        }),
        Err(RepositoryError::TransactionCanceled { reasons }) => {
            resolve(key, precondition, &reasons)
        }
        Err(other) => Err(other.into()),
    }
}

/// Why the transaction was cancelled: this key's earlier write (replay), the
/// key used for another request (422), or the user's own condition.
fn resolve(
    key: &IdempotencyKey,
    precondition: Precondition,
    reasons: &[CancellationReason],
) -> Result<Outcome, ApiError> {
    let failed = |i: usize| {
        reasons
            .get(i)
            .filter(|r| r.code == CancellationCode::ConditionalCheckFailed)
    };
    if let Some(record) = failed(0) {
        let record = record.item.as_ref().ok_or_else(|| {
            ApiError::Internal("a failed condition came back without the stored record".into())
        })?;
        return replay(key, record);
    }
    if let Some(user) = failed(1) {
        let current = user.item.as_ref().and_then(|item| text(item, "version"));
        return Err(match (precondition, current) {
            (Precondition::Absent, _) => {
                ApiError::Conflict("a user with this user_id already exists".into())
            }
            (Precondition::Version(_), Some(v)) => ApiError::VersionMismatch {
                current: v.parse().ok(),
            },
            (Precondition::Version(_), None) => ApiError::NotFound,
        });
    }
    // Throttling or contention that outlasted the retries: waiting helps.
    if reasons.iter().any(|r| {
        matches!(
            r.code,
            CancellationCode::ThrottlingError
                | CancellationCode::ProvisionedThroughputExceeded
                | CancellationCode::TransactionConflict
        )
    }) {
        return Err(ApiError::Unavailable(Duration::from_secs(1)));
    }
    Err(ApiError::Internal(format!(
        "the transaction was cancelled: {reasons:?}"
    )))
}

/// The key's record, read strongly; `None` when there is none or it has
/// expired (the transaction's condition treats an expired one as absent).
async fn stored_record(state: &AppState, key: &IdempotencyKey) -> Result<Option<Item>, ApiError> {
    let table = state.users.table();
    let output = state
        .dynamodb
        .call(
            Operation::read("GetItem", table)
                .units(estimate::read_units(0, true))
                .partition_key(&key.record_id),
            |sdk| {
                sdk.get_item()
                    .table_name(table)
                    .key(PARTITION_KEY, s(&key.record_id))
                    .consistent_read(true)
                    .send()
            },
        )
        .await
        .map_err(|e| ApiError::from(RepositoryError::<()>::Dynamodb(e.into())))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(output.item.filter(|record| {
        text(record, EXPIRES_ATTRIBUTE)
            .and_then(|v| v.parse::<u64>().ok())
            .is_none_or(|expires| expires >= now)
    }))
}

/// The first request's result from its record: 422 when the record is of
/// another request.
fn replay(key: &IdempotencyKey, record: &Item) -> Result<Outcome, ApiError> {
    if text(record, "fingerprint") != Some(key.fingerprint.as_str()) {
        return Err(ApiError::IdempotencyKeyReused);
    }
    let status = text(record, "status")
        .and_then(|v| v.parse().ok())
        .and_then(|v| StatusCode::from_u16(v).ok());
    let user = text(record, "response").and_then(|v| serde_json::from_str(v).ok());
    match (status, user) {
        (Some(status), Some(user)) => Ok(Outcome {
            status,
            user,
            replayed: true,
        }),
        _ => Err(ApiError::Internal(
            "an unreadable idempotency record".into(),
        )),
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A string or number attribute as text.
fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name)? {
        AttributeValue::S(v) | AttributeValue::N(v) => Some(v),
        _ => None,
    }
}

/// The user as the repository stores it (serde_dynamo's mapping of its
/// fields: strings `S`, integers `N`), so `Repository<User>` reads it back.
fn item_of(user: &User) -> Result<Item, ApiError> {
    let Value::Object(fields) =
        serde_json::to_value(user).map_err(|e| ApiError::Internal(e.to_string()))?
    else {
        return Err(ApiError::Internal("a user is not a JSON object".into()));
    };
    fields
        .into_iter()
        .map(|(name, value)| match value {
            Value::String(v) => Ok((name, AttributeValue::S(v))),
            Value::Number(v) => Ok((name, AttributeValue::N(v.to_string()))),
            other => Err(ApiError::Internal(format!(
                "user field `{name}` is {other}: not a string or number"
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(caller: &str, key: &str, fields: &[&str]) -> IdempotencyKey {
        let mut headers = HeaderMap::new();
        headers.insert("idempotency-key", key.parse().unwrap());
        let caller = Caller {
            id: caller.into(),
            limits: None,
        };
        IdempotencyKey::from_request(&headers, Some(&caller), &Method::POST, "/u", fields)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn the_record_is_per_caller_and_the_fingerprint_per_request() {
        let first = key("k1", "abc", &["ada", "a@x.io"]);
        assert_eq!(first.record_id, key("k1", "abc", &["bob"]).record_id);
        assert_ne!(
            first.record_id,
            key("k2", "abc", &["ada", "a@x.io"]).record_id
        );
        assert_eq!(
            first.fingerprint,
            key("k2", "abc", &["ada", "a@x.io"]).fingerprint
        );
        assert_ne!(
            first.fingerprint,
            key("k1", "abc", &["bob", "a@x.io"]).fingerprint
        );
        // Length prefixes: moving a boundary is another request.
        assert_ne!(
            first.fingerprint,
            key("k1", "abc", &["ad", "aa@x.io"]).fingerprint
        );
        assert!(first.record_id.starts_with(RECORD_PREFIX));
        assert!(crate::model::validate_user_id(&first.record_id).is_err());
    }
}
