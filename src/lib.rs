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
//! - [`client::sdk_client`] builds the `aws_sdk_dynamodb::Client` that dynagate
//!   calls through: the SDK's own retries are off (so retries never multiply
//!   with dynagate's loop), and its connect and per-attempt timeouts are kept.
//!
//! The retry engine, the repository layer, the Redis rate limiter and the axum
//! layer follow; the design map lives in the repository's `shared/design.md`.
//!
//! # Quick start
//!
//! ```no_run
//! use aws_sdk_dynamodb::types::AttributeValue;
//!
//! # async fn demo() -> Result<(), aws_sdk_dynamodb::Error> {
//! // The standard AWS configuration chain; AWS_ENDPOINT_URL points it at
//! // DynamoDB Local or LocalStack (`localstack/stack.sh env` prints the values).
//! let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
//! let dynamodb = dynagate::client::sdk_client(&config);
//!
//! dynamodb
//!     .put_item()
//!     .table_name("users")
//!     .item("user_id", AttributeValue::S("ada".into()))
//!     .item("name", AttributeValue::S("Ada Lovelace".into()))
//!     .send()
//!     .await?;
//! let stored = dynamodb
//!     .get_item()
//!     .table_name("users")
//!     .key("user_id", AttributeValue::S("ada".into()))
//!     .send()
//!     .await?;
//! assert!(stored.item().is_some());
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! None yet. The AWS crates are built without their default features, so only
//! one HTTP and TLS stack (hyper 1, rustls 0.23) is compiled.

#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

pub mod client;
pub mod error;
pub mod retry;

pub use crate::client::ResilientClient;
pub use crate::error::{ConfigError, GiveUp, RetryError};
pub use crate::retry::{Operation, RetryPolicy};
