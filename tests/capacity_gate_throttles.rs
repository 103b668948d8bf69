//! The fleet capacity gate meeting DynamoDB's throttles, through the fault
//! proxy's capacity model: a burst paced into a table with no bank, rate
//! cuts on throttles, and a hot key cut on its own.

mod common;

use std::time::Duration;

use common::TestTable;
use common::capacity::{client, gate, offer, put};
use dynagate::Direction;
use dynagate::capacity::{CapacityGate, TableCapacity, Throughput};
use dynagate_fault_proxy::{Capacity, HotKey, Rule};

/// The gate is told the table has `units` a second each way.
fn provisioned(table: &TestTable, units: f64) -> TableCapacity {
    TableCapacity::provisioned(
        table.name(),
        Throughput {
            read: units,
            write: units,
        },
    )
}

/// A new table's burst bank is empty. The default gate paces a burst of
/// calls at the rate instead of letting part of it through at once, so the
/// table never throttles it and the fleet's rate is never cut (with a
/// half-second burst, five of these calls went at once into a bank of two).
#[tokio::test]
async fn the_default_gate_paces_a_burst_into_a_table_with_no_bank() {
    let table = TestTable::create("capacity-paced").await;
    let (redis, keys) = common::redis().await;
    // 10 WCU/s and two units banked: one call of slack for the clocks.
    let rule = Rule::new(table.name(), "*").with_capacity(
        Capacity::new(None, Some(10))
            .with_burst_seconds(1)
            .with_initial_units(0, 2),
    );
    let proxy = common::fault_proxy(vec![rule], 4).await;
    let capacity = provisioned(&table, 10.0);
    let paced = CapacityGate::builder(redis.clone())
        .prefix(keys.prefix().trim_end_matches(':'))
        .table(capacity)
        .redis_deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let gated = client(Some(&proxy.url()), Duration::from_secs(3))
        .await
        .with_gate(paced.clone());

    let started = tokio::time::Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..10 {
        let (gated, table) = (gated.clone(), table.name().to_owned());
        calls.spawn(async move { put(&gated, &table, &format!("k{i}"), 10, 1.0).await });
    }
    while let Some(result) = calls.join_next().await {
        result.unwrap().unwrap();
    }
    // Ten units at 10/s: the last goes 0.9 s after the first.
    assert!(
        started.elapsed() >= Duration::from_millis(850),
        "paced, not let through: {:?}",
        started.elapsed()
    );
    let stats = proxy.stats().operation(table.name(), "PutItem");
    assert_eq!(stats.throttled_total(), 0, "{stats:?}");
    let state = paced
        .state(table.name(), Direction::Write)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((state.cuts, state.rate), (0, 10.0), "{state:?}");
    proxy.shutdown().await;
    keys.cleanup().await;
    table.delete().await;
}

#[tokio::test]
async fn throttles_cut_the_table_rate_and_a_hot_key_only_its_own() {
    let table = TestTable::create("capacity-adapt").await;
    let (redis, keys) = common::redis().await;
    // The table really has 10 WCU/s; the gate was told 40.
    let rule = Rule::new(table.name(), "*").with_capacity(
        Capacity::new(None, Some(10))
            .with_burst_seconds(1)
            .with_initial_units(0, 10),
    );
    let proxy = common::fault_proxy(vec![rule], 2).await;
    let told = provisioned(&table, 40.0);
    let fleet = gate(&redis, &keys.key("table"), told, Duration::from_millis(250));
    let gated = client(Some(&proxy.url()), Duration::from_secs(5))
        .await
        .with_gate(fleet.clone());
    offer(&gated, table.name(), 80, Duration::from_millis(25), |i| {
        format!("k{i}")
    })
    .await;
    let state = fleet
        .state(table.name(), Direction::Write)
        .await
        .unwrap()
        .unwrap();
    assert!(state.cuts >= 1, "throttles cut the rate: {state:?}");
    assert!(state.rate < 40.0, "the fleet rate came down: {state:?}");
    proxy.shutdown().await;

    // Plenty of table capacity, but the key "hot" takes 2 WCU/s.
    let rule = Rule::new(table.name(), "*")
        .with_capacity(Capacity::new(None, Some(1000)).with_initial_units(0, 1000))
        .with_hot_key(HotKey::new("pk").with_units(3000, 2));
    let proxy = common::fault_proxy(vec![rule], 3).await;
    let told = provisioned(&table, 100.0);
    let fleet = gate(&redis, &keys.key("hot"), told, Duration::from_secs(1));
    let gated = client(Some(&proxy.url()), Duration::from_secs(5))
        .await
        .with_gate(fleet.clone());
    offer(&gated, table.name(), 60, Duration::from_millis(20), |i| {
        if i % 2 == 0 {
            "hot".into()
        } else {
            format!("cold{i}")
        }
    })
    .await;
    let stats = proxy.stats().operation(table.name(), "PutItem");
    assert!(
        stats.throttled_total() > 0,
        "the hot key was throttled: {stats:?}"
    );
    let state = fleet
        .state(table.name(), Direction::Write)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.cuts, 0, "the table's rate is untouched: {state:?}");
    assert_eq!(state.rate, 100.0);
    let table_bucket = fleet.bucket_key(table.name(), Direction::Write).unwrap();
    let hot_bucket = format!("{table_bucket}:key:hot");
    let mut connection = redis.clone();
    let hot_rate: Option<f64> = redis::cmd("HGET")
        .arg(&hot_bucket)
        .arg("rate")
        .query_async(&mut connection)
        .await
        .unwrap();
    let hot_rate = hot_rate.expect("the hot key has a bucket of its own");
    assert!(hot_rate < 100.0, "the hot key's rate was cut: {hot_rate}");
    proxy.shutdown().await;
    keys.cleanup().await;
    table.delete().await;
}
