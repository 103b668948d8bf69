//! The fleet capacity gate against a real Redis, DynamoDB Local and the fault
//! proxy's capacity model: its script (pacing, refusals, AIMD epochs), the
//! correction by `ConsumedCapacity`, over-capacity refusals that send
//! nothing, rate cuts on throttles, hot keys, and a fleet of OS processes.

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use common::TestTable;
use dynagate::capacity::{CapacityGate, Direction, TableCapacity};
use dynagate::{GiveUp, Operation, ResilientClient, RetryPolicy};
use dynagate_fault_proxy::{Capacity, HotKey, Rule, RunningProxy};
use redis::aio::ConnectionManager;

const WORKER_ENV: &str = "DYNAGATE_CAPACITY_WORKER";

fn gate(
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

async fn client(endpoint: Option<&str>, deadline: Duration) -> ResilientClient {
    let config = match endpoint {
        Some(url) => common::sdk_config_via(url).await,
        None => common::sdk_config().await,
    };
    let policy = RetryPolicy::builder()
        .deadline(deadline)
        .seed(7)
        .build()
        .unwrap();
    ResilientClient::new(&config, policy)
}

async fn put(
    client: &ResilientClient,
    table: &str,
    key: &str,
    bytes: usize,
    units: f64,
) -> Result<(), dynagate::RetryError<aws_sdk_dynamodb::operation::put_item::PutItemError>> {
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

/// Runs the gate's script directly: `(command, max_rate)` plus its own args.
async fn script(redis: &mut ConnectionManager, keys: &[&str], args: &[&str]) -> Vec<i64> {
    let mut call = redis::cmd("EVAL");
    call.arg(dynagate::capacity::SCRIPT)
        .arg(keys.len())
        .arg(keys);
    call.arg(args);
    call.query_async(redis).await.expect("script answers")
}

/// max 10/s, floor 1/s, +1/s per second, 1 s burst, key bounds 10 and 1.
const COMMON: [&str; 6] = ["10", "1", "1", "1000000", "10", "1"];

fn args<'a>(command: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec![command];
    all.extend_from_slice(&COMMON);
    all.extend_from_slice(rest);
    all
}

#[tokio::test]
async fn script_paces_refuses_without_writing_and_cuts_once_per_epoch() {
    let (mut redis, keys) = common::redis().await;
    let bucket = keys.key("{t:write}");
    let bucket = bucket.as_str();

    // A 1 s burst at 10/s: ten 1-unit reservations go at once, the 11th waits
    // about 100 ms, and one that would wait over max_wait is refused.
    for i in 0..10 {
        let r = script(&mut redis, &[bucket], &args("reserve", &["1", "0"])).await;
        assert_eq!(r[0], 1, "reservation {i} admitted at once: {r:?}");
        assert_eq!(r[1], 0, "no wait within the burst: {r:?}");
    }
    let r = script(&mut redis, &[bucket], &args("reserve", &["1", "5000000"])).await;
    assert_eq!(r[0], 1);
    assert!(
        r[1] > 0 && r[1] <= 100_000,
        "the 11th waits up to 100 ms: {r:?}"
    );
    let before = script(&mut redis, &[bucket], &args("state", &[])).await;
    let refused = script(&mut redis, &[bucket], &args("reserve", &["5", "1000"])).await;
    assert_eq!(refused[0], 0, "5 more units cannot fit 1 ms: {refused:?}");
    assert!(
        refused[1] > 400_000,
        "it says how long it would wait: {refused:?}"
    );
    let after = script(&mut redis, &[bucket], &args("state", &[])).await;
    assert!(
        after[2] <= before[2],
        "a refusal reserves nothing: backlog {} -> {}",
        before[2],
        after[2]
    );

    // An idle bucket lets one call through at once, even one larger than
    // the burst.
    let idle = keys.key("{idle:write}");
    let big = script(&mut redis, &[idle.as_str()], &args("reserve", &["50", "0"])).await;
    assert_eq!(&big[..2], &[1, 0], "{big:?}");

    // Three throttles of calls admitted in epoch 0 cut the rate once.
    let cut = script(
        &mut redis,
        &[bucket],
        &args("throttle", &["0", "0.5", "table"]),
    )
    .await;
    assert_eq!(cut, vec![1, 5000]);
    for _ in 0..2 {
        let again = script(
            &mut redis,
            &[bucket],
            &args("throttle", &["0", "0.5", "table"]),
        )
        .await;
        assert_eq!(again[0], 0, "same epoch, no second cut: {again:?}");
    }
    let state = script(&mut redis, &[bucket], &args("state", &[])).await;
    assert_eq!(state[1], 1, "one cut");
    assert!(
        (5000..6000).contains(&state[0]),
        "rate 5/s, climbing: {state:?}"
    );
    // A call admitted after the cut, throttled, cuts again; never below the floor.
    for epoch in 1..10 {
        let e = epoch.to_string();
        script(
            &mut redis,
            &[bucket],
            &args("throttle", &[&e, "0.5", "table"]),
        )
        .await;
    }
    let state = script(&mut redis, &[bucket], &args("state", &[])).await;
    assert!(
        (1000..1500).contains(&state[0]),
        "floored at 1/s: {state:?}"
    );
    // It climbs back by 1/s per second.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let climbed = script(&mut redis, &[bucket], &args("state", &[])).await;
    assert!(climbed[0] > state[0], "{climbed:?} after {state:?}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(bucket)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(ttl > 0, "the bucket expires once full and recovered: {ttl}");
    keys.cleanup().await;
}

#[tokio::test]
async fn consumed_capacity_corrects_the_estimate_both_ways() {
    let table = TestTable::create("capacity-consumed").await;
    let (redis, keys) = common::redis().await;
    let dynamodb = client(None, Duration::from_secs(5)).await;

    // 1 WCU/s, 1 s burst. A 3 KB item estimated at 1 unit consumes 3:
    // the bucket is charged the 2 more, about 3 s of backlog.
    let under = gate(
        &redis,
        &keys.key("under"),
        TableCapacity::provisioned(table.name(), 1.0, 1.0),
        Duration::from_secs(1),
    );
    let gated = dynamodb.clone().with_gate(under.clone());
    put(&gated, table.name(), "big", 3000, 1.0).await.unwrap();
    let state = under
        .state(table.name(), Direction::Write)
        .await
        .unwrap()
        .unwrap();
    assert!(
        state.backlog > Duration::from_millis(2200),
        "3 units at 1/s: {state:?}"
    );

    // A small item estimated at 5 units consumes 1: 4 are given back.
    let over = gate(
        &redis,
        &keys.key("over"),
        TableCapacity::provisioned(table.name(), 1.0, 1.0),
        Duration::from_secs(5),
    );
    let gated = dynamodb.with_gate(over.clone());
    put(&gated, table.name(), "small", 10, 5.0).await.unwrap();
    let state = over
        .state(table.name(), Direction::Write)
        .await
        .unwrap()
        .unwrap();
    assert!(
        state.backlog <= Duration::from_secs(1),
        "1 unit at 1/s: {state:?}"
    );
    keys.cleanup().await;
    table.delete().await;
}

#[tokio::test]
async fn over_capacity_fails_fast_with_retry_after_and_sends_nothing() {
    let table = TestTable::create("capacity-over").await;
    let (redis, keys) = common::redis().await;
    let proxy = common::fault_proxy(Vec::new(), 1).await;
    let capacity = TableCapacity::provisioned(table.name(), 2.0, 2.0);
    let gated = client(Some(&proxy.url()), Duration::from_secs(1))
        .await
        .with_gate(gate(
            &redis,
            keys.prefix(),
            capacity,
            Duration::from_millis(500),
        ));

    let mut calls = tokio::task::JoinSet::new();
    for i in 0..12 {
        let (gated, table) = (gated.clone(), table.name().to_owned());
        calls.spawn(async move { put(&gated, &table, &format!("k{i}"), 10, 1.0).await });
    }
    let (mut done, mut over) = (0, 0);
    while let Some(result) = calls.join_next().await {
        match result.unwrap() {
            Ok(()) => done += 1,
            Err(e) => {
                assert_eq!(e.reason(), GiveUp::OverCapacity, "{e}");
                assert_eq!(e.attempts(), 0, "nothing was sent: {e}");
                let wait = e.retry_after().expect("over capacity says when");
                assert!(wait > Duration::ZERO);
                over += 1;
            }
        }
    }
    // 0.5 s of burst (1 unit) plus 2/s for under a second: at most 4 fit.
    assert!((1..=4).contains(&done), "{done} done, {over} over");
    assert_eq!(done + over, 12);
    let sent = proxy.stats().operation(table.name(), "PutItem").requests;
    assert_eq!(sent, done as u64, "refused calls never reach DynamoDB");
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
    let told = TableCapacity::provisioned(table.name(), 40.0, 40.0);
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
    let told = TableCapacity::provisioned(table.name(), 100.0, 100.0);
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

/// Offers `count` 1-unit writes, one every `every`, whatever happened to the
/// earlier ones; waits for all of them and returns how many succeeded.
async fn offer(
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

// ------------------------------------------------------------------ fleet --

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
        let capacity = TableCapacity::provisioned(table, f64::from(CAPACITY), f64::from(CAPACITY));
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

#[tokio::test]
async fn describe_table_reads_provisioned_capacity_and_refuses_on_demand_without_a_maximum() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
        ProjectionType, ProvisionedThroughput, ScalarAttributeType,
    };
    let sdk = common::dynamodb().await;
    let name = common::unique_name("dg-capacity-describe");
    let attribute = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let hash = |n: &str| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(KeyType::Hash)
            .build()
            .unwrap()
    };
    let throughput = |r, w| {
        ProvisionedThroughput::builder()
            .read_capacity_units(r)
            .write_capacity_units(w)
            .build()
            .unwrap()
    };
    sdk.create_table()
        .table_name(&name)
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("email"))
        .key_schema(hash("pk"))
        .provisioned_throughput(throughput(30, 20))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("by_email")
                .key_schema(hash("email"))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .provisioned_throughput(throughput(7, 5))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let described = TableCapacity::describe(&sdk, &name).await;
    sdk.delete_table().table_name(&name).send().await.unwrap();
    let expected =
        TableCapacity::provisioned(name.as_str(), 30.0, 20.0).with_index("by_email", 7.0, 5.0);
    assert_eq!(described.unwrap(), expected);

    let on_demand = TestTable::create("capacity-on-demand").await;
    let refused = TableCapacity::describe(&sdk, on_demand.name()).await;
    assert!(
        matches!(
            refused,
            Err(dynagate::error::CapacityError::OnDemand { .. })
        ),
        "{refused:?}"
    );
    let missing = TableCapacity::describe(&sdk, "dg-no-such-table").await;
    assert!(matches!(
        missing,
        Err(dynagate::error::CapacityError::Describe { .. })
    ));
    on_demand.delete().await;
}

