//! Each classification of `dynagate::retry::classify`, driven by the answer
//! the fault proxy injects in front of DynamoDB Local, and what the retry
//! loop then does: contention retried without a rate cut, hot-key throttles
//! told from table-wide ones, a bare 429 and the limit errors retried as
//! throttling, signature errors retried only when the `Date` shows clock skew.

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use common::TestTable;
use common::capacity::{gate, put};
use dynagate::capacity::{CapacityGate, TableCapacity, Throughput};
use dynagate::retry::{ErrorKind, GiveUp, RetryError, RetryPolicy, ThrottleCode, Transient};
use dynagate::{Direction, ResilientClient};
use dynagate_fault_proxy::{
    CancellationCode, ErrorKind as Injected, InjectedReason, Rule, RunningProxy, ThrottleReason,
};
use redis::aio::ConnectionManager;

/// Injected this many times before the proxy lets the request through.
const INJECTED: u64 = 2;

/// A client through `proxy` that makes at most `attempts` attempts.
async fn client(proxy: &RunningProxy, attempts: u32) -> ResilientClient {
    let policy = RetryPolicy::builder()
        .max_attempts(attempts)
        .deadline(Duration::from_secs(20))
        .seed(11)
        .build()
        .unwrap();
    ResilientClient::new(&common::sdk_config_via(&proxy.url()).await, policy)
}

/// A gate that believes `table` has 100 WCU/s.
fn gate_for(redis: &ConnectionManager, prefix: &str, table: &str) -> CapacityGate {
    let capacity = TableCapacity::provisioned(
        table,
        Throughput {
            read: 100.0,
            write: 100.0,
        },
    );
    gate(redis, prefix, capacity, Duration::from_secs(1))
}

/// `kind` on every PutItem of `table`, at most `limit` times.
fn rule(table: &str, kind: Injected, limit: Option<u64>) -> Rule {
    let rule = Rule::new(table, "PutItem").with_error(kind, 1.0);
    match limit {
        Some(limit) => rule.with_error_limit(limit),
        None => rule,
    }
}

/// One attempt only: what the classifier made of the injected answer.
async fn classified(proxy: &RunningProxy, table: &str, rule: Rule) -> RetryError<PutItemError> {
    proxy.set_rules(dynagate_fault_proxy::RuleSet::new(vec![rule]).unwrap());
    let once = client(proxy, 1).await;
    let error = put(&once, table, "once", 10, 1.0)
        .await
        .expect_err("the injected error is the only answer");
    assert_eq!(error.attempts(), 1, "{error}");
    error
}

/// With `INJECTED` errors then a pass: the call succeeds on its third
/// attempt, and the requests the proxy saw prove it.
async fn retried_to_success(
    proxy: &RunningProxy,
    client: &ResilientClient,
    table: &str,
    key: &str,
) {
    proxy.reset_stats();
    put(client, table, key, 10, 1.0)
        .await
        .unwrap_or_else(|e| panic!("retried to success: {e}"));
    let stats = proxy.stats().operation(table, "PutItem");
    assert_eq!(stats.injected_total(), INJECTED, "{stats:?}");
    assert_eq!(stats.requests, INJECTED + 1, "{stats:?}");
    assert_eq!(stats.forwarded, 1, "{stats:?}");
}

async fn write_cuts(gate: &CapacityGate, table: &str) -> u64 {
    let state = gate.state(table, Direction::Write).await.unwrap().unwrap();
    state.cuts
}

#[tokio::test]
async fn contention_is_retried_without_cutting_the_rate() {
    let table = TestTable::create("classify-contention").await;
    let (redis, keys) = common::redis().await;
    let proxy = common::fault_proxy(vec![], 1).await;
    let cases = [
        (
            rule(table.name(), Injected::TransactionConflict, None),
            "TransactionConflictException",
        ),
        (
            rule(table.name(), Injected::TransactionInProgress, None),
            "TransactionInProgressException",
        ),
        (
            rule(table.name(), Injected::ReplicatedWriteConflict, None),
            "ReplicatedWriteConflictException",
        ),
        (
            rule(table.name(), Injected::TransactionCanceled, None).with_cancellation_reasons(
                vec![
                    CancellationCode::None,
                    CancellationCode::TransactionConflict,
                ],
            ),
            "TransactionCanceledException",
        ),
    ];
    for (i, (rule, code)) in cases.into_iter().enumerate() {
        let error = classified(&proxy, table.name(), rule.clone()).await;
        match error.kind() {
            Some(ErrorKind::Contention(contention)) => assert_eq!(contention.as_str(), code),
            other => panic!("{code}: expected contention, got {other:?}"),
        }
        assert_eq!(error.reason(), GiveUp::MaxAttempts, "retryable: {error}");
        assert!(!error.is_throttling());

        proxy.set_rules(
            dynagate_fault_proxy::RuleSet::new(vec![rule.with_error_limit(INJECTED)]).unwrap(),
        );
        let fleet = gate_for(&redis, &keys.key(&format!("contention{i}")), table.name());
        let gated = client(&proxy, 5).await.with_gate(fleet.clone());
        retried_to_success(&proxy, &gated, table.name(), &format!("c{i}")).await;
        assert_eq!(
            write_cuts(&fleet, table.name()).await,
            0,
            "{code} is not capacity"
        );
    }
    proxy.shutdown().await;
    keys.cleanup().await;
    table.delete().await;
}

