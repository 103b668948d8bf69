//! Query and Scan through the fault proxy, priced the way DynamoDB prices
//! them: every item read costs, also those the filter discards; a projection
//! does not reduce the price; a page reads at most 1 MB before the filter.
//! What the client sees in `ConsumedCapacity` is what the proxy charged.

mod common;

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, ReturnConsumedCapacity, WriteRequest};
use common::through_proxy::{client_through, s, start_proxy};
use dynagate_fault_proxy::{Capacity, Rule, RunningProxy, item_size};
use serde_json::json;

/// Read capacity so large that the debt a read leaves is repaid at once: the
/// tests look at prices, not at throttling.
fn priced(table: &str) -> Rule {
    Rule::new(table, "*").with_capacity(Capacity::new(Some(1_000_000), None))
}

/// An item of exactly `size` bytes (DynamoDB's accounting) under partition
/// `p`, sort key `sk`, whose `kind` is "keep" or "drop".
fn item(sk: usize, keep: bool, size: usize) -> HashMap<String, AttributeValue> {
    let kind = if keep { "keep" } else { "drop" };
    // pk (2 + 1) + sk (2 + 4) + kind (4 + 4) + v (1 + padding)
    let padding = "x".repeat(size - 18);
    let wire = json!({"pk": {"S": "p"}, "sk": {"S": format!("{sk:04}")},
                      "kind": {"S": kind}, "v": {"S": padding}});
    assert_eq!(
        item_size(wire.as_object().unwrap()),
        size as u64,
        "the test's items have the size they claim"
    );
    HashMap::from([
        ("pk".to_owned(), s("p")),
        ("sk".to_owned(), s(&format!("{sk:04}"))),
        ("kind".to_owned(), s(kind)),
        ("v".to_owned(), s(&padding)),
    ])
}

/// Writes `count` items of `size` bytes straight into DynamoDB, every
/// `keep_every`-th one kept by the tests' filter.
async fn fill(table: &common::TestTable, count: usize, size: usize, keep_every: usize) {
    let requests: Vec<WriteRequest> = (0..count)
        .map(|i| {
            let put = PutRequest::builder()
                .set_item(Some(item(i, i % keep_every == 0, size)))
                .build()
                .unwrap();
            WriteRequest::builder().put_request(put).build()
        })
        .collect();
    for chunk in requests.chunks(25) {
        let answer = table
            .client()
            .batch_write_item()
            .request_items(table.name(), chunk.to_vec())
            .send()
            .await
            .expect("filling the table");
        assert!(
            answer.unprocessed_items().is_none_or(HashMap::is_empty),
            "DynamoDB Local processes every item"
        );
    }
}

/// DynamoDB's price of reading `bytes` in one request: 4 KB blocks, rounded
/// up once, half when eventually consistent.
fn price(bytes: usize, strong: bool) -> f64 {
    let blocks = bytes.div_ceil(4096).max(1) as f64;
    if strong { blocks } else { blocks / 2.0 }
}

const MB: usize = 1024 * 1024;

/// One page as the client saw it.
struct Page {
    scanned: usize,
    kept: Vec<String>,
    last: Option<HashMap<String, AttributeValue>>,
    consumed: f64,
}

/// One filtered page of `operation` ("Query" or "Scan") through `client`.
async fn filtered_page(
    client: &Client,
    table: &str,
    operation: &str,
    start: Option<HashMap<String, AttributeValue>>,
) -> Page {
    let keep = s("keep");
    let (scanned, items, last, consumed) = if operation == "Query" {
        let answer = client
            .query()
            .table_name(table)
            .key_condition_expression("pk = :p")
            .filter_expression("kind = :keep")
            .projection_expression("sk")
            .expression_attribute_values(":p", s("p"))
            .expression_attribute_values(":keep", keep)
            .set_exclusive_start_key(start)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .expect("filtered Query through the proxy");
        (
            answer.scanned_count,
            answer.items,
            answer.last_evaluated_key,
            answer.consumed_capacity,
        )
    } else {
        let answer = client
            .scan()
            .table_name(table)
            .filter_expression("kind = :keep")
            .projection_expression("sk")
            .expression_attribute_values(":keep", keep)
            .set_exclusive_start_key(start)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .expect("filtered Scan through the proxy");
        (
            answer.scanned_count,
            answer.items,
            answer.last_evaluated_key,
            answer.consumed_capacity,
        )
    };
    let consumed = consumed.expect("ConsumedCapacity was asked for");
    assert_eq!(consumed.table_name(), Some(table));
    assert_eq!(consumed.read_capacity_units(), consumed.capacity_units());
    let kept = items
        .unwrap_or_default()
        .iter()
        .map(|item| {
            assert_eq!(item.len(), 1, "the projection applies: {item:?}");
            item["sk"].as_s().unwrap().clone()
        })
        .collect();
    Page {
        scanned: scanned as usize,
        kept,
        last,
        consumed: consumed.capacity_units().unwrap(),
    }
}

