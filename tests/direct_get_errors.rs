//! The direct GetItem path fails exactly as the SDK path does: for each
//! failure the fault proxy can make of a GetItem (throttles with and without
//! reasons, a bare 429, 5xx, a signature rejection with and without clock
//! skew, an attempt timeout; it loses only writes' answers), one client makes one attempt
//! through the SDK (the table's first read) and one direct, and both come
//! back with the same `ErrorKind` and error code. A recording proxy between
//! the client and the fault proxy proves which path each attempt took.

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::get_item::GetItemInput;
use aws_sdk_dynamodb::types::AttributeValue;
use common::{Seen, TestTable, recording_proxy};
use dynagate::retry::{ErrorKind, RetryPolicy};
use dynagate::{Operation, ResilientClient};
use dynagate_fault_proxy::{ErrorKind as Injected, InjectedReason, Latency, Rule, ThrottleReason};

fn get(table: &str) -> GetItemInput {
    GetItemInput::builder()
        .table_name(table)
        .key("pk", AttributeValue::S("k".into()))
        .build()
        .unwrap()
}

/// One attempt through the SDK, then one direct, under `rule`: both errors'
/// kinds and codes.
async fn both_paths(
    case: &str,
    table: &str,
    rule: Rule,
    timeouts: Option<TimeoutConfig>,
) -> [(Option<ErrorKind>, Option<String>); 2] {
    let proxy = common::fault_proxy(vec![rule], 9).await;
    let (url, seen) = recording_proxy(&proxy.url()).await;
    let mut config = common::sdk_config_via(&url).await;
    if let Some(timeouts) = timeouts {
        config = config.to_builder().timeout_config(timeouts).build();
    }
    let policy = RetryPolicy::builder()
        .max_attempts(1)
        .deadline(Duration::from_secs(20))
        .build()
        .unwrap();
    let client = ResilientClient::new(&config, policy).with_direct_get();
    let mut outcomes = Vec::new();
    for expected in [Seen { sdk: 1, direct: 0 }, Seen { sdk: 1, direct: 1 }] {
        let error = client
            .get_item(Operation::read("GetItem", table), get(table))
            .await
            .expect_err(case);
        assert_eq!(*seen.lock().unwrap(), expected, "{error}");
        assert_eq!(error.attempts(), 1, "{error}");
        let code = error.last_error().and_then(|e| e.code()).map(str::to_owned);
        outcomes.push((error.kind().cloned(), code));
    }
    [outcomes[0].clone(), outcomes[1].clone()]
}

#[tokio::test]
async fn every_failure_is_classified_alike_on_the_sdk_path_and_the_direct_path() {
    let table = TestTable::create("direct-get-failures").await;
    let name = table.name();
    let error = |kind| Rule::new(name, "GetItem").with_error(kind, 1.0);
    let hot_key = InjectedReason::new(ThrottleReason::TableReadKeyRangeThroughputExceeded);
    let cases: Vec<(&str, Rule, Option<TimeoutConfig>)> = vec![
        (
            "provisioned throughput",
            error(Injected::ProvisionedThroughputExceeded),
            None,
        ),
        (
            "hot key",
            error(Injected::ProvisionedThroughputExceeded).with_throttling_reasons(vec![hot_key]),
            None,
        ),
        ("throttling", error(Injected::Throttling), None),
        ("request limit", error(Injected::RequestLimitExceeded), None),
        ("bare 429", error(Injected::TooManyRequests), None),
        (
            "internal server error",
            error(Injected::InternalServerError),
            None,
        ),
        (
            "service unavailable",
            error(Injected::ServiceUnavailable),
            None,
        ),
        (
            "signature rejected, clock skewed",
            error(Injected::InvalidSignature).with_clock_skew_seconds(900),
            None,
        ),
        (
            "signature rejected, clock right",
            error(Injected::InvalidSignature).with_clock_skew_seconds(0),
            None,
        ),
        (
            "attempt timeout",
            Rule::new(name, "GetItem").with_latency(Latency {
                fixed_ms: 1_500,
                jitter_ms: 0,
            }),
            Some(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_millis(300))
                    .build(),
            ),
        ),
    ];
    for (case, rule, timeouts) in cases {
        let [sdk, direct] = both_paths(case, name, rule, timeouts).await;
        assert!(sdk.0.is_some(), "{case}: the SDK path's failure has a kind");
        assert_eq!(sdk, direct, "{case}: SDK path, then direct path");
    }
}
