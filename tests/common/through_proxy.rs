//! An SDK client talking to DynamoDB through the fault proxy, and checks of
//! what DynamoDB itself holds, shared by the `fault_proxy_*` test binaries.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use dynagate_fault_proxy::{Rule, RunningProxy};

use super::TestTable;

/// A proxy on a free loopback port in front of the tests' DynamoDB, seeded.
pub async fn start_proxy(rules: Vec<Rule>) -> RunningProxy {
    super::fault_proxy(rules, 20_240_101).await
}

/// An SDK client (retries off, as dynagate builds it) that talks through the proxy.
pub async fn client_through(proxy: &RunningProxy) -> Client {
    dynagate::sdk_client(&super::sdk_config_via(&proxy.url()).await)
}

/// A string attribute value.
pub fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// Puts item `pk` through `client`.
pub async fn put(client: &Client, table: &str, pk: &str) -> Result<(), SdkError<PutItemError>> {
    client
        .put_item()
        .table_name(table)
        .item("pk", s(pk))
        .item("v", s("x"))
        .send()
        .await
        .map(|_| ())
}

/// Whether DynamoDB itself (not through the proxy) holds the item `pk`.
pub async fn stored(table: &TestTable, pk: &str) -> bool {
    table
        .client()
        .get_item()
        .table_name(table.name())
        .key("pk", s(pk))
        .consistent_read(true)
        .send()
        .await
        .expect("direct GetItem")
        .item
        .is_some()
}

/// How many items DynamoDB itself holds in `table`.
pub async fn stored_count(table: &TestTable) -> i32 {
    table
        .client()
        .scan()
        .table_name(table.name())
        .select(aws_sdk_dynamodb::types::Select::Count)
        .consistent_read(true)
        .send()
        .await
        .expect("direct Scan")
        .count
}

fn table_arn(table: &str) -> String {
    let region = std::env::var("AWS_REGION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "us-east-1".to_owned());
    format!("arn:aws:dynamodb:{region}:000000000000:table/{table}")
}

/// Asserts `error` is the ProvisionedThroughputExceededException DynamoDB sends.
pub fn assert_throttled(error: &SdkError<PutItemError>, reason: &str, table: &str) {
    let Some(PutItemError::ProvisionedThroughputExceededException(e)) = error.as_service_error()
    else {
        panic!("expected ProvisionedThroughputExceededException, got {error:?}");
    };
    let reasons = e.throttling_reasons();
    assert_eq!(reasons.len(), 1, "{e:?}");
    assert_eq!(reasons[0].reason(), Some(reason));
    assert_eq!(reasons[0].resource(), Some(table_arn(table).as_str()));
    assert_eq!(
        e.message(),
        Some(
            "The level of configured provisioned throughput for the table was exceeded. \
             Consider increasing your provisioning level with the UpdateTable API."
        )
    );
    let status = error.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(400));
}