#[tokio::test]
async fn a_filtered_scan_is_charged_and_reports_every_item_it_read() {
    let table = common::TestTable::create_with_sort_key("proxy-scan-price").await;
    fill(&table, 20, 1000, 10).await;
    let proxy = start_proxy(vec![priced(table.name())]).await;
    let client = client_through(&proxy).await;

    let strong = client
        .scan()
        .table_name(table.name())
        .filter_expression("kind = :keep")
        .projection_expression("sk")
        .expression_attribute_values(":keep", s("keep"))
        .consistent_read(true)
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await
        .expect("filtered Scan through the proxy");
    assert_eq!((strong.count, strong.scanned_count), (2, 20));
    // 20 items of 1000 bytes read, 2 returned of a few bytes each.
    let consumed = strong.consumed_capacity.expect("asked for");
    assert_eq!(consumed.capacity_units(), Some(price(20 * 1000, true)));
    assert_eq!(consumed.read_capacity_units(), Some(price(20 * 1000, true)));

    let eventual = client
        .scan()
        .table_name(table.name())
        .select(aws_sdk_dynamodb::types::Select::Count)
        .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
        .send()
        .await
        .expect("counting Scan through the proxy");
    assert_eq!(eventual.count, 20);
    let consumed = eventual.consumed_capacity.expect("asked for");
    assert_eq!(consumed.capacity_units(), Some(price(20 * 1000, false)));
    assert_eq!(
        consumed.table().and_then(|t| t.capacity_units()),
        Some(price(20 * 1000, false)),
        "INDEXES names the table's share"
    );

    let stats = proxy.stats().operation(table.name(), "Scan");
    assert_eq!(stats.requests, 2);
    assert_eq!(
        stats.read_units,
        price(20 * 1000, true) + price(20 * 1000, false),
        "the proxy counted what it reported"
    );
    table.delete().await;
}

/// Reads every filtered page of `operation` and checks each read at most
/// 1 MB: it stopped at the first item that took it past 1 MB.
async fn assert_pages_of_at_most_a_megabyte(
    proxy: &RunningProxy,
    table: &str,
    operation: &str,
    count: usize,
    size: usize,
    keep_every: usize,
) {
    let client = client_through(proxy).await;
    let mut start = None;
    let (mut pages, mut scanned, mut charged) = (0, 0, 0.0);
    let mut kept = Vec::new();
    loop {
        let page = filtered_page(&client, table, operation, start).await;
        pages += 1;
        assert!(
            (page.scanned - 1) * size < MB,
            "{operation} page {pages} read {} items of {size} bytes: more than 1 MB before its last",
            page.scanned
        );
        if page.last.is_some() {
            assert!(
                page.scanned * size >= MB,
                "{operation} page {pages} stopped before 1 MB with more to read"
            );
        }
        assert_eq!(page.consumed, price(page.scanned * size, false));
        scanned += page.scanned;
        charged += page.consumed;
        kept.extend(page.kept);
        start = page.last;
        if start.is_none() {
            break;
        }
    }
    assert!(
        pages >= 2,
        "{count} items of {size} bytes fill more than one page"
    );
    assert_eq!(scanned, count, "every item read exactly once");
    let expected: Vec<String> = (0..count)
        .step_by(keep_every)
        .map(|i| format!("{i:04}"))
        .collect();
    assert_eq!(kept, expected, "every kept item returned once, in order");
    assert_eq!(
        proxy.stats().operation(table, operation).read_units,
        charged,
        "the proxy counted what it reported"
    );
}

#[tokio::test]
async fn filtered_pages_read_at_most_a_megabyte_each() {
    let table = common::TestTable::create_with_sort_key("proxy-page-limit").await;
    // 50 items of 30,000 bytes: about 1.4 MB, few of them kept by the filter.
    let (count, size, keep_every) = (50, 30_000, 10);
    fill(&table, count, size, keep_every).await;
    let proxy = start_proxy(vec![priced(table.name())]).await;
    assert!(count * size > MB);

    assert_pages_of_at_most_a_megabyte(&proxy, table.name(), "Query", count, size, keep_every)
        .await;
    assert_pages_of_at_most_a_megabyte(&proxy, table.name(), "Scan", count, size, keep_every).await;
    table.delete().await;
}
