//! Typed access to one table, with writes that are safe to retry.
//!
//! Every write carries a **write token** (caller-supplied, e.g. from an
//! `Idempotency-Key` header, or generated) stored in the item. The writes are
//! conditional, and DynamoDB returns the stored item with a failed condition
//! (`ReturnValuesOnConditionCheckFailure = ALL_OLD`, free of read capacity).
//! So when an attempt's answer is lost and the retry fails its condition, the
//! repository looks at the stored item: if it holds this write's token, the
//! first attempt was applied and the write is reported done (`replayed`); a
//! real conflict is reported only when someone else's write is in the way.
//! The same token with another payload is [`RepositoryError::TokenReused`],
//! never a silent overwrite.
//!
//! Every call runs through [`ResilientClient`], so it gets classification,
//! backoff, the retry budget and the deadline. Attribute names always go
//! through expression attribute names, so reserved words (`name`, `status`,
//! `size`, ...) are fine as attribute names.

mod batch;
mod codec;
mod cursor;
mod error;
mod expression;
mod index;
mod key;
mod listing;
mod page;
mod query;
mod scan;
mod transact;
mod write;

use std::marker::PhantomData;
use std::sync::Arc;

use aws_sdk_dynamodb::operation::get_item::GetItemInput;
use aws_sdk_dynamodb::types::AttributeValue;
use rand::RngExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use self::batch::{MAX_BATCH_GET, MAX_BATCH_WRITE};
pub use self::codec::{Item, MAX_ITEM_BYTES, item_size};
pub use self::cursor::{CursorError, CursorKeys};
pub use self::error::{CancellationCode, CancellationReason, DynamoFailure, RepositoryError};
pub use self::expression::{Filter, FilterAttribute, FilterValue};
pub use self::index::Index;
pub use self::key::{Key, KeySchema, KeyType, KeyValue};
pub use self::listing::MAX_PAGE_SIZE;
pub use self::page::{Page, PageEnd, ReadBudget};
pub use self::query::{KeyCondition, Query, SortCondition};
pub use self::scan::{Scan, Segment};
pub use self::transact::MAX_TRANSACTION_ITEMS;
pub use self::write::Deleted;
use crate::capacity::estimate;
use crate::client::ResilientClient;
use crate::operation::Operation;

/// The attribute holding the write token of the last write (default).
pub const DEFAULT_TOKEN_ATTRIBUTE: &str = "_dg_write_token";
/// The attribute holding the version for optimistic locking (default).
pub const DEFAULT_VERSION_ATTRIBUTE: &str = "version";

/// Identifies one logical write across all its attempts and repetitions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WriteToken(String);

impl WriteToken {
    /// A token from the caller, e.g. an `Idempotency-Key` header: 1 to 255
    /// printable ASCII characters.
    pub fn new(token: impl Into<String>) -> Result<WriteToken, crate::ConfigError> {
        let token = token.into();
        if token.is_empty() || token.len() > 255 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(crate::ConfigError::invalid(
                "write token",
                "must be 1 to 255 printable ASCII characters without spaces",
            ));
        }
        Ok(WriteToken(token))
    }

    /// A fresh random token (128 bits, hex).
    pub fn generate() -> WriteToken {
        let bits: u128 = rand::rng().random();
        WriteToken(format!("{bits:032x}"))
    }

    /// The token text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Read consistency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Eventually consistent: half the read capacity, may miss a write made
    /// within the last second.
    #[default]
    Eventual,
    /// Strongly consistent: sees every write acknowledged before the read.
    Strong,
}

/// The result of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// The item's version after the write (`None` for unversioned writes).
    pub version: Option<u64>,
    /// True when this write had already been applied by an earlier attempt or
    /// an earlier call with the same token; nothing was written this time.
    pub replayed: bool,
}

/// An item with the version it is stored at.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The item.
    pub item: T,
    /// Its version (0 when it was written without one).
    pub version: u64,
}

