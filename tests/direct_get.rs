//! `ResilientClient::with_direct_get` against DynamoDB Local: the direct
//! path answers what the SDK answers (every kind of value, a missing item,
//! an error), through the same retries and classification (throttles the
//! fault proxy injects), with its capacity charged; and a recording proxy in
//! front proves which requests the SDK sent and which went direct (the SDK
//! sends `amz-sdk-invocation-id` on every request, the direct path does not).
//! `direct_get_errors.rs` holds the failures: each classified alike on both
//! paths.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::get_item::GetItemInput;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use common::{Seen, TestTable, recording_proxy};
use dynagate::retry::{ErrorKind, RetryPolicy};
use dynagate::{Direction, Operation, ResilientClient};
use dynagate_fault_proxy::{ErrorKind as Injected, Rule, RuleSet};

async fn direct_client(endpoint: &str, attempts: u32) -> ResilientClient {
    let policy = RetryPolicy::builder()
        .max_attempts(attempts)
        .deadline(Duration::from_secs(20))
        .seed(5)
        .build()
        .unwrap();
    ResilientClient::new(&common::sdk_config_via(endpoint).await, policy).with_direct_get()
}

fn get(table: &str, key: &str) -> GetItemInput {
    GetItemInput::builder()
        .table_name(table)
        .key("pk", AttributeValue::S(key.into()))
        .consistent_read(true)
        .build()
        .unwrap()
}

fn every_kind(key: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".into(), AttributeValue::S(key.into())),
        ("s".into(), AttributeValue::S("tëxt \"quoted\"\n".into())),
        ("n".into(), AttributeValue::N("-12.5".into())),
        (
            "b".into(),
            AttributeValue::B(Blob::new(vec![0, 1, 254, 255])),
        ),
        ("bool".into(), AttributeValue::Bool(false)),
        ("null".into(), AttributeValue::Null(true)),
        (
            "ss".into(),
            AttributeValue::Ss(vec!["a".into(), "b".into()]),
        ),
        (
            "ns".into(),
            AttributeValue::Ns(vec!["1".into(), "2".into()]),
        ),
        ("bs".into(), AttributeValue::Bs(vec![Blob::new(vec![7])])),
        (
            "m".into(),
            AttributeValue::M(HashMap::from([(
                "l".into(),
                AttributeValue::L(vec![
                    AttributeValue::N("3".into()),
                    AttributeValue::S("x".into()),
                ]),
            )])),
        ),
    ])
}

fn read(table: &str) -> Operation {
    Operation::read("GetItem", table)
}

#[tokio::test]
async fn after_the_first_read_of_a_table_reads_go_direct_and_answer_what_the_sdk_answers() {
    let table = TestTable::create("direct-get-kinds").await;
    let (url, seen) = recording_proxy(&common::dynamodb_endpoint()).await;
    let client = direct_client(&url, 3).await;
    let item = every_kind("every");
    client
        .sdk()
        .put_item()
        .table_name(table.name())
        .set_item(Some(item.clone()))
        .send()
        .await
        .unwrap();

    let first = client
        .get_item(read(table.name()), get(table.name(), "every"))
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        Seen { sdk: 1, direct: 0 },
        "the first read shows the way"
    );
    let second = client
        .get_item(read(table.name()), get(table.name(), "every"))
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        Seen { sdk: 1, direct: 1 },
        "the second goes direct"
    );
    assert_eq!(first.item(), Some(&item));
    assert_eq!(second.item(), first.item());

    let missing = client
        .get_item(read(table.name()), get(table.name(), "none"))
        .await
        .unwrap();
    assert!(missing.item().is_none());
    let projected = client
        .get_item(
            read(table.name()),
            GetItemInput::builder()
                .table_name(table.name())
                .key("pk", AttributeValue::S("every".into()))
                .projection_expression("#s, n")
                .expression_attribute_names("#s", "s")
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let projected = projected.item().unwrap();
    assert_eq!(projected.len(), 2, "{projected:?}");
    assert_eq!(projected["s"], item["s"]);
    assert_eq!(*seen.lock().unwrap(), Seen { sdk: 1, direct: 3 });
}

