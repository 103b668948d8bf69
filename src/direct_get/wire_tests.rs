use std::collections::HashMap;

use aws_sdk_dynamodb::operation::get_item::GetItemInput;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use serde_json::{Value, json};

use super::*;

fn every_kind() -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("s".into(), AttributeValue::S("tëxt \"quoted\"".into())),
        ("n".into(), AttributeValue::N("-12.5e3".into())),
        (
            "b".into(),
            AttributeValue::B(Blob::new(vec![0, 1, 254, 255])),
        ),
        ("bool".into(), AttributeValue::Bool(true)),
        ("null".into(), AttributeValue::Null(true)),
        (
            "ss".into(),
            AttributeValue::Ss(vec!["a".into(), "b".into()]),
        ),
        (
            "ns".into(),
            AttributeValue::Ns(vec!["1".into(), "2.5".into()]),
        ),
        (
            "bs".into(),
            AttributeValue::Bs(vec![Blob::new(vec![1]), Blob::new(vec![2, 3])]),
        ),
        (
            "m".into(),
            AttributeValue::M(HashMap::from([(
                "inner".into(),
                AttributeValue::L(vec![
                    AttributeValue::S("x".into()),
                    AttributeValue::Null(true),
                ]),
            )])),
        ),
        ("l".into(), AttributeValue::L(vec![])),
    ])
}

/// The wire form of `every_kind`, as the DynamoDB API reference's
/// `AttributeValue` shape spells it (binary values in base64).
fn every_kind_json() -> Value {
    json!({
        "s": {"S": "tëxt \"quoted\""},
        "n": {"N": "-12.5e3"},
        "b": {"B": "AAH+/w=="},
        "bool": {"BOOL": true},
        "null": {"NULL": true},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2.5"]},
        "bs": {"BS": ["AQ==", "AgM="]},
        "m": {"M": {"inner": {"L": [{"S": "x"}, {"NULL": true}]}}},
        "l": {"L": []}
    })
}

#[test]
fn a_request_carries_every_field_and_every_kind_of_value() {
    let input = GetItemInput::builder()
        .table_name("users")
        .set_key(Some(every_kind()))
        .consistent_read(true)
        .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
        .projection_expression("#n, s")
        .expression_attribute_names("#n", "name")
        .attributes_to_get("legacy")
        .build()
        .unwrap();
    let body: Value = serde_json::from_slice(&request_body(&input).unwrap()).unwrap();
    assert_eq!(
        body,
        json!({
            "TableName": "users",
            "Key": every_kind_json(),
            "ConsistentRead": true,
            "ReturnConsumedCapacity": "INDEXES",
            "ProjectionExpression": "#n, s",
            "ExpressionAttributeNames": {"#n": "name"},
            "AttributesToGet": ["legacy"]
        })
    );
}

#[test]
fn a_request_without_options_names_only_the_table_and_the_key() {
    let input = GetItemInput::builder()
        .table_name("users")
        .key("id", AttributeValue::S("ada".into()))
        .build()
        .unwrap();
    let body: Value = serde_json::from_slice(&request_body(&input).unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"TableName": "users", "Key": {"id": {"S": "ada"}}})
    );
}

#[test]
fn a_request_without_a_table_or_key_is_refused() {
    let no_table = GetItemInput::builder()
        .key("id", AttributeValue::S("ada".into()))
        .build()
        .unwrap();
    assert!(request_body(&no_table).is_err());
    let no_key = GetItemInput::builder().table_name("users").build().unwrap();
    assert!(request_body(&no_key).is_err());
}

#[test]
fn an_answer_gives_the_item_and_the_consumed_capacity() {
    let body = json!({
        "Item": every_kind_json(),
        "ConsumedCapacity": {
            "TableName": "users",
            "CapacityUnits": 1.5,
            "ReadCapacityUnits": 1.5,
            "Table": {"CapacityUnits": 0.5, "ReadCapacityUnits": 0.5},
            "GlobalSecondaryIndexes": {"by_email": {"CapacityUnits": 1.0}},
            "LocalSecondaryIndexes": {}
        }
    });
    let out = output(&serde_json::to_vec(&body).unwrap()).unwrap();
    assert_eq!(out.item(), Some(&every_kind()));
    let consumed = out.consumed_capacity().unwrap();
    assert_eq!(consumed.table_name(), Some("users"));
    assert_eq!(consumed.capacity_units(), Some(1.5));
    assert_eq!(consumed.read_capacity_units(), Some(1.5));
    assert_eq!(consumed.write_capacity_units(), None);
    assert_eq!(consumed.table().and_then(|t| t.capacity_units()), Some(0.5));
    let gsi = consumed.global_secondary_indexes().unwrap();
    assert_eq!(gsi["by_email"].capacity_units(), Some(1.0));
    assert!(consumed.local_secondary_indexes().unwrap().is_empty());
}

#[test]
fn an_answer_without_an_item_is_none() {
    let out = output(b"{}").unwrap();
    assert!(out.item().is_none());
    assert!(out.consumed_capacity().is_none());
}

#[test]
fn an_answer_that_is_not_dynamodb_json_is_an_error_not_a_panic() {
    for body in [
        &b"not json"[..],
        b"[]",
        br#"{"Item": {"a": {"S": 1}}}"#,
        br#"{"Item": {"a": {"S": "x", "N": "1"}}}"#,
        br#"{"Item": {"a": {"B": "%%%"}}}"#,
        br#"{"Item": {"a": {"Q": "x"}}}"#,
        br#"{"ConsumedCapacity": {"CapacityUnits": "1"}}"#,
    ] {
        assert!(output(body).is_err(), "{}", String::from_utf8_lossy(body));
    }
}

#[test]
fn an_error_code_is_read_as_the_sdk_reads_it() {
    // aws-sdk-dynamodb 1.136 src/json_errors.rs: the header first, then
    // `code`, then `__type`; the namespace before '#' and anything after ':' cut.
    let body = br#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}"#;
    let meta = error_metadata(None, body);
    assert_eq!(meta.code(), Some("ProvisionedThroughputExceededException"));
    assert_eq!(meta.message(), Some("slow down"));

    let meta = error_metadata(Some("ThrottlingException:http://internal"), b"{}");
    assert_eq!(meta.code(), Some("ThrottlingException"));

    let meta = error_metadata(None, br#"{"code":"A","__type":"ns#B","Message":"m"}"#);
    assert_eq!(meta.code(), Some("A"));
    assert_eq!(meta.message(), Some("m"));

    let meta = error_metadata(None, b"<html>bad gateway</html>");
    assert_eq!(meta.code(), None);
}
