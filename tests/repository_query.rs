//! Query, Scan and pagination on DynamoDB Local: every key condition on the
//! table and on both kinds of index, filters and projections with reserved
//! words, pages followed by cursor, streams and parallel scans that yield
//! every item exactly once, cursors refused before any call, and budgets
//! that stop a filtered scan with a usable cursor.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, GlobalSecondaryIndex, KeyType as DdbKeyType, LocalSecondaryIndex,
    Projection, ProjectionType, ScalarAttributeType,
};
use common::{TestTable, key, sdk_config, string_attribute};
use dynagate::repository::{
    Consistency, CursorError, CursorKeys, Filter, Index, KeyCondition, KeySchema, KeyType, PageEnd,
    ReadBudget, Repository, RepositoryError, Segment, SortCondition, WriteToken,
};
use dynagate::retry::RetryPolicy;
use dynagate::{ResilientClient, usage};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Row {
    pk: String,
    sk: String,
    // `name`, `status` and `size` are DynamoDB reserved words.
    name: String,
    status: String,
    size: i64,
    email: String,
    #[serde(default)]
    payload: String,
}

fn row(pk: &str, i: usize, payload: usize) -> Row {
    Row {
        pk: pk.to_owned(),
        sk: format!("a{i:02}"),
        name: format!("n{i}"),
        status: if i.is_multiple_of(3) { "gone" } else { "live" }.to_owned(),
        size: i as i64,
        email: format!("u{i}@{pk}.example"),
        payload: "x".repeat(payload),
    }
}

fn number(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::N)
        .build()
        .unwrap()
}

fn all_projected() -> Projection {
    Projection::builder()
        .projection_type(ProjectionType::All)
        .build()
}

/// `pk`/`sk` strings, a global index on `email`, a local index on `size`.
async fn indexed_table(test: &str) -> TestTable {
    TestTable::create_shaped(test, |request| {
        request
            .attribute_definitions(string_attribute("pk"))
            .attribute_definitions(string_attribute("sk"))
            .attribute_definitions(string_attribute("email"))
            .attribute_definitions(number("size"))
            .key_schema(key("pk", DdbKeyType::Hash))
            .key_schema(key("sk", DdbKeyType::Range))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name("by_email")
                    .key_schema(key("email", DdbKeyType::Hash))
                    .projection(all_projected())
                    .build()
                    .unwrap(),
            )
            .local_secondary_indexes(
                LocalSecondaryIndex::builder()
                    .index_name("by_size")
                    .key_schema(key("pk", DdbKeyType::Hash))
                    .key_schema(key("size", DdbKeyType::Range))
                    .projection(all_projected())
                    .build()
                    .unwrap(),
            )
    })
    .await
}

async fn client() -> ResilientClient {
    ResilientClient::new(&sdk_config().await, RetryPolicy::default())
}

/// A client whose every call would fail: what it refuses, it refused
/// before calling.
async fn dead_client() -> ResilientClient {
    let config = common::sdk_config_via("http://127.0.0.1:9").await;
    let policy = RetryPolicy::builder()
        .deadline(Duration::from_millis(300))
        .build()
        .unwrap();
    ResilientClient::new(&config, policy)
}

fn keys() -> CursorKeys {
    CursorKeys::new([[7u8; 32]]).unwrap()
}

fn repository(client: ResilientClient, table: &TestTable) -> Repository<Row> {
    Repository::new(
        client,
        table.name(),
        KeySchema::partition("pk", KeyType::String).with_sort("sk", KeyType::String),
    )
    .with_index(Index::global(
        "by_email",
        KeySchema::partition("email", KeyType::String),
    ))
    .with_index(Index::local("by_size", "size", KeyType::Number))
    .with_cursor_keys(keys())
}

/// 30 rows in partition `p`, 5 in `q`.
async fn filled(test: &str, payload: usize) -> (TestTable, Repository<Row>) {
    let table = indexed_table(test).await;
    let rows = repository(client().await, &table);
    for i in 0..30 {
        rows.create(&row("p", i, payload), &WriteToken::generate())
            .await
            .unwrap();
    }
    for i in 0..5 {
        rows.create(&row("q", i, payload), &WriteToken::generate())
            .await
            .unwrap();
    }
    (table, rows)
}

