//! The fault proxy's capacity model in front of the real DynamoDB Local: what
//! the SDK sees through it, and what DynamoDB holds afterwards.
//!
//! Capacity is modelled in real time, so no test asserts on durations: counts
//! are checked exactly where the model makes them exact (one bank evaluated at
//! one instant) and otherwise within bounds derived from the elapsed time.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use common::through_proxy::{
    assert_throttled, client_through, put, s, start_proxy, stored, stored_count,
};
use dynagate_fault_proxy::{Capacity, HotKey, Rule};

#[tokio::test]
async fn a_burst_beyond_write_capacity_is_throttled_like_dynamodb() {
    let table = common::TestTable::create("proxy-wcu").await;
    let proxy = start_proxy(vec![
        Rule::new(table.name(), "*").with_capacity(Capacity::new(None, Some(5))),
    ])
    .await;
    let client = client_through(&proxy).await;

    let started = Instant::now();
    let mut admitted = Vec::new();
    let mut throttled = 0;
    for i in 0..20 {
        let pk = format!("item-{i}");
        match put(&client, table.name(), &pk).await {
            Ok(()) => {
                assert_ne!(
                    i, 0,
                    "the bank starts empty: the first write cannot be paid"
                );
                admitted.push(pk);
            }
            Err(error) => {
                assert_throttled(
                    &error,
                    "TableWriteProvisionedThroughputExceeded",
                    table.name(),
                );
                throttled += 1;
            }
        }
    }
    let elapsed = started.elapsed();
    // 5 WCU/s from the first request on: at most 5 per elapsed second were paid.
    let most = (5.0 * elapsed.as_secs_f64()).floor() as usize;
    assert!(
        admitted.len() <= most,
        "{} admitted in {elapsed:?}, at most {most} expected",
        admitted.len()
    );
    assert_eq!(admitted.len() + throttled, 20);

    // Exactly the admitted writes are in DynamoDB.
    assert_eq!(stored_count(&table).await as usize, admitted.len());
    for pk in &admitted {
        assert!(stored(&table, pk).await, "{pk} was admitted but is missing");
    }

    let puts = proxy.stats().operation(table.name(), "PutItem");
    assert_eq!(puts.requests, 20);
    assert_eq!(puts.forwarded as usize, admitted.len());
    assert_eq!(
        puts.throttled
            .get("TableWriteProvisionedThroughputExceeded")
            .copied(),
        Some(throttled as u64)
    );

    // The bank refills at 5 WCU/s: after 400 ms at least 2 units are back.
    tokio::time::sleep(Duration::from_millis(400)).await;
    put(&client, table.name(), "after-refill")
        .await
        .expect("capacity refilled");
    proxy.shutdown().await;
    table.delete().await;
}

#[tokio::test]
async fn batch_write_under_partial_capacity_returns_the_rest_as_unprocessed() {
    let table = common::TestTable::create("proxy-batch").await;
    // 3 units banked, 1 more per second: a 6-item batch evaluated at one
    // instant has exactly 3 items paid.
    let capacity = Capacity::new(None, Some(1)).with_initial_units(0, 3);
    let proxy = start_proxy(vec![Rule::new(table.name(), "*").with_capacity(capacity)]).await;
    let client = client_through(&proxy).await;

    let requests = |prefix: &str| -> Vec<WriteRequest> {
        (0..6)
            .map(|i| {
                let put = PutRequest::builder()
                    .item("pk", s(&format!("{prefix}-{i}")))
                    .build()
                    .expect("put request");
                WriteRequest::builder().put_request(put).build()
            })
            .collect()
    };
    let output = client
        .batch_write_item()
        .request_items(table.name(), requests("a"))
        .send()
        .await
        .expect("a partial batch succeeds");
    let unprocessed = output
        .unprocessed_items()
        .and_then(|items| items.get(table.name()))
        .expect("unprocessed items for the table");
    let unprocessed_keys: Vec<&AttributeValue> = unprocessed
        .iter()
        .filter_map(|w| w.put_request()?.item().get("pk"))
        .collect();
    assert_eq!(unprocessed_keys, [&s("a-3"), &s("a-4"), &s("a-5")]);
    for i in 0..6 {
        assert_eq!(stored(&table, &format!("a-{i}")).await, i < 3, "a-{i}");
    }

    // Right after, the bank is (nearly) empty: nothing fits, so the whole
    // batch is throttled.
    let error = client
        .batch_write_item()
        .request_items(table.name(), requests("b"))
        .send()
        .await
        .expect_err("nothing fits");
    assert!(
        error
            .as_service_error()
            .is_some_and(|e| e.is_provisioned_throughput_exceeded_exception()),
        "{error:?}"
    );
    assert_eq!(stored_count(&table).await, 3);

    let batch = proxy.stats().operation(table.name(), "BatchWriteItem");
    assert_eq!(batch.requests, 2);
    assert_eq!(batch.forwarded, 1);
    assert_eq!(batch.unprocessed, 3);
    assert_eq!(batch.write_units, 3.0);
    assert_eq!(batch.throttled_total(), 1);
    proxy.shutdown().await;
    table.delete().await;
}

