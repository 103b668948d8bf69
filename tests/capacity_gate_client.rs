//! The fleet capacity gate in front of DynamoDB Local and the fault proxy's
//! capacity model: the correction by `ConsumedCapacity`, over-capacity
//! refusals that send nothing, the table's capacity read by DescribeTable,
//! and a dead Redis. How it meets throttles: `capacity_gate_throttles.rs`.

mod common;

use std::time::Duration;

use common::TestTable;
use common::capacity::{client, gate, put};
use dynagate::Direction;
use dynagate::capacity::{CapacityGate, TableCapacity, Throughput};
use dynagate::retry::GiveUp;
use redis::aio::ConnectionManager;

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
        TableCapacity::provisioned(
            table.name(),
            Throughput {
                read: 1.0,
                write: 1.0,
            },
        ),
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
        TableCapacity::provisioned(
            table.name(),
            Throughput {
                read: 1.0,
                write: 1.0,
            },
        ),
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
    let capacity = TableCapacity::provisioned(
        table.name(),
        Throughput {
            read: 2.0,
            write: 2.0,
        },
    );
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
    let expected = TableCapacity::provisioned(
        name.as_str(),
        Throughput {
            read: 30.0,
            write: 20.0,
        },
    )
    .with_index(
        "by_email",
        Throughput {
            read: 7.0,
            write: 5.0,
        },
    );
    assert_eq!(described.unwrap(), expected);

    let on_demand = TestTable::create("capacity-on-demand").await;
    let refused = TableCapacity::describe(&sdk, on_demand.name()).await;
    assert!(
        matches!(
            refused,
            Err(dynagate::capacity::CapacityError::OnDemand { .. })
        ),
        "{refused:?}"
    );
    let missing = TableCapacity::describe(&sdk, "dg-no-such-table").await;
    assert!(matches!(
        missing,
        Err(dynagate::capacity::CapacityError::Describe { .. })
    ));
    on_demand.delete().await;
}

#[tokio::test]
async fn with_redis_dead_the_gate_lets_calls_through_and_on_a_cluster_it_gates() {
    let table = TestTable::create("capacity-fail-open").await;
    let dynamodb = client(None, Duration::from_secs(2)).await;
    let capacity = || {
        TableCapacity::provisioned(
            table.name(),
            Throughput {
                read: 1.0,
                write: 1.0,
            },
        )
    };

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
