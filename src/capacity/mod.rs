//! The fleet capacity gate: every instance of a service takes from one Redis
//! token bucket per table before it calls DynamoDB, so the whole fleet stays
//! just under the table's capacity instead of each instance finding the limit
//! by being throttled.
//!
//! Without it, N instances back off on their own: each one learns of the
//! limit only from its own throttles, so together they keep overrunning the
//! table and every instance burns attempts (and latency) on
//! `ProvisionedThroughputExceededException`. The AWS SDKs' adaptive retry
//! mode paces one client; nothing paces a fleet.
//!
//! # How a call goes through
//!
//! 1. **Reserve.** Before each attempt the gate takes the operation's
//!    estimated units ([`Operation::units`](crate::Operation::units), default
//!    1; [`estimate`] computes them from item sizes) from the bucket of its
//!    table (or index, [`Operation::index`](crate::Operation::index)) and
//!    direction, in one Lua script call. The bucket is a reservation queue
//!    (GCRA): the script answers when the caller's turn is, and the caller
//!    sleeps until then. Callers of all instances are served in turn, at
//!    the table's rate: by default no second carries more than the rate's
//!    units (plus one call), so the fleet never leans on DynamoDB's
//!    best-effort burst bank ([`burst`](CapacityGateBuilder::burst)).
//! 2. **Over capacity.** When the turn comes after the operation's deadline
//!    (or after the gate's [`max_wait`](CapacityGateBuilder::max_wait), 1 s
//!    by default), nothing is reserved and nothing is sent: the call fails at once with
//!    [`GiveUp::OverCapacity`](crate::retry::GiveUp::OverCapacity) and a
//!    `retry_after` (an HTTP service answers 503 with `Retry-After`).
//!    A burst may queue up to `max_wait`, but a standing queue is shed the
//!    way CoDel (RFC 8289) treats one: once the fleet's waits have stayed
//!    above [`queue_target`](CapacityGateBuilder::queue_target) (10 ms, or
//!    the time 4 units take on a small table) for a
//!    [`queue_interval`](CapacityGateBuilder::queue_interval) (100 ms, or
//!    ten targets),
//!    a call whose wait would be above the target is refused the same way,
//!    at once. At steady overload the admitted calls then wait at most the
//!    target instead of `max_wait`, and the table stays just as busy.
//! 3. **Correct.** The gated client asks DynamoDB for `ConsumedCapacity`
//!    (an SDK interceptor adds `ReturnConsumedCapacity = TOTAL` when the
//!    request did not ask already) and charges or gives back the difference
//!    to the estimate. A right estimate costs no second call.
//! 4. **Adapt.** When DynamoDB throttles anyway (capacity lowered, another
//!    writer on the table), the shared rate is cut by a factor (AIMD: 70% by
//!    default) and climbs back linearly, fleet-wide. The in-flight calls of
//!    the whole fleet that were admitted at the old rate cut it once, not
//!    once each: a cut needs a throttle of a call admitted since the last cut.
//!    A hot-key throttle (`KeyRangeThroughputExceeded`) cuts only a bucket of
//!    that partition key value ([`Operation::partition_key`](crate::Operation::partition_key)),
//!    which lives until its rate is back at the ceiling.
//!
//! The gate fails open: when Redis is slow or down, calls go ungated, and
//! the retry loop handles whatever DynamoDB throttles.
//!
//! ```no_run
//! use dynagate::capacity::{CapacityGate, TableCapacity};
//! use dynagate::retry::RetryPolicy;
//! use dynagate::{Operation, ResilientClient};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
//! let sdk = dynagate::sdk_client(&config);
//! let redis = redis::Client::open("redis://127.0.0.1:6379")?;
//! let gate = CapacityGate::builder(redis::aio::ConnectionManager::new(redis).await?)
//!     .table(TableCapacity::describe(&sdk, "users").await?)
//!     .build()?;
//! let dynamodb = ResilientClient::new(&config, RetryPolicy::default()).with_gate(gate);
//! dynamodb
//!     .call(Operation::write("PutItem", "users").idempotent(), |sdk| {
//!         sdk.put_item()
//!             .table_name("users")
//!             .item("user_id", aws_sdk_dynamodb::types::AttributeValue::S("ada".into()))
//!             .send()
//!     })
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Metrics
//!
//! Labelled by `table` (`table/index` for an index) and `direction`:
//! the histogram `dynagate_capacity_wait_seconds` (time spent waiting for a
//! turn), the gauge `dynagate_capacity_rate` (the fleet's current rate),
//! `dynagate_capacity_estimated_units_total` and
//! `dynagate_capacity_consumed_units_total` (estimate vs what DynamoDB
//! reported, on successful calls), `dynagate_capacity_over_total` (calls
//! refused as over capacity), `dynagate_capacity_shed_total` (of those, the
//! ones refused because the queue was standing), `dynagate_capacity_rate_cuts_total` (`scope`:
//! `table` or `key`), and `dynagate_capacity_fail_open_total` (`reason`).
//! The gate's circuit breaker reports as `dynagate_circuit_open{breaker="capacity"}`
//! and logs with `breaker="capacity"`.

mod adaptive;
mod bucket;
mod builder;
pub(crate) mod consumed;
mod error;
mod gate;
#[cfg(any(test, feature = "test-util"))]
pub(crate) mod model;
mod table;

pub use self::adaptive::{Adaptive, AdaptiveBuilder};
pub use self::builder::CapacityGateBuilder;
pub(crate) use self::consumed::ConsumedCapacityInterceptor;
pub use self::error::CapacityError;
#[cfg(feature = "test-util")]
pub(crate) use self::gate::SCRIPT_SOURCE;
pub use self::gate::{CapacityGate, GateState};
pub use self::table::{TableCapacity, Throughput, estimate};