#[tokio::test]
async fn with_redis_dead_the_gate_lets_calls_through_and_on_a_cluster_it_gates() {
    let table = TestTable::create("capacity-fail-open").await;
    let dynamodb = client(None, Duration::from_secs(2)).await;
    let capacity = || TableCapacity::provisioned(table.name(), 1.0, 1.0);

    // A gate of 1 WCU/s on a Redis that dies: the calls go ungated, all of
    // them, instead of failing or waiting out their deadline.
    let mut doomed = common::ThrowawayRedis::start().await;
    let manager = ConnectionManager::new(redis::Client::open(doomed.url.as_str()).unwrap())
        .await
        .unwrap();
    let gate = CapacityGate::builder(manager)
        .table(capacity())
        .redis_deadline(Duration::from_millis(100))
        .build()
        .unwrap();
    let gated = dynamodb.clone().with_gate(gate);
    doomed.kill();
    for i in 0..5 {
        put(&gated, table.name(), &format!("open{i}"), 10, 1.0)
            .await
            .expect("fails open");
    }

    // On a Redis Cluster, a table's bucket and its hot-key buckets share a
    // slot: a call with a partition key is gated (the second one refused).
    let (cluster, keys) = common::redis_cluster().await;
    let gate = CapacityGate::builder(cluster)
        .prefix(keys.prefix().trim_end_matches(':'))
        .table(capacity())
        .redis_deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let gated = client(None, Duration::from_millis(300))
        .await
        .with_gate(gate);
    put(&gated, table.name(), "c1", 10, 1.0).await.unwrap();
    let refused = put(&gated, table.name(), "c2", 10, 1.0).await.unwrap_err();
    assert_eq!(refused.reason(), GiveUp::OverCapacity, "{refused}");
    keys.cleanup().await;
    table.delete().await;
}
