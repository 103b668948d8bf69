//! dynagate keeps DynamoDB-backed services alive under throttling and abuse.
//!
//! Services that put an HTTP API in front of DynamoDB get hammered: credential
//! stuffing, scraping, floods that burn read and write capacity until DynamoDB
//! answers `ProvisionedThroughputExceededException`, and clients whose retries
//! multiply across layers until a brief throttle becomes an outage. dynagate is
//! the layer between such a service and DynamoDB that owns those problems:
//! exactly one retry loop, conditional and idempotent writes, and Redis token
//! buckets that gate callers and keep a fleet under a table's capacity.
//!
//! # What is here today
//!
//! - [`ResilientClient`]: an `aws_sdk_dynamodb::Client` with the SDK's own
//!   retries off, whose every call runs through one [`retry::RetryPolicy`]:
//!   - [`retry::classify()`] turns every outcome into an [`retry::ErrorKind`]
//!     (throttling with DynamoDB's `ThrottlingReasons`, transient, ambiguous,
//!     conflict, permanent);
//!   - [`retry::Backoff`] draws full, equal or decorrelated jitter from a base
//!     per kind;
//!   - [`retry::RetryBudget`] stops retry storms during outages;
//!   - every [`Operation`] has a deadline that no sleep runs past, and a write
//!     that may have been applied is never repeated unless it is idempotent.
//! - [`sdk_client`] builds the bare SDK client with retries off.
//! - [`repository::Repository`]: typed access to one table with conditional,
//!   idempotent writes (a write token per write; a retry never reports a false
//!   conflict), optimistic locking, batches that never lose an unprocessed
//!   item, and transactions with one request token across retries; Query and
//!   Scan (declared indexes, parallel segments) by page or stream, inside a
//!   read budget, with cursors sealed to the query, the caller and an expiry.
//! - [`usage`]: the capacity units a request's DynamoDB calls consumed, which
//!   the HTTP layer charges to its caller.
//! - [`limiter`]: Redis token buckets (GCRA, one key per bucket, one Lua
//!   script, Redis Cluster safe) with a failure policy, and the same model in
//!   memory.
//! - [`capacity`]: the fleet capacity gate, a Redis bucket per table that
//!   keeps every instance together under the table's capacity, corrected by
//!   the `ConsumedCapacity` DynamoDB reports and adapting (AIMD) when
//!   DynamoDB throttles anyway.
//! - `http` (feature `axum`): a tower layer that gates callers per API key and
//!   per client IP, in requests and in the capacity units they consumed, and
//!   answers 429 with `Retry-After` and `RateLimit` headers.
//!
//! # Quick start
//!
//! ```no_run
//! use aws_sdk_dynamodb::types::AttributeValue;
//! use dynagate::{Operation, ResilientClient};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // The standard AWS configuration chain; AWS_ENDPOINT_URL points it at
//! // DynamoDB Local or LocalStack (`stack/stack.sh env` prints the values).
//! let dynamodb = ResilientClient::from_env().await;
//!
//! // A full-item put stores the same item however often it is repeated.
//! dynamodb
//!     .call(Operation::write("PutItem", "users").idempotent(), |sdk| {
//!         sdk.put_item()
//!             .table_name("users")
//!             .item("user_id", AttributeValue::S("ada".into()))
//!             .item("name", AttributeValue::S("Ada Lovelace".into()))
//!             .send()
//!     })
//!     .await?;
//!
//! let stored = dynamodb
//!     .call(Operation::read("GetItem", "users"), |sdk| {
//!         sdk.get_item()
//!             .table_name("users")
//!             .key("user_id", AttributeValue::S("ada".into()))
//!             .send()
//!     })
//!     .await?;
//! assert!(stored.item().is_some());
//! # Ok(())
//! # }
//! ```
//!
//! A call that fails for good returns a [`retry::RetryError`]: why the policy
//! gave up ([`retry::GiveUp`]), after how many attempts, whether a write may have been
//! applied anyway, a suggested retry-after, and the last SDK error.
//!
//! # Where things are
//!
//! Every public type has one path. The crate root holds what every user
//! touches ([`ResilientClient`], [`Operation`], [`Direction`],
//! [`ConfigError`]) and what several layers share ([`RedisConnection`],
//! [`ScriptError`], [`BreakerSettings`]); each layer is a module with its own
//! types and error: [`retry`], [`limiter`], [`capacity`], [`repository`] and
//! `http`.
//!
//! # Feature flags
//!
//! - `axum` (off by default): the `http` module, a tower layer for inbound
//!   rate limits usable on any axum router (the users API example in
//!   `examples/users-api` is built on it).
//! - `test-util` (off by default): `test_util`, the Lua scripts' sources and
//!   the pure models they are checked against, for property tests against a
//!   real Redis. Not part of the stable API.
//!
//! The AWS crates are built without their default features, so only one HTTP
//! and TLS stack (hyper 1, rustls 0.23) is compiled.

#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

mod breaker;
pub mod capacity;
mod client;
mod direct_get;
mod error;
#[cfg(feature = "axum")]
pub mod http;
pub mod limiter;
mod operation;
mod redis_support;
pub mod repository;
pub mod retry;
#[cfg(feature = "test-util")]
pub mod test_util;
pub mod usage;

pub use crate::breaker::{BreakerSettings, CircuitState};
pub use crate::client::{ResilientClient, sdk_client};
pub use crate::error::ConfigError;
pub use crate::operation::{Direction, Operation};
pub use crate::redis_support::{RedisConnection, ScriptError};
