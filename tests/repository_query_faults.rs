//! Query and Scan pages through the fault proxy: throttled pages are retried
//! inside the deadline (and given up with a wait when throttling outlasts
//! it); a page the table is too busy to fill ends with what it read and a
//! cursor that goes on; a listing's budget and usage meter count what
//! DynamoDB's pricing charges, filtered items included.

mod common;

use std::time::Duration;

use common::TestTable;
use common::through_proxy::start_proxy;
use dynagate::repository::{
    Consistency, Filter, KeyCondition, KeySchema, KeyType, PageEnd, ReadBudget, Repository,
    RepositoryError, WriteToken,
};
use dynagate::retry::RetryPolicy;
use dynagate::{ResilientClient, usage};
use dynagate_fault_proxy::{Capacity, ErrorKind, Rule, RuleSet, RunningProxy};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Row {
    pk: String,
    sk: String,
    kind: String,
    pad: String,
}

async fn rows_through(proxy: &RunningProxy, table: &TestTable) -> Repository<Row> {
    let config = common::sdk_config_via(&proxy.url()).await;
    let policy = RetryPolicy::builder()
        .deadline(Duration::from_millis(1500))
        .seed(3)
        .build()
        .unwrap();
    Repository::new(
        ResilientClient::new(&config, policy),
        table.name(),
        KeySchema::partition("pk", KeyType::String).with_sort("sk", KeyType::String),
    )
}

/// `count` rows of about `pad` bytes in partition `p`, every fifth kept by
/// the filter, written directly (not through the proxy).
async fn filled(test: &str, count: usize, pad: usize) -> TestTable {
    let table = TestTable::create_with_sort_key(test).await;
    let direct = Repository::<Row>::new(
        ResilientClient::new(&common::sdk_config().await, RetryPolicy::default()),
        table.name(),
        KeySchema::partition("pk", KeyType::String).with_sort("sk", KeyType::String),
    );
    for i in 0..count {
        let row = Row {
            pk: "p".into(),
            sk: format!("{i:03}"),
            kind: if i % 5 == 0 { "keep" } else { "drop" }.into(),
            pad: "x".repeat(pad),
        };
        direct.create(&row, &WriteToken::generate()).await.unwrap();
    }
    table
}

#[tokio::test]
async fn throttled_pages_are_retried_within_the_deadline() {
    let table = filled("query-throttled", 12, 10).await;
    let proxy = start_proxy(vec![
        Rule::new(table.name(), "Query")
            .with_error(ErrorKind::ProvisionedThroughputExceeded, 1.0)
            .with_error_limit(3),
    ])
    .await;
    let rows = rows_through(&proxy, &table).await;
    let page = rows
        .query(KeyCondition::partition("p"))
        .page_size(50)
        .page()
        .await
        .unwrap();
    assert_eq!(page.items.len(), 12);
    assert_eq!(page.calls, 1, "one page, one successful call");
    let queries = proxy.stats().operation(table.name(), "Query");
    assert_eq!(
        queries.requests, 4,
        "three throttled attempts, then the answer"
    );
    assert_eq!(queries.injected_total(), 3);

    // Throttling that outlasts the deadline: given up, with a wait to tell.
    proxy.set_rules(
        RuleSet::new(vec![
            Rule::new(table.name(), "Query")
                .with_error(ErrorKind::ProvisionedThroughputExceeded, 1.0),
        ])
        .unwrap(),
    );
    let error = rows
        .query(KeyCondition::partition("p"))
        .page()
        .await
        .unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    assert!(error.retry_after().is_some());
    assert!(matches!(error, RepositoryError::Dynamodb(_)));
    table.delete().await;
}