fn sort_keys(rows: &[Row]) -> Vec<String> {
    rows.iter().map(|r| r.sk.clone()).collect()
}

fn range(from: usize, to: usize) -> Vec<String> {
    (from..to).map(|i| format!("a{i:02}")).collect()
}

#[tokio::test]
async fn every_sort_key_condition_on_the_table_selects_what_dynamodb_defines() {
    let (table, rows) = filled("query-conditions", 0).await;
    let query = |condition: SortCondition| {
        rows.query(KeyCondition::partition("p").sort(condition))
            .page_size(100)
            .page()
    };
    let cases = [
        (SortCondition::eq("a07"), range(7, 8)),
        (SortCondition::lt("a03"), range(0, 3)),
        (SortCondition::le("a03"), range(0, 4)),
        (SortCondition::gt("a26"), range(27, 30)),
        (SortCondition::ge("a26"), range(26, 30)),
        (SortCondition::between("a10", "a12"), range(10, 13)),
        (SortCondition::begins_with("a1"), range(10, 20)),
    ];
    for (condition, expected) in cases {
        let page = query(condition.clone()).await.unwrap();
        assert_eq!(sort_keys(&page.items), expected, "{condition:?}");
        assert_eq!(page.end, PageEnd::Complete);
        assert!(page.next_cursor.is_none());
    }
    let all = rows
        .query(KeyCondition::partition("p"))
        .descending()
        .page_size(100)
        .consistency(Consistency::Strong)
        .page()
        .await
        .unwrap();
    let mut expected = range(0, 30);
    expected.reverse();
    assert_eq!(sort_keys(&all.items), expected);
    assert!(all.consumed_units > 0.0, "DynamoDB reports the capacity");
    table.delete().await;
}

#[tokio::test]
async fn queries_on_a_global_and_a_local_index_and_their_limits() {
    let (table, rows) = filled("query-indexes", 0).await;
    let by_email = rows
        .query(KeyCondition::partition("u4@q.example"))
        .index("by_email")
        .page()
        .await
        .unwrap();
    assert_eq!(by_email.items, vec![row("q", 4, 0)]);

    let by_size = rows
        .query(KeyCondition::partition("p").sort(SortCondition::between(5i64, 8i64)))
        .index("by_size")
        .consistency(Consistency::Strong) // a local index may be read strongly
        .page()
        .await
        .unwrap();
    assert_eq!(sort_keys(&by_size.items), range(5, 9));

    // Refused before any call: the dead client would fail differently.
    let dead = repository(dead_client().await, &table);
    let strong_global = dead
        .query(KeyCondition::partition("u4@q.example"))
        .index("by_email")
        .consistency(Consistency::Strong)
        .page()
        .await;
    assert!(
        matches!(&strong_global, Err(RepositoryError::InvalidQuery(m)) if m.contains("strong")),
        "{strong_global:?}"
    );
    let undeclared = dead
        .query(KeyCondition::partition("x"))
        .index("nope")
        .page()
        .await;
    assert!(
        matches!(&undeclared, Err(RepositoryError::InvalidQuery(m)) if m.contains("`nope`")),
        "{undeclared:?}"
    );
    let mistyped = dead
        .query(KeyCondition::partition("p").sort(SortCondition::eq(3i64)))
        .page()
        .await;
    assert!(
        matches!(&mistyped, Err(RepositoryError::InvalidQuery(m)) if m.contains("`sk` must be a string")),
        "{mistyped:?}"
    );
    table.delete().await;
}

