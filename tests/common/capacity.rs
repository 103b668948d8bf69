//! A `ResilientClient` through the fleet capacity gate, shared by the
//! capacity-gate test binaries (`capacity_gate_client`, `capacity_gate_fleet`).

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use dynagate::capacity::{CapacityGate, TableCapacity};
use dynagate::retry::RetryPolicy;
use dynagate::{Operation, ResilientClient};
use redis::aio::ConnectionManager;

/// A gate for `capacity`, its keys under `prefix`, with `burst` of bucket.
pub fn gate(
    redis: &ConnectionManager,
    prefix: &str,
    capacity: TableCapacity,
    burst: Duration,
) -> CapacityGate {
    CapacityGate::builder(redis.clone())
        .prefix(prefix.trim_end_matches(':'))
        .table(capacity)
        .burst(burst)
        .redis_deadline(Duration::from_secs(2))
        .build()
        .expect("valid gate")
}

/// A client of the tests' DynamoDB, or through `endpoint` (a fault proxy).
pub async fn client(endpoint: Option<&str>, deadline: Duration) -> ResilientClient {
    let config = match endpoint {
        Some(url) => super::sdk_config_via(url).await,
        None => super::sdk_config().await,
    };
    let policy = RetryPolicy::builder()
        .deadline(deadline)
        .seed(7)
        .build()
        .unwrap();
    ResilientClient::new(&config, policy)
}

/// Writes item `key` with a `bytes`-long payload, estimated at `units`.
pub async fn put(
    client: &ResilientClient,
    table: &str,
    key: &str,
    bytes: usize,
    units: f64,
) -> Result<(), dynagate::retry::RetryError<aws_sdk_dynamodb::operation::put_item::PutItemError>> {
    client
        .call(
            Operation::write("PutItem", table)
                .idempotent()
                .units(units)
                .partition_key(key),
            |sdk| {
                sdk.put_item()
                    .table_name(table)
                    .item("pk", AttributeValue::S(key.to_owned()))
                    .item("payload", AttributeValue::S("x".repeat(bytes)))
                    .send()
            },
        )
        .await
        .map(|_| ())
}

/// Offers `count` 1-unit writes, one every `every`, whatever happened to the
/// earlier ones; waits for all of them and returns how many succeeded.
pub async fn offer(
    client: &ResilientClient,
    table: &str,
    count: usize,
    every: Duration,
    key: impl Fn(usize) -> String,
) -> usize {
    let mut calls = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(every);
    for i in 0..count {
        tick.tick().await;
        let (client, table, key) = (client.clone(), table.to_owned(), key(i));
        calls.spawn(async move { put(&client, &table, &key, 100, 1.0).await.is_ok() });
    }
    let mut succeeded = 0;
    while let Some(ok) = calls.join_next().await {
        succeeded += usize::from(ok.unwrap());
    }
    succeeded
}