/// When a delete may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeleteCondition {
    /// Always; deleting a missing item is not an error.
    #[default]
    Always,
    /// Only an existing item ([`RepositoryError::NotFound`] otherwise).
    MustExist,
    /// Only the item at this version ([`RepositoryError::VersionMismatch`] otherwise).
    AtVersion(u64),
}

/// Typed access to one table.
///
/// ```no_run
/// use dynagate::repository::{Key, KeySchema, KeyType, Repository, WriteToken};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize)]
/// struct User { user_id: String, email: String }
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let client = dynagate::ResilientClient::from_env().await;
/// let users: Repository<User> =
///     Repository::new(client, "users", KeySchema::partition("user_id", KeyType::String));
/// let ada = User { user_id: "ada".into(), email: "ada@example.com".into() };
/// users.create(&ada, &WriteToken::generate()).await?;
/// let stored = users.get_versioned(&Key::new("ada"), Default::default()).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Repository<T> {
    client: ResilientClient,
    table: String,
    schema: KeySchema,
    token_attribute: String,
    version_attribute: String,
    indexes: Vec<Index>,
    cursor_keys: CursorKeys,
    /// What an item read by a listing weighed last (shared by clones).
    item_bytes: Arc<listing::LearnedSize>,
    _items: PhantomData<fn() -> T>,
}

impl<T> Clone for Repository<T> {
    fn clone(&self) -> Self {
        Repository {
            client: self.client.clone(),
            table: self.table.clone(),
            schema: self.schema.clone(),
            token_attribute: self.token_attribute.clone(),
            version_attribute: self.version_attribute.clone(),
            indexes: self.indexes.clone(),
            cursor_keys: self.cursor_keys.clone(),
            item_bytes: Arc::clone(&self.item_bytes),
            _items: PhantomData,
        }
    }
}