#[tokio::test]
async fn filters_and_projections_on_reserved_words() {
    let (table, rows) = filled("query-filters", 0).await;
    let live_big = rows
        .query(KeyCondition::partition("p"))
        .filter(
            Filter::attr("status")
                .eq("live")
                .and(Filter::attr("size").ge(20i64))
                .and(Filter::attr("name").begins_with("n2")),
        )
        .page_size(100)
        .page()
        .await
        .unwrap();
    // 20..30 minus the multiples of 3 (21, 24, 27), names n20..n29.
    assert_eq!(
        sort_keys(&live_big.items),
        ["a20", "a22", "a23", "a25", "a26", "a28", "a29"]
    );
    assert_eq!(live_big.count, 7);
    assert_eq!(live_big.scanned_count, 30, "the filter ran after reading");

    #[derive(Debug, Deserialize, Serialize)]
    struct NameOnly {
        name: String,
        status: String,
    }
    let names: Repository<NameOnly> = Repository::new(
        client().await,
        table.name(),
        KeySchema::partition("pk", KeyType::String).with_sort("sk", KeyType::String),
    );
    let projected = names
        .query(KeyCondition::partition("q"))
        .project(["name", "status"])
        .page()
        .await
        .unwrap();
    let seen: Vec<_> = projected.items.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(seen, ["n0", "n1", "n2", "n3", "n4"]);
    table.delete().await;
}

#[tokio::test]
async fn pages_follow_their_cursors_to_the_end_and_the_stream_yields_each_item_once() {
    let (table, rows) = filled("query-pages", 0).await;
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let mut query = rows
            .query(KeyCondition::partition("p"))
            .page_size(7)
            .caller("alice");
        if let Some(c) = cursor.take() {
            query = query.after(c);
        }
        let page = query.page().await.unwrap();
        pages += 1;
        seen.extend(sort_keys(&page.items));
        match page.next_cursor {
            Some(next) => {
                assert_eq!(page.end, PageEnd::Full);
                assert_eq!(page.items.len(), 7);
                cursor = Some(next);
            }
            None => break,
        }
        assert!(pages < 10, "bounded");
    }
    assert!(pages >= 4, "{pages} pages");
    assert_eq!(seen, range(0, 30), "every item once, in order");

    let streamed: Vec<Row> = rows
        .query(KeyCondition::partition("p"))
        .page_size(4)
        .budget(ReadBudget::units(100).calls(20))
        .stream()
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(sort_keys(&streamed), range(0, 30));
    table.delete().await;
}

#[tokio::test]
async fn a_parallel_scan_covers_every_item_exactly_once() {
    let (table, rows) = filled("scan-parallel", 0).await;
    let segments = Segment::all(4).unwrap();
    let mut all = Vec::new();
    let per_segment = futures_util::future::join_all(segments.iter().map(|segment| {
        rows.scan(ReadBudget::units(100).calls(50))
            .segment(*segment)
            .page_size(3)
            .stream()
            .unwrap()
            .map(|r| r.unwrap())
            .collect::<Vec<_>>()
    }))
    .await;
    for items in per_segment {
        all.extend(items.into_iter().map(|r| format!("{}/{}", r.pk, r.sk)));
    }
    let unique: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), 35, "no item twice");
    assert_eq!(unique.len(), 35, "every item");
    assert!(Segment::new(4, 4).is_err() && Segment::all(0).is_err());
    table.delete().await;
}