#[tokio::test]
async fn an_on_demand_hot_key_is_told_from_a_table_wide_throttle() {
    let table = TestTable::create("classify-on-demand").await;
    let (redis, keys) = common::redis().await;
    let proxy = common::fault_proxy(vec![], 2).await;
    let throttle = |reason| {
        rule(table.name(), Injected::Throttling, None)
            .with_throttling_reasons(vec![InjectedReason::new(reason)])
    };

    let hot = throttle(ThrottleReason::TableWriteKeyRangeThroughputExceeded);
    let error = classified(&proxy, table.name(), hot.clone()).await;
    let Some(ErrorKind::Throttling(t)) = error.kind() else {
        panic!("expected throttling: {error}");
    };
    assert_eq!(t.code(), ThrottleCode::Throttling);
    assert!(t.is_hot_key(), "throttlingReasons read: {t:?}");
    assert_eq!(
        t.reasons()[0].reason,
        "TableWriteKeyRangeThroughputExceeded"
    );

    let wide = throttle(ThrottleReason::TableWriteMaxOnDemandThroughputExceeded);
    let error = classified(&proxy, table.name(), wide.clone()).await;
    let Some(ErrorKind::Throttling(t)) = error.kind() else {
        panic!("expected throttling: {error}");
    };
    assert!(!t.is_hot_key(), "{t:?}");

    // Through a gate: the hot key is retried to success without touching the
    // table's rate; the table-wide throttle cuts it.
    let hot_gate = gate_for(&redis, &keys.key("hot"), table.name());
    proxy.set_rules(
        dynagate_fault_proxy::RuleSet::new(vec![hot.with_error_limit(INJECTED)]).unwrap(),
    );
    let gated = client(&proxy, 5).await.with_gate(hot_gate.clone());
    retried_to_success(&proxy, &gated, table.name(), "hot").await;
    assert_eq!(
        write_cuts(&hot_gate, table.name()).await,
        0,
        "a hot key only"
    );

    let wide_gate = gate_for(&redis, &keys.key("wide"), table.name());
    proxy.set_rules(
        dynagate_fault_proxy::RuleSet::new(vec![wide.with_error_limit(INJECTED)]).unwrap(),
    );
    let gated = client(&proxy, 5).await.with_gate(wide_gate.clone());
    retried_to_success(&proxy, &gated, table.name(), "wide").await;
    assert!(
        write_cuts(&wide_gate, table.name()).await >= 1,
        "table-wide: cut"
    );

    proxy.shutdown().await;
    keys.cleanup().await;
    table.delete().await;
}

