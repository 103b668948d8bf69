//! `ResilientClient` end to end: the retry loop over the SDK's real HTTP stack,
//! against wire answers DynamoDB sends (scripted on loopback), dropped and hung
//! connections, a refused port, and DynamoDB Local.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use common::wire::{Reply, ScriptedEndpoint, sdk_config};
use dynagate::retry::{Ambiguity, Backoff, ErrorKind, RetryBudget, ThrottleCode, Transient};
use dynagate::retry::{GiveUp, RetryError, RetryPolicy};
use dynagate::{Operation, ResilientClient};

const MS: Duration = Duration::from_millis(1);

fn fast_policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(max_attempts)
        .backoff(
            Backoff::builder()
                .throttle_base(2 * MS)
                .transient_base(MS)
                .cap(10 * MS)
                .build()
                .unwrap(),
        )
        .budget(Arc::new(RetryBudget::unlimited()))
        .deadline(Duration::from_secs(20))
        .seed(1)
        .build()
        .unwrap()
}

fn client(config: &SdkConfig, max_attempts: u32) -> ResilientClient {
    ResilientClient::new(config, fast_policy(max_attempts))
}

fn scripted(url: &str) -> SdkConfig {
    // The SDK is asked for 5 attempts to show that dynagate turns them off.
    sdk_config(url, RetryConfig::standard().with_max_attempts(5))
}

async fn get_user(
    dynamodb: &ResilientClient,
    operation: Operation,
) -> Result<GetItemOutput, RetryError<aws_sdk_dynamodb::operation::get_item::GetItemError>> {
    dynamodb
        .call(operation, |sdk| {
            sdk.get_item()
                .table_name("users")
                .key("user_id", AttributeValue::S("ada".into()))
                .send()
        })
        .await
}

async fn put_user(
    dynamodb: &ResilientClient,
    operation: Operation,
) -> Result<(), RetryError<aws_sdk_dynamodb::operation::put_item::PutItemError>> {
    dynamodb
        .call(operation, |sdk| {
            sdk.put_item()
                .table_name("users")
                .item("user_id", AttributeValue::S("ada".into()))
                .send()
        })
        .await
        .map(|_| ())
}

const ITEM: &str = r#"{"Item":{"user_id":{"S":"ada"},"name":{"S":"Ada"}}}"#;

#[tokio::test]
async fn throttled_answers_are_retried_until_dynamodb_accepts() {
    let endpoint = ScriptedEndpoint::start(
        vec![
            Reply::throttled("TableReadProvisionedThroughputExceeded"),
            Reply::error(400, "ThrottlingException", ""),
        ],
        Reply::ok(ITEM),
    )
    .await;
    let dynamodb = client(&scripted(&endpoint.url), 5);
    let output = get_user(&dynamodb, Operation::read("GetItem", "users"))
        .await
        .expect("succeeds on the third attempt");
    assert_eq!(
        output.item().and_then(|i| i.get("name")),
        Some(&AttributeValue::S("Ada".into()))
    );
    assert_eq!(endpoint.requests(), 3);
}

#[tokio::test]
async fn the_give_up_error_keeps_the_throttling_reasons_dynamodb_sent() {
    let endpoint = ScriptedEndpoint::start(
        vec![],
        Reply::throttled("TableWriteKeyRangeThroughputExceeded"),
    )
    .await;
    let dynamodb = client(&scripted(&endpoint.url), 3);
    let error = put_user(&dynamodb, Operation::write("PutItem", "users"))
        .await
        .expect_err("always throttled");

    assert_eq!(
        endpoint.requests(),
        3,
        "max attempts, and not one SDK retry more"
    );
    assert_eq!(error.attempts(), 3);
    assert_eq!(error.reason(), GiveUp::MaxAttempts);
    let Some(ErrorKind::Throttling(throttle)) = error.kind() else {
        panic!("{error}")
    };
    assert_eq!(throttle.code(), ThrottleCode::ProvisionedThroughputExceeded);
    assert_eq!(
        throttle.reasons()[0].reason,
        "TableWriteKeyRangeThroughputExceeded"
    );
    assert!(throttle.is_hot_key());
    assert!(error.retry_after().is_some());
    let message = error.to_string();
    assert!(
        message.contains("PutItem failed after 3 attempts"),
        "{message}"
    );
    assert!(
        message.contains("ProvisionedThroughputExceededException"),
        "{message}"
    );
    // The typed SDK error is still there for callers that match on it.
    let last = error.into_last_error().expect("an attempt was made");
    assert!(
        last.into_service_error()
            .is_provisioned_throughput_exceeded_exception()
    );
}