#[tokio::test]
async fn a_service_error_comes_back_as_the_sdks_with_its_code() {
    let table = TestTable::create("direct-get-errors").await;
    let (url, seen) = recording_proxy(&common::dynamodb_endpoint()).await;
    let client = direct_client(&url, 3).await;
    client
        .get_item(read(table.name()), get(table.name(), "a"))
        .await
        .unwrap();
    // A key of the wrong type: DynamoDB answers ValidationException, not retried.
    let wrong = GetItemInput::builder()
        .table_name(table.name())
        .key("pk", AttributeValue::N("1".into()))
        .build()
        .unwrap();
    let error = client
        .get_item(read(table.name()), wrong)
        .await
        .unwrap_err();
    assert_eq!(*seen.lock().unwrap(), Seen { sdk: 1, direct: 1 });
    assert_eq!(error.attempts(), 1, "{error}");
    assert_eq!(error.kind(), Some(&ErrorKind::Permanent), "{error}");
    let last = error.last_error().unwrap();
    assert_eq!(last.code(), Some("ValidationException"), "{last:?}");
    assert!(last.message().is_some_and(|m| !m.is_empty()), "{last:?}");
    assert_eq!(last.raw_response().map(|r| r.status().as_u16()), Some(400));
}

#[tokio::test]
async fn injected_throttles_on_the_direct_path_are_classified_and_retried() {
    let table = TestTable::create("direct-get-throttles").await;
    let proxy = common::fault_proxy(vec![], 3).await;
    let client = direct_client(&proxy.url(), 5).await;
    client
        .get_item(read(table.name()), get(table.name(), "a"))
        .await
        .unwrap();
    proxy.set_rules(
        RuleSet::new(vec![
            Rule::new(table.name(), "GetItem")
                .with_error(Injected::ProvisionedThroughputExceeded, 1.0)
                .with_error_limit(2),
        ])
        .unwrap(),
    );
    proxy.reset_stats();
    client
        .get_item(read(table.name()), get(table.name(), "a"))
        .await
        .unwrap();
    let stats = proxy.stats().operation(table.name(), "GetItem");
    assert_eq!(stats.injected_total(), 2, "{stats:?}");
    assert_eq!(stats.requests, 3, "{stats:?}");

    // Always throttled: one attempt, and the policy gives up with the
    // throttle's kind.
    proxy.set_rules(RuleSet::new(vec![]).unwrap());
    let once = direct_client(&proxy.url(), 1).await;
    once.get_item(read(table.name()), get(table.name(), "a"))
        .await
        .unwrap();
    proxy.set_rules(
        RuleSet::new(vec![
            Rule::new(table.name(), "GetItem")
                .with_error(Injected::ProvisionedThroughputExceeded, 1.0),
        ])
        .unwrap(),
    );
    let error = once
        .get_item(read(table.name()), get(table.name(), "a"))
        .await
        .unwrap_err();
    assert!(
        matches!(error.kind(), Some(ErrorKind::Throttling(_))),
        "{error}"
    );
    assert_eq!(
        error.last_error().and_then(|e| e.code()),
        Some("ProvisionedThroughputExceededException")
    );
}

#[tokio::test]
async fn a_direct_read_is_charged_what_dynamodb_reports() {
    let table = TestTable::create("direct-get-usage").await;
    let (url, seen) = recording_proxy(&common::dynamodb_endpoint()).await;
    let client = direct_client(&url, 3).await;
    client
        .sdk()
        .put_item()
        .table_name(table.name())
        .set_item(Some(every_kind("u")))
        .send()
        .await
        .unwrap();
    let (sdk_read, sdk_usage) =
        dynagate::usage::metered(client.get_item(read(table.name()), get(table.name(), "u"))).await;
    let (direct_read, direct_usage) =
        dynagate::usage::metered(client.get_item(read(table.name()), get(table.name(), "u"))).await;
    assert_eq!(*seen.lock().unwrap(), Seen { sdk: 1, direct: 1 });
    assert!(sdk_read.unwrap().item().is_some());
    assert!(direct_read.unwrap().item().is_some());
    let charged = sdk_usage.units(Direction::Read);
    assert!(
        charged > 0.0,
        "DynamoDB Local reports a strong read's units"
    );
    assert_eq!(direct_usage.units(Direction::Read), charged);
}

#[tokio::test]
async fn a_getitem_sent_through_call_shows_the_direct_path_nothing() {
    // `call` hands the caller the SDK client, and the caller may override its
    // configuration per call (another endpoint, other credentials): what such
    // a call resolved must not become every later read's.
    let table = TestTable::create("direct-get-call").await;
    let (url, seen) = recording_proxy(&common::dynamodb_endpoint()).await;
    let client = direct_client(&url, 3).await;
    client
        .call(read(table.name()), |sdk| {
            sdk.get_item()
                .table_name(table.name())
                .key("pk", AttributeValue::S("a".into()))
                .send()
        })
        .await
        .unwrap();
    client
        .get_item(read(table.name()), get(table.name(), "a"))
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        Seen { sdk: 2, direct: 0 },
        "the first get_item still through the SDK"
    );
    client
        .get_item(read(table.name()), get(table.name(), "a"))
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), Seen { sdk: 2, direct: 1 });
}
