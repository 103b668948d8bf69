//! The fault proxy in front of the real DynamoDB Local: what it forwards
//! unchanged, the errors and dropped responses it injects, and rules replaced
//! while it runs; what the SDK sees through it, and what DynamoDB holds.

mod common;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use common::through_proxy::{assert_throttled, client_through, put, s, start_proxy, stored};
use dynagate_fault_proxy::{Capacity, ErrorKind, Rule, RuleSet};

#[tokio::test]
async fn forwards_a_put_and_a_get_unchanged() {
    let table = common::TestTable::create("proxy-forward").await;
    let proxy = start_proxy(vec![]).await;
    let client = client_through(&proxy).await;

    put(&client, table.name(), "alice")
        .await
        .expect("put through the proxy");
    let item = client
        .get_item()
        .table_name(table.name())
        .key("pk", s("alice"))
        .send()
        .await
        .expect("get through the proxy")
        .item
        .expect("the item is returned");
    assert_eq!(item.get("v"), Some(&s("x")));
    assert!(stored(&table, "alice").await, "the write reached DynamoDB");

    let stats = proxy.stats();
    let puts = stats.operation(table.name(), "PutItem");
    assert_eq!((puts.requests, puts.forwarded), (1, 1));
    assert_eq!(puts.write_units, 1.0);
    let gets = stats.operation(table.name(), "GetItem");
    assert_eq!((gets.requests, gets.forwarded), (1, 1));
    assert_eq!(
        gets.read_units, 0.5,
        "eventually consistent read of a small item"
    );
    proxy.shutdown().await;
    table.delete().await;
}

#[tokio::test]
async fn injected_internal_server_error_never_reaches_dynamodb() {
    let table = common::TestTable::create("proxy-500").await;
    let proxy = start_proxy(vec![
        Rule::new(table.name(), "PutItem").with_error(ErrorKind::InternalServerError, 1.0),
    ])
    .await;
    let client = client_through(&proxy).await;

    let error = put(&client, table.name(), "ghost")
        .await
        .expect_err("injected error");
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(500));
    assert!(
        error
            .as_service_error()
            .is_some_and(PutItemError::is_internal_server_error),
        "{error:?}"
    );
    assert!(!stored(&table, "ghost").await, "nothing was forwarded");

    let puts = proxy.stats().operation(table.name(), "PutItem");
    assert_eq!(puts.injected.get("internal_server_error"), Some(&1));
    assert_eq!(puts.forwarded, 0);
    proxy.shutdown().await;
    table.delete().await;
}

#[tokio::test]
async fn every_injected_kind_reaches_the_sdk_with_its_status_and_code() {
    let table = common::TestTable::create("proxy-kinds").await;
    let proxy = start_proxy(vec![]).await;
    let client = client_through(&proxy).await;
    let cases = [
        (
            ErrorKind::ProvisionedThroughputExceeded,
            400,
            "ProvisionedThroughputExceededException",
        ),
        (ErrorKind::Throttling, 400, "ThrottlingException"),
        (ErrorKind::InternalServerError, 500, "InternalServerError"),
        (ErrorKind::ServiceUnavailable, 503, "ServiceUnavailable"),
    ];
    for (kind, status, code) in cases {
        proxy.set_rules(
            RuleSet::new(vec![Rule::new(table.name(), "*").with_error(kind, 1.0)]).unwrap(),
        );
        let error = put(&client, table.name(), "k").await.expect_err("injected");
        assert_eq!(
            error.raw_response().map(|r| r.status().as_u16()),
            Some(status),
            "{kind}"
        );
        assert_eq!(error.code(), Some(code), "{kind}: {error:?}");
        if kind == ErrorKind::ProvisionedThroughputExceeded {
            assert_throttled(
                &error,
                "TableWriteProvisionedThroughputExceeded",
                table.name(),
            );
        }
        if kind == ErrorKind::Throttling {
            assert!(
                error
                    .as_service_error()
                    .is_some_and(PutItemError::is_throttling_exception)
            );
        }
    }
    assert_eq!(
        proxy
            .stats()
            .operation(table.name(), "PutItem")
            .injected_total(),
        4
    );
    proxy.shutdown().await;
    table.delete().await;
}

#[tokio::test]
async fn a_dropped_response_fails_at_the_client_but_the_write_is_applied() {
    let table = common::TestTable::create("proxy-drop").await;
    let proxy = start_proxy(vec![
        Rule::new(table.name(), "PutItem").with_drop_response(1.0),
    ])
    .await;
    let client = client_through(&proxy).await;

    let error = put(&client, table.name(), "applied")
        .await
        .expect_err("no response");
    assert!(
        matches!(
            error,
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ),
        "a lost response, not a service error: {error:?}"
    );
    assert!(
        error
            .raw_response()
            .is_none_or(|r| r.status().as_u16() != 200)
    );
    assert!(
        stored(&table, "applied").await,
        "the write reached DynamoDB"
    );

    let puts = proxy.stats().operation(table.name(), "PutItem");
    assert_eq!((puts.forwarded, puts.dropped_responses), (1, 1));
    // Reads are never dropped.
    client
        .get_item()
        .table_name(table.name())
        .key("pk", s("applied"))
        .send()
        .await
        .expect("reads are answered");
    proxy.shutdown().await;
    table.delete().await;
}

#[tokio::test]
async fn rules_replaced_at_run_time_change_behaviour_at_once() {
    let table = common::TestTable::create("proxy-set-rules").await;
    let generous = Capacity::new(None, Some(1000)).with_initial_units(0, 1000);
    let proxy = start_proxy(vec![Rule::new(table.name(), "*").with_capacity(generous)]).await;
    let client = client_through(&proxy).await;
    for i in 0..5 {
        put(&client, table.name(), &format!("before-{i}"))
            .await
            .expect("generous capacity");
    }

    // Lower the table's capacity mid-run: the bank is cut to the new size
    // (1 WCU/s, 1 second of burst), so one write passes and the next does not.
    let scarce = Capacity::new(None, Some(1)).with_burst_seconds(1);
    proxy
        .set_rules(RuleSet::new(vec![Rule::new(table.name(), "*").with_capacity(scarce)]).unwrap());
    put(&client, table.name(), "after-0")
        .await
        .expect("the one banked unit");
    let error = put(&client, table.name(), "after-1")
        .await
        .expect_err("bank used up");
    assert_throttled(
        &error,
        "TableWriteProvisionedThroughputExceeded",
        table.name(),
    );

    // And errors can be switched on and off.
    proxy.set_rules(
        RuleSet::new(vec![
            Rule::new(table.name(), "*").with_error(ErrorKind::ServiceUnavailable, 1.0),
        ])
        .unwrap(),
    );
    let error = put(&client, table.name(), "after-2")
        .await
        .expect_err("injected 503");
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(503));
    proxy.set_rules(RuleSet::default());
    put(&client, table.name(), "after-3")
        .await
        .expect("no rules, no faults");
    assert_eq!(proxy.rules(), RuleSet::default());

    let puts = proxy.stats().operation(table.name(), "PutItem");
    assert_eq!(puts.requests, 9);
    assert_eq!(puts.forwarded, 7);
    assert_eq!(puts.throttled_total(), 1);
    assert_eq!(puts.injected.get("service_unavailable"), Some(&1));

    proxy.reset_stats();
    assert_eq!(proxy.stats().operation(table.name(), "PutItem").requests, 0);
    proxy.shutdown().await;
    table.delete().await;
}
