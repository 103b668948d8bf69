//! The one harness for dynagate's integration tests.
//!
//! Endpoints come from the environment, with defaults that match the native
//! local stack (`stack/stack.sh start`):
//!
//! | variable             | default                                                        |
//! |----------------------|----------------------------------------------------------------|
//! | `AWS_ENDPOINT_URL`   | `http://127.0.0.1:8000` (DynamoDB Local)                        |
//! | `REDIS_URL`          | `redis://127.0.0.1:6379`                                        |
//! | `REDIS_CLUSTER_URLS` | `redis://127.0.0.1:7000,redis://127.0.0.1:7001,redis://127.0.0.1:7002` |
//!
//! Against a loopback endpoint the harness signs with static dummy credentials
//! and `AWS_REGION` (default `us-east-1`); against anything else it uses the
//! standard AWS credential chain. Every test gets its own table or key prefix,
//! so tests run in parallel against one server, and cleans up after itself.
//!
//! A server that does not answer fails the test with a message naming the
//! command that starts it: nothing is skipped.
#![allow(dead_code, unreachable_pub)] // each test binary uses a part of the harness

pub mod capacity;
pub mod capacity_script;
mod counting_proxy;
pub mod doc_repository;
mod dynamodb;
mod env;
pub mod ledger;
pub mod limiter_script;
mod proxy;
pub mod query_table;
mod recording_proxy;
mod redis;
mod tcp_relay;
pub mod through_proxy;
mod throwaway_redis;
pub mod wire;
mod workers;

// The harness's functions at `common::`; a binary that uses none of a
// module's items would warn on its glob.
#[allow(unused_imports)]
pub use self::counting_proxy::CountingProxy;
#[allow(unused_imports)]
pub use self::dynamodb::*;
#[allow(unused_imports)]
pub use self::env::*;
#[allow(unused_imports)]
pub use self::proxy::*;
#[allow(unused_imports)]
pub use self::recording_proxy::{Seen, recording_proxy};
#[allow(unused_imports)]
pub use self::redis::*;
#[allow(unused_imports)]
pub use self::throwaway_redis::*;
#[allow(unused_imports)]
pub use self::workers::*;