#[tokio::test]
async fn a_dropped_response_hands_a_plain_write_back_but_retries_an_idempotent_one() {
    let endpoint = ScriptedEndpoint::start(vec![Reply::Drop], Reply::ok("{}")).await;
    let dynamodb = client(&scripted(&endpoint.url), 5);
    let error = put_user(&dynamodb, Operation::write("PutItem", "users"))
        .await
        .expect_err("the connection dropped after the request was sent");
    assert_eq!(
        endpoint.requests(),
        1,
        "not retried: it may have been applied"
    );
    assert_eq!(error.reason(), GiveUp::MaybeApplied);
    assert_eq!(
        error.kind(),
        Some(&ErrorKind::Ambiguous(Ambiguity::ConnectionLost))
    );
    assert!(error.may_have_applied());

    let endpoint = ScriptedEndpoint::start(vec![Reply::Drop], Reply::ok("{}")).await;
    let dynamodb = client(&scripted(&endpoint.url), 5);
    put_user(&dynamodb, Operation::write("PutItem", "users").idempotent())
        .await
        .expect("an idempotent write is retried");
    assert_eq!(endpoint.requests(), 2);
}

#[tokio::test]
async fn a_hung_attempt_times_out_and_a_read_is_retried() {
    let endpoint = ScriptedEndpoint::start(vec![Reply::Hang], Reply::ok(ITEM)).await;
    let config = scripted(&endpoint.url)
        .to_builder()
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_millis(300))
                .build(),
        )
        .build();
    let dynamodb = client(&config, 3);
    get_user(&dynamodb, Operation::read("GetItem", "users"))
        .await
        .expect("the second attempt answers");
    assert_eq!(endpoint.requests(), 2);

    let endpoint = ScriptedEndpoint::start(vec![], Reply::Hang).await;
    let config = config.to_builder().endpoint_url(&endpoint.url).build();
    let dynamodb = client(&config, 3);
    let error = put_user(&dynamodb, Operation::write("PutItem", "users"))
        .await
        .expect_err("hangs forever");
    assert_eq!(
        error.kind(),
        Some(&ErrorKind::Ambiguous(Ambiguity::Timeout))
    );
    assert_eq!(error.reason(), GiveUp::MaybeApplied);
    assert_eq!(endpoint.requests(), 1);
}

#[tokio::test]
async fn a_refused_connection_is_retried_even_for_a_write_because_nothing_was_sent() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let dynamodb = client(&scripted(&format!("http://127.0.0.1:{port}")), 4);
    let error = put_user(&dynamodb, Operation::write("PutItem", "users"))
        .await
        .expect_err("nothing listens");
    assert_eq!(
        error.kind(),
        Some(&ErrorKind::Transient(Transient::ConnectFailed))
    );
    assert_eq!(error.attempts(), 4);
    assert_eq!(error.reason(), GiveUp::MaxAttempts);
    assert!(!error.may_have_applied());
}

#[tokio::test]
async fn a_server_error_is_retried_for_reads() {
    let endpoint = ScriptedEndpoint::start(
        vec![
            Reply::internal_error(),
            Reply::error(503, "ServiceUnavailable", ""),
        ],
        Reply::ok(ITEM),
    )
    .await;
    let dynamodb = client(&scripted(&endpoint.url), 5);
    get_user(&dynamodb, Operation::read("GetItem", "users"))
        .await
        .expect("third attempt");
    assert_eq!(endpoint.requests(), 3);
}

#[tokio::test]
async fn round_trip_through_dynamodb_local() {
    let table = common::TestTable::create("resilient").await;
    let dynamodb = ResilientClient::new(&common::sdk_config().await, RetryPolicy::default());
    let name = table.name().to_owned();
    dynamodb
        .call(Operation::write("PutItem", &name).idempotent(), |sdk| {
            sdk.put_item()
                .table_name(&name)
                .item("pk", AttributeValue::S("k1".into()))
                .item("n", AttributeValue::N("7".into()))
                .send()
        })
        .await
        .expect("PutItem");
    let item = dynamodb
        .call(Operation::read("GetItem", &name), |sdk| {
            sdk.get_item()
                .table_name(&name)
                .key("pk", AttributeValue::S("k1".into()))
                .consistent_read(true)
                .send()
        })
        .await
        .expect("GetItem")
        .item
        .expect("stored");
    assert_eq!(item["n"], AttributeValue::N("7".into()));

    // A permanent error from the real service: one attempt, typed, not retried.
    let error = dynamodb
        .call(Operation::read("GetItem", "no-such-table"), |sdk| {
            sdk.get_item()
                .table_name("no-such-table")
                .key("pk", AttributeValue::S("k1".into()))
                .send()
        })
        .await
        .expect_err("missing table");
    assert_eq!(error.attempts(), 1);
    assert_eq!(error.kind(), Some(&ErrorKind::Permanent));
    assert!(
        error
            .into_last_error()
            .unwrap()
            .into_service_error()
            .is_resource_not_found_exception()
    );
    table.delete().await;
}
