//! The repository layer's errors.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use crate::repository::cursor::CursorError;
use crate::repository::key::Key;
use crate::retry::{GiveUp, RetryError};

/// What went wrong with a repository operation.
///
/// `T` is the repository's item type: a conflict carries the item that is
/// stored, a partial batch read carries what was read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepositoryError<T> {
    /// `create` found an item with the same key, written by someone else.
    #[error("an item with this key already exists")]
    Conflict {
        /// The stored item (DynamoDB returns it with the failed condition).
        existing: Option<Box<T>>,
    },
    /// `update_versioned` or a versioned `delete` found another version.
    #[error("version mismatch: expected version {expected}, the stored item has {}", .current.map_or("none".to_owned(), |v| v.to_string()))]
    VersionMismatch {
        /// The version the caller expected.
        expected: u64,
        /// The stored version, `None` when there is no item.
        current: Option<u64>,
    },
    /// The operation needs an existing item and there is none.
    #[error("no item with this key")]
    NotFound,
    /// The write token was already used for a different item: repeating a
    /// write must repeat the same write, never overwrite with another payload.
    #[error("write token `{token}` was already used for a different item")]
    TokenReused {
        /// The reused token.
        token: String,
    },
    /// The key does not fit the table's key schema.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The item cannot be written as it is.
    #[error("invalid item: {0}")]
    InvalidItem(String),
    /// The item is above DynamoDB's 400 KB limit.
    #[error("the item is {size} bytes; DynamoDB's limit is {limit} bytes")]
    ItemTooLarge {
        /// The item's size as DynamoDB counts it.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The value could not be turned into an item.
    #[error("cannot encode the item: {0}")]
    Encode(#[source] serde_dynamo::Error),
    /// A stored item does not decode into the repository's type.
    #[error("cannot decode the stored item: {0}")]
    Decode(#[source] serde_dynamo::Error),
    /// A batch ended with items DynamoDB did not process. Every key of the
    /// batch is in exactly one place: confirmed done (in neither list),
    /// `unprocessed` (certainly not written, deleted or read), or `uncertain`
    /// (sent in a write whose answer never came: it may have been applied).
    #[error("{} batch item(s) were not processed, {} may or may not have been{}", .unprocessed.len(), .uncertain.len(), .cause.as_ref().map_or(String::new(), |c| format!(": {c}")))]
    BatchIncomplete {
        /// The keys certainly not processed.
        unprocessed: Vec<Key>,
        /// The keys of a write cut off without an answer (a timeout or lost
        /// connection on the last call): they may have been applied.
        uncertain: Vec<Key>,
        /// For reads, the items that were read.
        read: Vec<T>,
        /// Why the repository stopped retrying, if a call failed for good
        /// (otherwise the deadline ran out while items stayed unprocessed).
        cause: Option<Box<DynamoFailure>>,
    },
    /// A transaction was cancelled; one reason per item, in request order.
    #[error("the transaction was cancelled: {}", .reasons.iter().map(|r| r.code.as_str()).collect::<Vec<_>>().join(", "))]
    TransactionCanceled {
        /// Why each item failed (`None` for the items that did not).
        reasons: Vec<CancellationReason>,
    },
    /// The query cannot be run as built (an undeclared index, a key
    /// condition that does not fit the key schema, strong consistency on a
    /// global index, a page size out of range). Nothing was called.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// The cursor cannot be used; nothing was called. Its text says why and
    /// what to do.
    #[error(transparent)]
    Cursor(#[from] CursorError),
    /// A stream's read budget ran out before the end; `cursor` goes on from
    /// where it stopped.
    #[error("the read budget ran out before the listing ended; continue with the cursor")]
    BudgetExhausted {
        /// Where to go on from.
        cursor: String,
    },
    /// The call to DynamoDB failed for good (after the retry policy).
    #[error(transparent)]
    Dynamodb(#[from] DynamoFailure),
}

impl<T> RepositoryError<T> {
    /// True when waiting can help: DynamoDB throttled, the retry budget or the
    /// deadline ran out. An HTTP service answers these with 503.
    pub fn is_unavailable(&self) -> bool {
        match self {
            RepositoryError::Dynamodb(f) => f.retry_after().is_some(),
            RepositoryError::BatchIncomplete { .. } => true,
            _ => false,
        }
    }

    /// How long to wait before trying again, when waiting can help.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RepositoryError::Dynamodb(f) => f.retry_after(),
            RepositoryError::BatchIncomplete { cause, .. } => Some(
                cause
                    .as_ref()
                    .and_then(|c| c.retry_after())
                    .unwrap_or(Duration::from_secs(1)),
            ),
            _ => None,
        }
    }
}

/// Why one item of a cancelled transaction failed.
#[derive(Debug, Clone, PartialEq)]
pub struct CancellationReason {
    /// DynamoDB's cancellation code for this item.
    pub code: CancellationCode,
    /// DynamoDB's message, if any.
    pub message: Option<String>,
    /// The stored item, when the request asked for it on a failed condition.
    pub item: Option<crate::repository::codec::Item>,
}

impl CancellationReason {
    /// True for the items that did not cause the cancellation.
    pub fn is_none(&self) -> bool {
        self.code == CancellationCode::None
    }
}

/// DynamoDB's cancellation codes for the items of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancellationCode {
    /// This item did not cause the cancellation.
    None,
    /// Its condition expression did not hold.
    ConditionalCheckFailed,
    /// Another transaction was working on the item.
    TransactionConflict,
    /// The table or index was throttled.
    ThrottlingError,
    /// The table or index was over its provisioned throughput.
    ProvisionedThroughputExceeded,
    /// The request for this item was invalid.
    ValidationError,
    /// An item collection grew beyond 10 GB.
    ItemCollectionSizeLimitExceeded,
    /// A code this version does not know.
    Other(String),
}

impl CancellationCode {
    /// Parses DynamoDB's code (a missing code means `None`).
    pub fn parse(code: Option<&str>) -> CancellationCode {
        match code.unwrap_or("None") {
            "None" => CancellationCode::None,
            "ConditionalCheckFailed" => CancellationCode::ConditionalCheckFailed,
            "TransactionConflict" => CancellationCode::TransactionConflict,
            "ThrottlingError" => CancellationCode::ThrottlingError,
            "ProvisionedThroughputExceeded" => CancellationCode::ProvisionedThroughputExceeded,
            "ValidationError" => CancellationCode::ValidationError,
            "ItemCollectionSizeLimitExceeded" => CancellationCode::ItemCollectionSizeLimitExceeded,
            other => CancellationCode::Other(other.to_owned()),
        }
    }

    /// The code as DynamoDB spells it.
    pub fn as_str(&self) -> &str {
        match self {
            CancellationCode::None => "None",
            CancellationCode::ConditionalCheckFailed => "ConditionalCheckFailed",
            CancellationCode::TransactionConflict => "TransactionConflict",
            CancellationCode::ThrottlingError => "ThrottlingError",
            CancellationCode::ProvisionedThroughputExceeded => "ProvisionedThroughputExceeded",
            CancellationCode::ValidationError => "ValidationError",
            CancellationCode::ItemCollectionSizeLimitExceeded => "ItemCollectionSizeLimitExceeded",
            CancellationCode::Other(code) => code,
        }
    }
}

/// A DynamoDB call that failed for good, whatever the operation: the retry
/// policy's verdict with the last error as the source.
#[derive(Debug)]
pub struct DynamoFailure {
    operation: &'static str,
    reason: GiveUp,
    attempts: u32,
    retry_after: Option<Duration>,
    throttling: bool,
    may_have_applied: bool,
    message: String,
    source: Box<dyn StdError + Send + Sync>,
}

impl DynamoFailure {
    /// The DynamoDB operation.
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// Why the retry policy gave up.
    pub fn reason(&self) -> GiveUp {
        self.reason
    }

    /// Attempts made.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// How long to wait before trying again, when waiting can help.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// True when DynamoDB was throttling.
    pub fn is_throttling(&self) -> bool {
        self.throttling
    }

    /// True when a write may have been applied although the call failed.
    pub fn may_have_applied(&self) -> bool {
        self.may_have_applied
    }
}

impl fmt::Display for DynamoFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for DynamoFailure {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.source.as_ref())
    }
}

impl<E> From<RetryError<E>> for DynamoFailure
where
    E: StdError + Send + Sync + 'static,
{
    fn from(error: RetryError<E>) -> Self {
        DynamoFailure {
            operation: error.operation(),
            reason: error.reason(),
            attempts: error.attempts(),
            retry_after: error.retry_after(),
            throttling: error.is_throttling(),
            may_have_applied: error.may_have_applied(),
            message: error.to_string(),
            source: Box::new(error),
        }
    }
}