#[tokio::test]
async fn a_page_the_table_is_too_busy_to_fill_keeps_what_it_read() {
    // 40 rows, every fifth kept by the filter: a page of 8 needs several
    // calls. The first passes, every later one is throttled past the retry
    // policy's deadline.
    let table = filled("query-busy", 40, 10).await;
    let proxy = start_proxy(vec![
        Rule::new(table.name(), "Query")
            .with_error(ErrorKind::ProvisionedThroughputExceeded, 1.0)
            .with_errors_after(1),
    ])
    .await;
    let rows = rows_through(&proxy, &table).await;
    let keep = || Filter::attr("kind").eq("keep");
    let first = rows
        .query(KeyCondition::partition("p"))
        .filter(keep())
        .page_size(8)
        .page()
        .await
        .unwrap();
    assert_eq!(first.end, PageEnd::Busy, "{first:?}");
    assert_eq!(first.calls, 1);
    assert!(
        !first.items.is_empty() && first.items.len() < 8,
        "{first:?}"
    );
    let cursor = first.next_cursor.clone().expect("a cursor to go on from");
    assert!(
        proxy
            .stats()
            .operation(table.name(), "Query")
            .injected_total()
            >= 1
    );

    // A page whose first call fails has read nothing: it fails.
    let error = rows
        .query(KeyCondition::partition("p"))
        .filter(keep())
        .page_size(8)
        .page()
        .await
        .unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");

    // Once the table has room, the cursor goes on where the page stopped:
    // every kept row once, none lost.
    proxy.set_rules(RuleSet::new(Vec::new()).unwrap());
    let mut seen: Vec<String> = first.items.iter().map(|r| r.sk.clone()).collect();
    let mut after = Some(cursor);
    while let Some(cursor) = after {
        let page = rows
            .query(KeyCondition::partition("p"))
            .filter(keep())
            .page_size(8)
            .after(&cursor)
            .page()
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|r| r.sk.clone()));
        after = page.next_cursor;
    }
    let expected: Vec<String> = (0..40).step_by(5).map(|i| format!("{i:03}")).collect();
    assert_eq!(seen, expected);
    table.delete().await;
}

#[tokio::test]
async fn the_budget_and_the_meter_count_what_dynamodb_charges_for_filtered_items() {
    // 40 rows of about 1 KB: a strongly consistent read of all of them costs
    // ceil(40 KB / 4 KB) = 10 units, though the filter keeps only 8 rows.
    let table = filled("query-priced", 40, 1000).await;
    let proxy = start_proxy(vec![
        Rule::new(table.name(), "*").with_capacity(Capacity::new(Some(1_000_000), None)),
    ])
    .await;
    let rows = rows_through(&proxy, &table).await;
    let keep = || Filter::attr("kind").eq("keep");
    let (all, used) = usage::metered(
        rows.query(KeyCondition::partition("p"))
            .filter(keep())
            .consistency(Consistency::Strong)
            .page_size(100)
            .budget(ReadBudget::units(100))
            .page(),
    )
    .await;
    let all = all.unwrap();
    assert_eq!(all.items.len(), 8);
    assert_eq!(all.scanned_count, 40);
    let charged = proxy.stats().operation(table.name(), "Query").read_units;
    assert!(
        charged >= 10.0,
        "the proxy charged {charged} for 40 KB read"
    );
    assert_eq!(all.consumed_units, charged, "the page reports the price");
    assert_eq!(used.read_units, charged, "and so does the meter");

    // A budget of 4 units reads about 16 of the 40 rows, then stops with a
    // cursor: the price of the filtered rows counts against it.
    let partial = rows
        .query(KeyCondition::partition("p"))
        .filter(keep())
        .consistency(Consistency::Strong)
        .page_size(100)
        .budget(ReadBudget::units(4))
        .page()
        .await
        .unwrap();
    assert_eq!(partial.end, PageEnd::Budget, "{partial:?}");
    assert!(partial.scanned_count < 40 && partial.next_cursor.is_some());
    assert!(
        partial.consumed_units >= 4.0 && partial.consumed_units <= 5.0,
        "{} units for a budget of 4",
        partial.consumed_units
    );
    table.delete().await;
}
