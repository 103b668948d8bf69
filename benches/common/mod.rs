//! What the benchmark programs share: DynamoDB Local's address and
//! credentials, a table to write to, settings from the environment, the
//! write the throttling benches offer and the plain-SDK baselines they offer
//! it through, CPU time from `/proc`, and the result file each bench writes.
#![allow(dead_code)] // each bench uses a part

pub mod cpu;
pub mod results;
pub mod sdk_baseline;
pub mod writer;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{Credentials, Region, SharedCredentialsProvider};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};

/// A whole-number setting from the environment, or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// DynamoDB Local's endpoint: `AWS_ENDPOINT_URL`, else the local stack's.
pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:8000".into())
}

/// An AWS configuration for `endpoint` with the local stack's dummy credentials.
pub fn local_config(endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "dynagatelocal",
            "dynagatelocal",
            None,
            None,
            "bench",
        )))
        .build()
}

/// Creates an on-demand table whose string partition key is `pk`.
pub async fn create_table(admin: &Client, name: &str) {
    let definition = AttributeDefinition::builder()
        .attribute_name("pk")
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("attribute definition");
    let key = KeySchemaElement::builder()
        .attribute_name("pk")
        .key_type(KeyType::Hash)
        .build()
        .expect("key schema");
    admin
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(definition)
        .key_schema(key)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "creating {name} at {}: {e:?}; start DynamoDB Local with `stack/stack.sh start dynamodb`",
                endpoint()
            )
        });
}

/// Puts `items` items of about 200 bytes into `table` (created by
/// [`create_table`]): partition keys `item-0` to `item-{items - 1}`, each
/// with a `payload` string, for benches that read or overwrite them.
pub async fn seed_items(admin: &Client, table: &str, items: u64) {
    let payload = AttributeValue::S("x".repeat(200));
    for i in 0..items {
        admin
            .put_item()
            .table_name(table)
            .item("pk", AttributeValue::S(format!("item-{i}")))
            .item("payload", payload.clone())
            .send()
            .await
            .expect("seeding the table");
    }
}