#[tokio::test]
async fn reads_go_into_debt_and_are_refused_until_it_is_repaid() {
    let table = common::TestTable::create("proxy-rcu").await;
    let big = "x".repeat(10_000); // 3 blocks of 4 KB: 3 RCU strongly consistent
    table
        .client()
        .put_item()
        .table_name(table.name())
        .item("pk", s("big"))
        .item("blob", s(&big))
        .send()
        .await
        .expect("direct put");
    let proxy = start_proxy(vec![
        Rule::new(table.name(), "*").with_capacity(Capacity::new(Some(1), None)),
    ])
    .await;
    let client = client_through(&proxy).await;
    let get = || {
        client
            .get_item()
            .table_name(table.name())
            .key("pk", s("big"))
            .consistent_read(true)
            .send()
    };

    get()
        .await
        .expect("an empty bank is not in debt: the first read is admitted");
    let error = get().await.expect_err("3 RCU of debt at 1 RCU/s");
    let reason = error
        .as_service_error()
        .and_then(|e| match e {
            aws_sdk_dynamodb::operation::get_item::GetItemError::ProvisionedThroughputExceededException(e) => {
                e.throttling_reasons().first()?.reason().map(str::to_owned)
            }
            _ => None,
        });
    assert_eq!(
        reason.as_deref(),
        Some("TableReadProvisionedThroughputExceeded")
    );

    let gets = proxy.stats().operation(table.name(), "GetItem");
    assert_eq!(gets.read_units, 3.0);
    assert_eq!(gets.forwarded, 1);
    proxy.shutdown().await;
    table.delete().await;
}

#[tokio::test]
async fn batch_get_holds_back_the_tables_in_debt_as_unprocessed_keys() {
    let limited = common::TestTable::create("proxy-bget-a").await;
    let free = common::TestTable::create("proxy-bget-b").await;
    for table in [&limited, &free] {
        table
            .client()
            .put_item()
            .table_name(table.name())
            .item("pk", s("k"))
            .send()
            .await
            .expect("direct put");
    }
    let proxy = start_proxy(vec![
        Rule::new(limited.name(), "*").with_capacity(Capacity::new(Some(1), None)),
    ])
    .await;
    let client = client_through(&proxy).await;
    // One strongly consistent read puts the limited table 1 RCU into debt.
    client
        .get_item()
        .table_name(limited.name())
        .key("pk", s("k"))
        .consistent_read(true)
        .send()
        .await
        .expect("admitted: the bank is empty, not in debt");
    client
        .get_item()
        .table_name(limited.name())
        .key("pk", s("k"))
        .send()
        .await
        .expect_err("in debt");

    let keys = |table: &str| {
        aws_sdk_dynamodb::types::KeysAndAttributes::builder()
            .keys([("pk".to_owned(), s("k"))].into())
            .build()
            .map(|keys| (table.to_owned(), keys))
            .expect("keys")
    };
    let output = client
        .batch_get_item()
        .set_request_items(Some([keys(limited.name()), keys(free.name())].into()))
        .send()
        .await
        .expect("a partial batch succeeds");
    let responses = output.responses().expect("responses");
    assert_eq!(responses.get(free.name()).map(Vec::len), Some(1));
    assert!(!responses.contains_key(limited.name()));
    let unprocessed = output.unprocessed_keys().expect("unprocessed keys");
    assert_eq!(
        unprocessed.get(limited.name()).map(|k| k.keys().len()),
        Some(1)
    );
    assert!(!unprocessed.contains_key(free.name()));

    // A batch is counted under the first table it names (in JSON key order).
    let stats = proxy.stats();
    let batch = [limited.name(), free.name()].map(|t| stats.operation(t, "BatchGetItem"));
    assert_eq!(batch[0].requests + batch[1].requests, 1);
    assert_eq!(batch[0].unprocessed + batch[1].unprocessed, 1);
    assert_eq!(
        proxy
            .stats()
            .operation(free.name(), "BatchGetItem")
            .read_units,
        0.5
    );
    proxy.shutdown().await;
    limited.delete().await;
    free.delete().await;
}

#[tokio::test]
async fn a_hot_key_is_throttled_while_other_keys_pass() {
    let table = common::TestTable::create("proxy-hot").await;
    let capacity = Capacity::new(None, Some(1000)).with_initial_units(0, 1000);
    let proxy = start_proxy(vec![
        Rule::new(table.name(), "*")
            .with_capacity(capacity)
            .with_hot_key(HotKey::new("pk").with_units(3000, 1)),
    ])
    .await;
    let client = client_through(&proxy).await;

    // 1 WCU per second for one key value, while the table has 1000 banked.
    put(&client, table.name(), "hot")
        .await
        .expect("1st write to the key");
    let error = put(&client, table.name(), "hot")
        .await
        .expect_err("2nd write to the key in the same second");
    assert_throttled(&error, "TableWriteKeyRangeThroughputExceeded", table.name());
    put(&client, table.name(), "cold")
        .await
        .expect("another key is not limited");

    let puts = proxy.stats().operation(table.name(), "PutItem");
    assert_eq!(
        puts.throttled.get("TableWriteKeyRangeThroughputExceeded"),
        Some(&1)
    );
    proxy.shutdown().await;
    table.delete().await;
}
