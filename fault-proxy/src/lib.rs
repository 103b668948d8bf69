//! An HTTP proxy in front of DynamoDB (Local) that behaves like DynamoDB
//! under load: it throttles as provisioned capacity does, injects errors,
//! drops responses and adds latency. dynagate's tests and benchmarks drive
//! their traffic through it, because DynamoDB Local never throttles.
//!
//! Every request is forwarded unchanged (method, path, headers including
//! `Authorization` and `X-Amz-Target`, body) to the upstream, unless a rule
//! says otherwise. The operation comes from `X-Amz-Target`, the tables from
//! the JSON body (`TableName`, the `RequestItems` keys of batches, each
//! `TransactItems` entry's table).
//!
//! # Faults
//!
//! - **Capacity** (provisioned mode): read and write units per second, with
//!   unused capacity banked up to `burst_seconds` (default 300) and an initial
//!   bank (default empty). Writes cost 1 WCU per started KB of the item in
//!   the request (UpdateItem: key plus new values; DeleteItem: the key),
//!   double in a transaction, and are refused up front when the bank cannot
//!   pay. Reads cost 1 RCU per started 4 KB read (GetItem: the item;
//!   Query/Scan: all items read, summed, see below; BatchGetItem: each
//!   item), half when eventually consistent, double in a transaction; they are charged after
//!   the response, may put the bank into debt, and are refused while it is in
//!   debt. `BatchWriteItem` forwards the requests that fit and returns the
//!   rest as `UnprocessedItems`; `BatchGetItem` holds back the tables in debt
//!   as `UnprocessedKeys`; a batch of which nothing fits is throttled.
//! - **Query and Scan pages** on a table whose reads are limited cost every
//!   item read, also those a filter discards (a projection does not lower
//!   the price), and read at most 1 MB before the filter. A page that
//!   filters, projects or counts is first sent unfiltered to learn what it
//!   reads, then bounded to it with `Limit`; its `ConsumedCapacity`, when
//!   asked for, is the proxy's price. Index reads are charged to the table.
//! - **Hot keys**: units per second per partition key value (named by the
//!   rule) for writes and `GetItem`, refused with
//!   `TableWriteKeyRangeThroughputExceeded` / `TableReadKeyRangeThroughputExceeded`.
//! - **Injected errors** by probability, answered without forwarding (see
//!   [`ErrorKind`]).
//! - **Dropped responses** for writes: the write is forwarded and applied,
//!   then the client connection is closed without a byte of response.
//! - **Latency**: fixed plus uniform jitter, before forwarding.
//!
//! A throttled request is answered as DynamoDB answers it: HTTP 400,
//! `Content-Type: application/x-amz-json-1.0`, an `x-amzn-RequestId`, and
//! `{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
//! "message":"...","ThrottlingReasons":[{"reason":"TableWriteProvisionedThroughputExceeded",
//! "resource":"arn:aws:dynamodb:<region>:000000000000:table/<name>"}]}`, the region
//! taken from the request's SigV4 credential scope.
//!
//! All randomness comes from one RNG seeded from the configuration, so a run
//! with the same seed and the same sequence of requests makes the same
//! decisions.
//!
//! # Configuration
//!
//! A JSON object; every field is optional:
//!
//! ```json
//! {
//!   "listen": "127.0.0.1:8001",
//!   "upstream": "http://127.0.0.1:8000",
//!   "seed": 42,
//!   "rules": [
//!     {
//!       "table": "users",
//!       "capacity": {
//!         "read_units_per_second": 10, "write_units_per_second": 5,
//!         "burst_seconds": 300, "initial_read_units": 0, "initial_write_units": 0
//!       },
//!       "hot_key": {"partition_key": "pk", "read_units_per_second": 3000, "write_units_per_second": 1000}
//!     },
//!     {
//!       "table": "users", "operation": "PutItem",
//!       "errors": {"internal_server_error": 0.01},
//!       "drop_response": 0.02
//!     },
//!     {
//!       "errors": {"throttling": 0.001, "service_unavailable": 0.001},
//!       "latency": {"fixed_ms": 2, "jitter_ms": 8}
//!     }
//!   ]
//! }
//! ```
//!
//! A rule's `table` and `operation` default to `*`. For each setting the most
//! specific matching rule wins (`table:operation`, then `table:*`, then
//! `*:operation`, then `*:*`); error probabilities combine per kind.
//! `capacity` and `hot_key` belong to tables, so only rules whose operation is
//! `*` may set them; a `*` table gives every table a bank of its own. Error
//! kinds are listed by [`ErrorKind`]; each is drawn independently, in that
//! order, and the first hit is answered. `throttling_reasons`,
//! `cancellation_reasons` and `clock_skew_seconds` shape the injected errors;
//! `error_limit` caps how many a rule injects, `errors_after` lets a rule's
//! first requests pass. Every answer carries a `Date`. Unknown
//! fields, unknown kinds or operations, probabilities outside `0..=1` and zero
//! rates are refused with an error naming the rule.
//!
//! # Control
//!
//! On the proxy's own port: `GET /_fault/stats` (the [`Stats`] as JSON),
//! `GET /_fault/rules`, `PUT /_fault/rules` (a JSON array of rules, replacing
//! the rules in force) and `POST /_fault/reset` (zero the counters). In
//! process, [`RunningProxy`] offers the same.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

mod admission;
mod batch;
mod bucket;
mod capacity;
pub mod cli;
mod config;
mod consumed;
mod control;
mod dates;
mod error;
mod forward;
mod inject;
mod item_size;
mod operation;
mod page;
mod proxy;
mod reasons;
mod rules;
mod server;
mod stats;
mod units;

pub use config::{DEFAULT_LISTEN, DEFAULT_UPSTREAM, ProxyConfig, Upstream};
pub use error::{ConfigError, Error};
pub use inject::ErrorKind;
pub use item_size::{item_size, value_size};
pub use reasons::{CancellationCode, InjectedReason, ThrottleReason};
pub use rules::{
    Capacity, Effective, ErrorLimit, ErrorShape, ErrorsAfter, HotKey, Latency, Rule, RuleSet,
};
pub use server::{FaultProxy, RunningProxy};
pub use stats::{OperationStats, Stats};
