//! Query, Scan and pagination on DynamoDB Local: every key condition on the
//! table and on both kinds of index, filters and projections with reserved
//! words, pages followed by cursor, streams and parallel scans that yield
//! every item exactly once. Cursors and budgets: `repository_query_cursors`.

mod common;

use std::collections::HashSet;

use common::query_table::{client, dead_client, filled, range, repository, row, sort_keys};
use dynagate::repository::{
    Consistency, Filter, KeyCondition, KeySchema, KeyType, PageEnd, ReadBudget, Repository,
    RepositoryError, Segment, SortCondition,
};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use common::query_table::Row;
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
