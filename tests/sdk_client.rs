//! `dynagate::sdk_client` makes exactly one attempt per call.
//!
//! The endpoint is a scripted server on loopback answering every request with
//! DynamoDB's wire error for an internal failure (HTTP 500,
//! `InternalServerError`), which the SDK's standard mode retries. The test is
//! about how many requests the client sends, so it counts them at the socket.

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use common::wire::{Reply, ScriptedEndpoint, sdk_config};

async fn get_once(
    client: &aws_sdk_dynamodb::Client,
) -> aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::get_item::GetItemError> {
    client
        .get_item()
        .table_name("users")
        .key("user_id", AttributeValue::S("ada".into()))
        .send()
        .await
        .expect_err("the endpoint fails every request")
}

#[tokio::test]
async fn dynagate_client_sends_one_request_where_the_sdk_standard_mode_retries() {
    // Fast SDK backoff, so the baseline's retries take milliseconds.
    let retrying = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(1))
        .with_max_backoff(Duration::from_millis(5));

    let baseline = ScriptedEndpoint::start(vec![], Reply::internal_error()).await;
    let sdk_default = aws_sdk_dynamodb::Client::new(&sdk_config(&baseline.url, retrying.clone()));
    get_once(&sdk_default).await;
    assert_eq!(
        baseline.requests(),
        3,
        "the SDK's standard mode retries InternalServerError: the counter sees every attempt"
    );

    let endpoint = ScriptedEndpoint::start(vec![], Reply::internal_error()).await;
    let dynagate = dynagate::sdk_client(&sdk_config(&endpoint.url, retrying));
    let error = get_once(&dynagate).await;
    assert_eq!(
        endpoint.requests(),
        1,
        "dynagate's client never retries on its own"
    );
    assert!(
        error.into_service_error().is_internal_server_error(),
        "the one attempt's error reaches the caller as DynamoDB's InternalServerError"
    );
}