#[tokio::test]
async fn a_bad_cursor_is_refused_with_its_reason_and_no_call() {
    let (table, rows) = filled("query-cursors", 0).await;
    let first = rows
        .query(KeyCondition::partition("p"))
        .page_size(5)
        .caller("alice")
        .page()
        .await
        .unwrap();
    let cursor = first.next_cursor.expect("more pages");
    let dead = repository(dead_client().await, &table);
    let refused = |caller: &'static str, cursor: String, filter: Option<Filter>| {
        let mut query = dead
            .query(KeyCondition::partition("p"))
            .page_size(5)
            .caller(caller);
        if let Some(f) = filter {
            query = query.filter(f);
        }
        query.after(cursor).page()
    };
    let cursor_error = |result: Result<_, RepositoryError<Row>>| match result {
        Err(RepositoryError::Cursor(e)) => e,
        other => panic!("expected a cursor error, got {other:?}"),
    };
    let mut tampered = cursor.clone().into_bytes();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert!(matches!(
        cursor_error(refused("alice", tampered, None).await),
        CursorError::Tampered | CursorError::Malformed
    ));
    assert_eq!(
        cursor_error(refused("mallory", cursor.clone(), None).await),
        CursorError::OtherCaller
    );
    assert_eq!(
        cursor_error(
            refused(
                "alice",
                cursor.clone(),
                Some(Filter::attr("status").eq("live"))
            )
            .await
        ),
        CursorError::OtherQuery
    );
    // Another repository's secret: tampered as far as this one can tell.
    let foreign = repository(dead_client().await, &table)
        .with_cursor_keys(CursorKeys::new([[9u8; 32]]).unwrap());
    let result = foreign
        .query(KeyCondition::partition("p"))
        .page_size(5)
        .caller("alice")
        .after(cursor.clone())
        .page()
        .await;
    assert_eq!(cursor_error(result), CursorError::Tampered);

    // The genuine cursor still works on a live client.
    let second = rows
        .query(KeyCondition::partition("p"))
        .page_size(5)
        .caller("alice")
        .after(cursor)
        .page()
        .await
        .unwrap();
    assert_eq!(sort_keys(&second.items), range(5, 10));
    table.delete().await;
}

#[tokio::test]
async fn an_expired_cursor_is_refused() {
    let (table, rows) = filled("query-expiry", 0).await;
    let short = CursorKeys::new([[7u8; 32]])
        .unwrap()
        .lifetime(Duration::from_secs(1))
        .unwrap();
    let rows = rows.with_cursor_keys(short);
    let first = rows
        .query(KeyCondition::partition("p"))
        .page_size(5)
        .page()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let result = rows
        .query(KeyCondition::partition("p"))
        .page_size(5)
        .after(first.next_cursor.unwrap())
        .page()
        .await;
    assert!(
        matches!(result, Err(RepositoryError::Cursor(CursorError::Expired))),
        "{result:?}"
    );
    table.delete().await;
}

#[tokio::test]
async fn a_filtered_scan_stops_at_its_budget_with_a_cursor_that_goes_on() {
    // 35 rows of about 3 KB: each read unit pays for about one row (strong).
    let (table, rows) = filled("scan-budget", 3000).await;
    let nothing = || Filter::attr("status").eq("no such status");
    let (page, metered) = usage::metered(
        rows.scan(ReadBudget::units(8).calls(100))
            .filter(nothing())
            .consistency(Consistency::Strong)
            .page_size(25)
            .page(),
    )
    .await;
    let page = page.unwrap();
    assert_eq!(page.end, PageEnd::Budget);
    assert!(page.items.is_empty());
    assert!(
        page.scanned_count > 0 && page.scanned_count < 35,
        "{page:?}"
    );
    assert!(
        page.consumed_units >= 8.0 && page.consumed_units <= 8.0 + 2.0,
        "spent {} units for a budget of 8",
        page.consumed_units
    );
    assert_eq!(
        metered.read_units, page.consumed_units,
        "the meter saw it all"
    );
    assert_eq!(metered.calls, page.calls);

    let next = rows
        .scan(ReadBudget::units(200).calls(100))
        .filter(nothing())
        .consistency(Consistency::Strong)
        .after(page.next_cursor.expect("a cursor to go on from"))
        .page()
        .await
        .unwrap();
    assert_eq!(next.end, PageEnd::Complete);
    assert_eq!(
        page.scanned_count + next.scanned_count,
        35,
        "the cursor went on where the budget stopped"
    );

    // A stream over the same scan says that it stopped early.
    let streamed: Vec<_> = rows
        .scan(ReadBudget::units(4).calls(100))
        .filter(nothing())
        .stream()
        .unwrap()
        .collect()
        .await;
    assert!(
        matches!(streamed.last(), Some(Err(RepositoryError::BudgetExhausted { cursor })) if !cursor.is_empty()),
        "{streamed:?}"
    );
    table.delete().await;
}
