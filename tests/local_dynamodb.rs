//! The local DynamoDB answers a client built the way dynagate builds it.

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::TestTable;

#[tokio::test]
async fn put_then_get_round_trips_an_item_through_dynamodb_local() {
    let table = TestTable::create_with_sort_key("roundtrip").await;
    let dynamodb = table.client();

    dynamodb
        .put_item()
        .table_name(table.name())
        .item("pk", AttributeValue::S("user#ada".into()))
        .item("sk", AttributeValue::S("profile".into()))
        .item("name", AttributeValue::S("Ada Lovelace".into()))
        .item("logins", AttributeValue::N("3".into()))
        .item(
            "tags",
            AttributeValue::Ss(vec!["admin".into(), "math".into()]),
        )
        .send()
        .await
        .expect("PutItem");

    let stored = dynamodb
        .get_item()
        .table_name(table.name())
        .key("pk", AttributeValue::S("user#ada".into()))
        .key("sk", AttributeValue::S("profile".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
        .expect("the item just written is there");

    assert_eq!(stored["name"], AttributeValue::S("Ada Lovelace".into()));
    assert_eq!(stored["logins"], AttributeValue::N("3".into()));
    let mut tags = stored["tags"].as_ss().expect("a string set").clone();
    tags.sort();
    assert_eq!(tags, ["admin", "math"]);
    assert_eq!(stored.len(), 5, "nothing added, nothing lost: {stored:?}");

    let other_sort_key = dynamodb
        .get_item()
        .table_name(table.name())
        .key("pk", AttributeValue::S("user#ada".into()))
        .key("sk", AttributeValue::S("settings".into()))
        .send()
        .await
        .expect("GetItem of a missing item");
    assert!(other_sort_key.item.is_none());

    table.delete().await;
}

#[tokio::test]
async fn a_conditional_put_on_an_existing_item_fails_as_conditional_check_failed() {
    let table = TestTable::create("condition").await;
    let put = || {
        table
            .client()
            .put_item()
            .table_name(table.name())
            .item("pk", AttributeValue::S("only-once".into()))
            .condition_expression("attribute_not_exists(pk)")
    };
    put().send().await.expect("first put creates the item");

    let error = put()
        .send()
        .await
        .expect_err("second put must fail its condition");
    assert!(
        error
            .into_service_error()
            .is_conditional_check_failed_exception(),
        "DynamoDB Local answers a failed condition with ConditionalCheckFailedException"
    );
    table.delete().await;
}

#[tokio::test]
async fn a_deleted_test_table_is_gone() {
    let table = TestTable::create("cleanup").await;
    let client = table.client().clone();
    let name = table.name().to_owned();
    table.delete().await;

    let error = client
        .describe_table()
        .table_name(&name)
        .send()
        .await
        .expect_err("the table was deleted");
    assert!(error.into_service_error().is_resource_not_found_exception());
}

#[tokio::test]
async fn a_test_table_dropped_without_delete_is_deleted_too() {
    let table = TestTable::create("dropped").await;
    let client = table.client().clone();
    let name = table.name().to_owned();
    drop(table); // what happens when a test panics before its cleanup

    let error = client
        .describe_table()
        .table_name(&name)
        .send()
        .await
        .expect_err("dropping the guard deleted the table");
    assert!(error.into_service_error().is_resource_not_found_exception());
}
