//! A fleet of OS processes writing through the capacity gate against the
//! fault proxy's capacity model: under capacity with the gate, throttled
//! without it.

mod common;

use std::time::Duration;

use common::TestTable;
use common::capacity::{client, gate, offer};
use dynagate::capacity::{TableCapacity, Throughput};
use dynagate_fault_proxy::{Capacity, Rule, RunningProxy};

const WORKER_ENV: &str = "DYNAGATE_CAPACITY_WORKER";

const PROCESSES: usize = 4;
const CAPACITY: u32 = 20;
const SECONDS: usize = 3;

/// One instance of the fleet: started by `a_fleet_of_processes_...` with its
/// settings in the environment, it offers its share of twice the capacity
/// and prints its successes. Run on its own it is a fleet of one, gated, that
/// must see no throttle on an idle table.
#[tokio::test]
async fn fleet_worker() {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        let table = TestTable::create("capacity-one").await;
        let (_redis, keys) = common::redis().await;
        let rule = Rule::new(table.name(), "*").with_capacity(
            Capacity::new(None, Some(CAPACITY))
                .with_burst_seconds(1)
                .with_initial_units(0, u64::from(CAPACITY)),
        );
        let proxy = common::fault_proxy(vec![rule], 4).await;
        let ok = instance(&proxy.url(), table.name(), keys.prefix(), true, 1, 0).await;
        let stats = proxy.stats().operation(table.name(), "PutItem");
        assert!(ok > 0);
        assert_eq!(stats.throttled_total(), 0, "{stats:?}");
        proxy.shutdown().await;
        keys.cleanup().await;
        table.delete().await;
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let [url, table, prefix, gated, id] = parts[..] else {
        panic!("bad {WORKER_ENV}: {spec}");
    };
    let ok = instance(
        url,
        table,
        prefix,
        gated == "gated",
        PROCESSES,
        id.parse().unwrap(),
    )
    .await;
    println!("SUCCEEDED {ok}");
}

/// Offers `2 * CAPACITY / processes` writes a second for `SECONDS` seconds.
async fn instance(
    url: &str,
    table: &str,
    prefix: &str,
    gated: bool,
    processes: usize,
    id: usize,
) -> usize {
    let mut dynamodb = client(Some(url), Duration::from_secs(4)).await;
    if gated {
        let (redis, _keys) = common::redis().await;
        let capacity = TableCapacity::provisioned(
            table,
            Throughput {
                read: f64::from(CAPACITY),
                write: f64::from(CAPACITY),
            },
        );
        // Half a second of burst: under the table's own one-second bank.
        let burst = Duration::from_millis(500);
        dynamodb = dynamodb.with_gate(gate(&redis, prefix, capacity, burst));
    }
    let per_second = 2 * CAPACITY as usize / processes;
    let every = Duration::from_secs(1) / per_second as u32;
    offer(&dynamodb, table, per_second * SECONDS, every, |i| {
        format!("p{id}-{i}")
    })
    .await
}

async fn run_fleet(
    proxy: &RunningProxy,
    table: &str,
    prefix: &str,
    gated: bool,
) -> (u64, u64, usize) {
    let mode = if gated { "gated" } else { "ungated" };
    let specs: Vec<String> = (0..PROCESSES)
        .map(|id| format!("{}|{table}|{prefix}|{mode}|{id}", proxy.url()))
        .collect();
    let succeeded =
        common::run_test_workers("fleet_worker", WORKER_ENV, &specs, "SUCCEEDED") as usize;
    let stats = proxy.stats().operation(table, "PutItem");
    (stats.requests, stats.throttled_total(), succeeded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_processes_stays_under_capacity_with_the_gate_and_not_without() {
    let gated_table = TestTable::create("capacity-fleet-gated").await;
    let ungated_table = TestTable::create("capacity-fleet-ungated").await;
    let (_redis, keys) = common::redis().await;
    let rules = [gated_table.name(), ungated_table.name()]
        .map(|t| {
            Rule::new(t, "*").with_capacity(
                Capacity::new(None, Some(CAPACITY))
                    .with_burst_seconds(1)
                    .with_initial_units(0, u64::from(CAPACITY)),
            )
        })
        .to_vec();
    let proxy = common::fault_proxy(rules, 5).await;

    let (requests, throttled, succeeded) = run_fleet(&proxy, ungated_table.name(), "", false).await;
    eprintln!(
        "without the gate: {requests} requests, {throttled} throttled, {succeeded} succeeded"
    );
    assert!(
        throttled * 4 >= requests,
        "without the gate, {PROCESSES} instances at 2x capacity are throttled often: \
         {throttled} of {requests}"
    );

    let (requests, throttled, succeeded) =
        run_fleet(&proxy, gated_table.name(), keys.prefix(), true).await;
    eprintln!("with the gate: {requests} requests, {throttled} throttled, {succeeded} succeeded");
    assert!(
        throttled * 50 <= requests,
        "with the gate the fleet stays under capacity: {throttled} of {requests} throttled"
    );
    assert!(
        succeeded >= (CAPACITY as usize) * SECONDS,
        "the gate still uses the capacity: {succeeded} writes"
    );
    proxy.shutdown().await;
    keys.cleanup().await;
    gated_table.delete().await;
    ungated_table.delete().await;
}
