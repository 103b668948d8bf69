//! A table for the Query and Scan tests: `pk`/`sk` strings, a global index
//! on `email`, a local index on `size`, 30 rows in partition `p` and 5 in
//! `q`, and a repository over it that declares both indexes.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, GlobalSecondaryIndex, KeyType as DdbKeyType, LocalSecondaryIndex,
    Projection, ProjectionType, ScalarAttributeType,
};
use dynagate::ResilientClient;
use dynagate::repository::{CursorKeys, Index, KeySchema, KeyType, Repository, WriteToken};
use dynagate::retry::RetryPolicy;
use serde::{Deserialize, Serialize};

use super::{TestTable, key, sdk_config, string_attribute};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub pk: String,
    pub sk: String,
    // `name`, `status` and `size` are DynamoDB reserved words.
    pub name: String,
    pub status: String,
    pub size: i64,
    pub email: String,
    #[serde(default)]
    pub payload: String,
}

pub fn row(pk: &str, i: usize, payload: usize) -> Row {
    Row {
        pk: pk.to_owned(),
        sk: format!("a{i:02}"),
        name: format!("n{i}"),
        status: if i.is_multiple_of(3) { "gone" } else { "live" }.to_owned(),
        size: i as i64,
        email: format!("u{i}@{pk}.example"),
        payload: "x".repeat(payload),
    }
}

pub fn number(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::N)
        .build()
        .unwrap()
}

pub fn all_projected() -> Projection {
    Projection::builder()
        .projection_type(ProjectionType::All)
        .build()
}

/// `pk`/`sk` strings, a global index on `email`, a local index on `size`.
pub async fn indexed_table(test: &str) -> TestTable {
    TestTable::create_shaped(test, |request| {
        request
            .attribute_definitions(string_attribute("pk"))
            .attribute_definitions(string_attribute("sk"))
            .attribute_definitions(string_attribute("email"))
            .attribute_definitions(number("size"))
            .key_schema(key("pk", DdbKeyType::Hash))
            .key_schema(key("sk", DdbKeyType::Range))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name("by_email")
                    .key_schema(key("email", DdbKeyType::Hash))
                    .projection(all_projected())
                    .build()
                    .unwrap(),
            )
            .local_secondary_indexes(
                LocalSecondaryIndex::builder()
                    .index_name("by_size")
                    .key_schema(key("pk", DdbKeyType::Hash))
                    .key_schema(key("size", DdbKeyType::Range))
                    .projection(all_projected())
                    .build()
                    .unwrap(),
            )
    })
    .await
}

pub async fn client() -> ResilientClient {
    ResilientClient::new(&sdk_config().await, RetryPolicy::default())
}

/// A client whose every call would fail: what it refuses, it refused
/// before calling.
pub async fn dead_client() -> ResilientClient {
    let config = super::sdk_config_via("http://127.0.0.1:9").await;
    let policy = RetryPolicy::builder()
        .deadline(Duration::from_millis(300))
        .build()
        .unwrap();
    ResilientClient::new(&config, policy)
}

pub fn keys() -> CursorKeys {
    CursorKeys::new([[7u8; 32]]).unwrap()
}

pub fn repository(client: ResilientClient, table: &TestTable) -> Repository<Row> {
    Repository::new(
        client,
        table.name(),
        KeySchema::partition("pk", KeyType::String).with_sort("sk", KeyType::String),
    )
    .with_index(Index::global(
        "by_email",
        KeySchema::partition("email", KeyType::String),
    ))
    .with_index(Index::local("by_size", "size", KeyType::Number))
    .with_cursor_keys(keys())
}

/// 30 rows in partition `p`, 5 in `q`.
pub async fn filled(test: &str, payload: usize) -> (TestTable, Repository<Row>) {
    let table = indexed_table(test).await;
    let rows = repository(client().await, &table);
    for i in 0..30 {
        rows.create(&row("p", i, payload), &WriteToken::generate())
            .await
            .unwrap();
    }
    for i in 0..5 {
        rows.create(&row("q", i, payload), &WriteToken::generate())
            .await
            .unwrap();
    }
    (table, rows)
}

pub fn sort_keys(rows: &[Row]) -> Vec<String> {
    rows.iter().map(|r| r.sk.clone()).collect()
}

pub fn range(from: usize, to: usize) -> Vec<String> {
    (from..to).map(|i| format!("a{i:02}")).collect()
}