impl<T> Repository<T>
where
    T: Serialize + DeserializeOwned,
{
    /// A repository over `table`, whose key schema is `schema`.
    pub fn new(client: ResilientClient, table: impl Into<String>, schema: KeySchema) -> Self {
        Repository {
            client,
            table: table.into(),
            schema,
            token_attribute: DEFAULT_TOKEN_ATTRIBUTE.to_owned(),
            version_attribute: DEFAULT_VERSION_ATTRIBUTE.to_owned(),
            indexes: Vec::new(),
            cursor_keys: process_cursor_keys(),
            item_bytes: Arc::default(),
            _items: PhantomData,
        }
    }

    /// Declares a secondary index, so that [`Query::index`] and
    /// [`Scan::index`] can name it (a second index of the same name replaces
    /// the first).
    pub fn with_index(mut self, index: Index) -> Self {
        self.indexes.retain(|i| i.name() != index.name());
        self.indexes.push(index);
        self
    }

    /// Seals this repository's cursors with `keys`. Without it, cursors are
    /// sealed with a random secret of this process: they work for one
    /// instance and are refused by every other, so a fleet behind a load
    /// balancer needs shared keys.
    pub fn with_cursor_keys(mut self, keys: CursorKeys) -> Self {
        self.cursor_keys = keys;
        self
    }

    pub(crate) fn index_named(&self, name: &str) -> Option<&Index> {
        self.indexes.iter().find(|i| i.name() == name)
    }

    pub(crate) fn cursor_keys(&self) -> &CursorKeys {
        &self.cursor_keys
    }

    /// Stores the version under another attribute name.
    pub fn with_version_attribute(mut self, name: impl Into<String>) -> Self {
        self.version_attribute = name.into();
        self
    }

    /// Stores the write token under another attribute name.
    pub fn with_token_attribute(mut self, name: impl Into<String>) -> Self {
        self.token_attribute = name.into();
        self
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The key schema.
    pub fn schema(&self) -> &KeySchema {
        &self.schema
    }

    /// The client.
    pub fn client(&self) -> &ResilientClient {
        &self.client
    }

    /// Reads one item; `None` when there is none.
    pub async fn get(
        &self,
        key: &Key,
        consistency: Consistency,
    ) -> Result<Option<T>, RepositoryError<T>> {
        Ok(self.get_versioned(key, consistency).await?.map(|v| v.item))
    }

    /// Reads one item with its version; `None` when there is none.
    pub async fn get_versioned(
        &self,
        key: &Key,
        consistency: Consistency,
    ) -> Result<Option<Versioned<T>>, RepositoryError<T>> {
        let key_map = self.key_map(key)?;
        let input = GetItemInput::builder()
            .table_name(&self.table)
            .set_key(Some(key_map.clone()))
            .consistent_read(consistency == Consistency::Strong)
            .build()
            // The SDK's input builders check no field: building cannot fail.
            .expect("a GetItemInput builds");
        let output = self
            .client
            .get_item(
                Operation::read("GetItem", &self.table)
                    .units(estimate::read_units(0, consistency == Consistency::Strong))
                    .partition_key(self.partition_label(&key_map)),
                input,
            )
            .await
            .map_err(|e| RepositoryError::Dynamodb(e.into()))?;
        output
            .item
            .map(|item| self.decode_versioned(item))
            .transpose()
    }

    /// The partition key value of an item or key map, as text, for the
    /// capacity gate's hot-key buckets.
    pub(crate) fn partition_label(&self, item: &Item) -> String {
        match item.get(self.schema.partition_name()) {
            Some(AttributeValue::S(s)) => s.clone(),
            Some(AttributeValue::N(n)) => n.clone(),
            Some(AttributeValue::B(b)) => b
                .as_ref()
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect(),
            _ => String::new(),
        }
    }

    pub(crate) fn key_map(&self, key: &Key) -> Result<Item, RepositoryError<T>> {
        self.schema
            .key_map(key)
            .map_err(RepositoryError::InvalidKey)
    }

    pub(crate) fn decode(&self, item: Item) -> Result<T, RepositoryError<T>> {
        codec::decode(item, &[&self.token_attribute]).map_err(RepositoryError::Decode)
    }

    pub(crate) fn decode_versioned(&self, item: Item) -> Result<Versioned<T>, RepositoryError<T>> {
        let version = stored_version(&item, &self.version_attribute);
        Ok(Versioned {
            item: self.decode(item)?,
            version: version.unwrap_or(0),
        })
    }

    /// Encodes an item and checks it before any call: a map with a valid key,
    /// no attribute the repository keeps for itself. The size is checked on
    /// the item as it is finally sent ([`check_size`]).
    pub(crate) fn encode(&self, item: &T) -> Result<(Item, Key), RepositoryError<T>> {
        let encoded = codec::encode(item).map_err(RepositoryError::Encode)?;
        if encoded.contains_key(&self.token_attribute) {
            return Err(RepositoryError::InvalidItem(format!(
                "attribute `{}` is the repository's write token attribute",
                self.token_attribute
            )));
        }
        let key = self
            .schema
            .key_of(&encoded)
            .map_err(RepositoryError::InvalidKey)?;
        Ok((encoded, key))
    }
}

/// Refuses an item above DynamoDB's 400 KB before any call.
pub(crate) fn check_size<T>(item: &Item) -> Result<(), RepositoryError<T>> {
    let size = item_size(item);
    if size > MAX_ITEM_BYTES {
        return Err(RepositoryError::ItemTooLarge {
            size,
            limit: MAX_ITEM_BYTES,
        });
    }
    Ok(())
}

/// One random secret per process, made on first use.
fn process_cursor_keys() -> CursorKeys {
    static KEYS: std::sync::OnceLock<CursorKeys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let mut secret = [0u8; 32];
        rand::rng().fill(&mut secret);
        CursorKeys::new([secret]).expect("32 random bytes are a valid secret")
    })
    .clone()
}

fn stored_version(item: &Item, attribute: &str) -> Option<u64> {
    match item.get(attribute) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}