#[tokio::test]
async fn every_throttling_reason_reaches_the_classifier() {
    let table = TestTable::create("classify-reasons").await;
    let proxy = common::fault_proxy(vec![], 3).await;
    let region = std::env::var("AWS_REGION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "us-east-1".to_owned());
    let arn = format!(
        "arn:aws:dynamodb:{region}:000000000000:table/{}",
        table.name()
    );
    for reason in ThrottleReason::ALL {
        let (injected, resource) = if reason.is_index() {
            (
                InjectedReason::on_index(reason, "gsi"),
                format!("{arn}/index/gsi"),
            )
        } else {
            (InjectedReason::new(reason), arn.clone())
        };
        let rule = rule(table.name(), Injected::ProvisionedThroughputExceeded, None)
            .with_throttling_reasons(vec![injected]);
        let error = classified(&proxy, table.name(), rule).await;
        let Some(ErrorKind::Throttling(t)) = error.kind() else {
            panic!("{reason}: expected throttling, got {error}");
        };
        assert_eq!(t.code(), ThrottleCode::ProvisionedThroughputExceeded);
        assert_eq!(t.reasons().len(), 1);
        assert_eq!(t.reasons()[0].reason, reason.as_str());
        assert_eq!(t.reasons()[0].resource.as_deref(), Some(resource.as_str()));
        let key_range = reason.as_str().contains("KeyRange");
        assert_eq!(t.is_hot_key(), key_range, "{reason}");
        assert_eq!(
            t.reasons()[0].is_read(),
            reason.as_str().contains("Read"),
            "{reason}"
        );
    }
    proxy.shutdown().await;
    table.delete().await;
}

#[tokio::test]
async fn a_bare_429_and_the_limit_errors_are_retried_as_throttling() {
    let table = TestTable::create("classify-limits").await;
    let proxy = common::fault_proxy(vec![], 4).await;
    let cases = [
        (Injected::TooManyRequests, ThrottleCode::TooManyRequests),
        (Injected::LimitExceeded, ThrottleCode::LimitExceeded),
        (
            Injected::RequestLimitExceeded,
            ThrottleCode::RequestLimitExceeded,
        ),
    ];
    for (i, (kind, code)) in cases.into_iter().enumerate() {
        let error = classified(&proxy, table.name(), rule(table.name(), kind, None)).await;
        let Some(ErrorKind::Throttling(t)) = error.kind() else {
            panic!("{kind}: expected throttling, got {error}");
        };
        assert_eq!(t.code(), code, "{kind}");
        assert_eq!(error.reason(), GiveUp::MaxAttempts, "retryable: {error}");
        if kind == Injected::RequestLimitExceeded {
            assert_eq!(t.reasons()[0].reason, "TableWriteAccountLimitExceeded");
        }
        let raw = error.last_error().and_then(|e| e.raw_response()).unwrap();
        let status = if kind == Injected::TooManyRequests {
            429
        } else {
            400
        };
        assert_eq!(raw.status().as_u16(), status, "{kind}");

        proxy.set_rules(
            dynagate_fault_proxy::RuleSet::new(vec![rule(table.name(), kind, Some(INJECTED))])
                .unwrap(),
        );
        let retrying = client(&proxy, 5).await;
        retried_to_success(&proxy, &retrying, table.name(), &format!("l{i}")).await;
    }
    proxy.shutdown().await;
    table.delete().await;
}

#[tokio::test]
async fn a_signature_error_is_retried_only_when_the_date_shows_clock_skew() {
    let table = TestTable::create("classify-skew").await;
    let proxy = common::fault_proxy(vec![], 5).await;
    let skewed = |seconds, limit| {
        rule(table.name(), Injected::InvalidSignature, limit).with_clock_skew_seconds(seconds)
    };

    for seconds in [600, -600] {
        let error = classified(&proxy, table.name(), skewed(seconds, None)).await;
        assert_eq!(
            error.kind(),
            Some(&ErrorKind::Transient(Transient::ClockSkew)),
            "skewed by {seconds} s: {error}"
        );
        let date = error
            .last_error()
            .and_then(|e| e.raw_response())
            .and_then(|r| r.headers().get("date"))
            .expect("a Date header")
            .to_owned();
        assert!(date.ends_with(" GMT"), "{date}");
    }

    // Ten minutes: retried, and the attempt after the skew passes.
    proxy.set_rules(dynagate_fault_proxy::RuleSet::new(vec![skewed(600, Some(INJECTED))]).unwrap());
    let retrying = client(&proxy, 5).await;
    retried_to_success(&proxy, &retrying, table.name(), "skewed").await;

    // One minute is within the window: a real signature error, one attempt.
    proxy.set_rules(dynagate_fault_proxy::RuleSet::new(vec![skewed(60, None)]).unwrap());
    proxy.reset_stats();
    let error = put(&retrying, table.name(), "bad-signature", 10, 1.0)
        .await
        .expect_err("a signature mismatch is final");
    assert_eq!(error.kind(), Some(&ErrorKind::Permanent), "{error}");
    assert_eq!(error.reason(), GiveUp::NotRetryable);
    assert_eq!(error.attempts(), 1);
    assert_eq!(proxy.stats().operation(table.name(), "PutItem").requests, 1);

    proxy.shutdown().await;
    table.delete().await;
}

#[tokio::test]
async fn proxied_and_injected_answers_carry_a_date() {
    let table = TestTable::create("classify-date").await;
    // The first put is injected; the second is DynamoDB Local's own answer
    // (a failed condition), passed through.
    let proxy = common::fault_proxy(
        vec![rule(table.name(), Injected::TransactionConflict, Some(1))],
        6,
    )
    .await;
    let once = client(&proxy, 1).await;
    let mut dates = Vec::new();
    for _ in 0..2 {
        let name = table.name().to_owned();
        let error = once
            .call(
                dynagate::Operation::write("PutItem", &name).idempotent(),
                |sdk| {
                    sdk.put_item()
                        .table_name(&name)
                        .item("pk", aws_sdk_dynamodb::types::AttributeValue::S("d".into()))
                        .condition_expression("attribute_exists(pk)")
                        .send()
                },
            )
            .await
            .expect_err("both fail");
        let raw = error.last_error().and_then(|e| e.raw_response()).unwrap();
        let date = raw.headers().get("date").expect("a Date").to_owned();
        let parsed = aws_smithy_types::DateTime::from_str(
            &date,
            aws_smithy_types::date_time::Format::HttpDate,
        )
        .unwrap_or_else(|e| panic!("{date:?} is not an HTTP date: {e}"));
        let now = aws_smithy_types::DateTime::from(std::time::SystemTime::now());
        assert!((now.secs() - parsed.secs()).abs() < 60, "{date}");
        dates.push(error.kind().cloned());
    }
    assert!(
        matches!(dates[0], Some(ErrorKind::Contention(_))),
        "{dates:?}"
    );
    assert_eq!(dates[1], Some(ErrorKind::Conflict), "{dates:?}");
    proxy.shutdown().await;
    table.delete().await;
}
