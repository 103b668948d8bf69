//! Cursors and budgets of Query and Scan on DynamoDB Local: a tampered,
//! expired, foreign or other-query cursor is refused before any call, and a
//! filtered scan stops at its budget with a cursor that goes on.

mod common;

use std::time::Duration;

use common::query_table::{Row, dead_client, filled, range, repository, sort_keys};
use dynagate::repository::{
    Consistency, CursorError, CursorKeys, Filter, KeyCondition, PageEnd, ReadBudget,
    RepositoryError,
};
use dynagate::usage;
use futures_util::StreamExt;

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
