//! GetItem on the wire: DynamoDB's JSON protocol (`awsJson1_0`, target
//! `DynamoDB_20120810.GetItem`) for the request, the answer and its errors,
//! read and written into the SDK's own types so that everything after the
//! call (the retry classification, the repository's decoding) cannot tell
//! which path made it.
//!
//! The shapes follow the DynamoDB API reference ("GetItem", "AttributeValue",
//! "ConsumedCapacity"); the error parsing mirrors the SDK's generated
//! `aws-sdk-dynamodb` 1.136 `src/json_errors.rs`: the code comes from the
//! `x-amzn-errortype` header, else the body's `code`, else its `__type`, with
//! any namespace before `#` and anything after `:` cut off; the message from
//! `message`, `Message` or `errorMessage`.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::get_item::{GetItemInput, GetItemOutput};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, Capacity, ConsumedCapacity};
use aws_smithy_types::error::ErrorMetadata;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

/// The `X-Amz-Target` of GetItem.
pub(crate) const TARGET: &str = "DynamoDB_20120810.GetItem";
/// The content type of DynamoDB's JSON protocol.
pub(crate) const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// Why a request or an answer could not be put into or read from JSON.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct WireError(String);

fn wire_error(what: impl Into<String>) -> WireError {
    WireError(what.into())
}

/// The request body of `input`. A value the SDK does not know
/// (`AttributeValue::Unknown`, from a newer service model) is refused, as
/// the SDK's own serializer refuses it.
pub(crate) fn request_body(input: &GetItemInput) -> Result<Vec<u8>, WireError> {
    let mut body = Map::new();
    let table = input
        .table_name()
        .ok_or_else(|| wire_error("GetItem needs a table name"))?;
    body.insert("TableName".into(), Value::from(table));
    let key = input
        .key()
        .ok_or_else(|| wire_error("GetItem needs a key"))?;
    body.insert("Key".into(), attribute_map(key)?);
    if let Some(names) = &input.attributes_to_get {
        body.insert("AttributesToGet".into(), Value::from(names.to_vec()));
    }
    if let Some(consistent) = input.consistent_read() {
        body.insert("ConsistentRead".into(), Value::Bool(consistent));
    }
    if let Some(capacity) = input.return_consumed_capacity() {
        body.insert(
            "ReturnConsumedCapacity".into(),
            Value::from(capacity.as_str()),
        );
    }
    if let Some(projection) = input.projection_expression() {
        body.insert("ProjectionExpression".into(), Value::from(projection));
    }
    if let Some(names) = input.expression_attribute_names() {
        let names: Map<String, Value> = names
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        body.insert("ExpressionAttributeNames".into(), Value::Object(names));
    }
    serde_json::to_vec(&Value::Object(body)).map_err(|e| wire_error(e.to_string()))
}

fn attribute_map(map: &HashMap<String, AttributeValue>) -> Result<Value, WireError> {
    let mut out = Map::with_capacity(map.len());
    for (name, value) in map {
        out.insert(name.clone(), attribute(value)?);
    }
    Ok(Value::Object(out))
}

fn attribute(value: &AttributeValue) -> Result<Value, WireError> {
    let (tag, inner) = match value {
        AttributeValue::S(s) => ("S", Value::from(s.as_str())),
        AttributeValue::N(n) => ("N", Value::from(n.as_str())),
        AttributeValue::B(b) => ("B", Value::from(STANDARD.encode(b.as_ref()))),
        AttributeValue::Bool(b) => ("BOOL", Value::Bool(*b)),
        AttributeValue::Null(n) => ("NULL", Value::Bool(*n)),
        AttributeValue::Ss(v) => ("SS", Value::from(v.clone())),
        AttributeValue::Ns(v) => ("NS", Value::from(v.clone())),
        AttributeValue::Bs(v) => (
            "BS",
            Value::Array(
                v.iter()
                    .map(|b| Value::from(STANDARD.encode(b.as_ref())))
                    .collect(),
            ),
        ),
        AttributeValue::M(m) => ("M", attribute_map(m)?),
        AttributeValue::L(l) => (
            "L",
            Value::Array(l.iter().map(attribute).collect::<Result<_, _>>()?),
        ),
        _ => {
            return Err(wire_error(
                "an attribute value of a kind this SDK does not know",
            ));
        }
    };
    let mut one = Map::with_capacity(1);
    one.insert(tag.into(), inner);
    Ok(Value::Object(one))
}

/// A successful answer's body as the SDK's output.
pub(crate) fn output(body: &[u8]) -> Result<GetItemOutput, WireError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| wire_error(e.to_string()))?;
    let object = value
        .as_object()
        .ok_or_else(|| wire_error("GetItem answered something other than an object"))?;
    let item = match object.get("Item") {
        Some(Value::Null) | None => None,
        Some(item) => Some(read_map(item)?),
    };
    let consumed = match object.get("ConsumedCapacity") {
        Some(Value::Null) | None => None,
        Some(consumed) => Some(consumed_capacity(consumed)?),
    };
    Ok(GetItemOutput::builder()
        .set_item(item)
        .set_consumed_capacity(consumed)
        .build())
}

fn read_map(value: &Value) -> Result<HashMap<String, AttributeValue>, WireError> {
    let object = value
        .as_object()
        .ok_or_else(|| wire_error("an attribute map that is not an object"))?;
    object
        .iter()
        .map(|(name, value)| Ok((name.clone(), read_attribute(value)?)))
        .collect()
}

fn read_attribute(value: &Value) -> Result<AttributeValue, WireError> {
    let object = value
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| wire_error("an attribute value that is not an object of one member"))?;
    let (tag, inner) = object.iter().next().expect("one member");
    let text = || {
        inner
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| wire_error(format!("{tag} value that is not a string")))
    };
    let texts = || -> Result<Vec<String>, WireError> {
        inner
            .as_array()
            .ok_or_else(|| wire_error(format!("{tag} value that is not an array")))?
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| wire_error(format!("{tag} member that is not a string")))
            })
            .collect()
    };
    let blob = |s: &str| {
        STANDARD
            .decode(s)
            .map(Blob::new)
            .map_err(|e| wire_error(format!("binary value: {e}")))
    };
    let flag = || {
        inner
            .as_bool()
            .ok_or_else(|| wire_error(format!("{tag} value that is not a boolean")))
    };
    Ok(match tag.as_str() {
        "S" => AttributeValue::S(text()?),
        "N" => AttributeValue::N(text()?),
        "B" => AttributeValue::B(blob(&text()?)?),
        "BOOL" => AttributeValue::Bool(flag()?),
        "NULL" => AttributeValue::Null(flag()?),
        "SS" => AttributeValue::Ss(texts()?),
        "NS" => AttributeValue::Ns(texts()?),
        "BS" => AttributeValue::Bs(texts()?.iter().map(|s| blob(s)).collect::<Result<_, _>>()?),
        "M" => AttributeValue::M(read_map(inner)?),
        "L" => AttributeValue::L(
            inner
                .as_array()
                .ok_or_else(|| wire_error("L value that is not an array"))?
                .iter()
                .map(read_attribute)
                .collect::<Result<_, _>>()?,
        ),
        other => return Err(wire_error(format!("an attribute value of kind {other}"))),
    })
}

fn consumed_capacity(value: &Value) -> Result<ConsumedCapacity, WireError> {
    let object = value
        .as_object()
        .ok_or_else(|| wire_error("ConsumedCapacity that is not an object"))?;
    let indexes = |name: &str| -> Result<Option<HashMap<String, Capacity>>, WireError> {
        match object.get(name) {
            Some(Value::Object(map)) => map
                .iter()
                .map(|(index, c)| Ok((index.clone(), capacity(c)?)))
                .collect::<Result<_, _>>()
                .map(Some),
            Some(Value::Null) | None => Ok(None),
            Some(_) => Err(wire_error(format!("{name} that is not an object"))),
        }
    };
    Ok(ConsumedCapacity::builder()
        .set_table_name(
            object
                .get("TableName")
                .and_then(Value::as_str)
                .map(str::to_owned),
        )
        .set_capacity_units(number(object, "CapacityUnits")?)
        .set_read_capacity_units(number(object, "ReadCapacityUnits")?)
        .set_write_capacity_units(number(object, "WriteCapacityUnits")?)
        .set_table(object.get("Table").map(capacity).transpose()?)
        .set_local_secondary_indexes(indexes("LocalSecondaryIndexes")?)
        .set_global_secondary_indexes(indexes("GlobalSecondaryIndexes")?)
        .build())
}

fn capacity(value: &Value) -> Result<Capacity, WireError> {
    let object = value
        .as_object()
        .ok_or_else(|| wire_error("a capacity that is not an object"))?;
    Ok(Capacity::builder()
        .set_capacity_units(number(object, "CapacityUnits")?)
        .set_read_capacity_units(number(object, "ReadCapacityUnits")?)
        .set_write_capacity_units(number(object, "WriteCapacityUnits")?)
        .build())
}

fn number(object: &Map<String, Value>, name: &str) -> Result<Option<f64>, WireError> {
    match object.get(name) {
        Some(Value::Null) | None => Ok(None),
        Some(value) => value
            .as_f64()
            .map(Some)
            .ok_or_else(|| wire_error(format!("{name} that is not a number"))),
    }
}

/// An error answer's code and message, as the SDK reads them (see the
/// module's note). A body that is not JSON still gives the header's code.
pub(crate) fn error_metadata(header_code: Option<&str>, body: &[u8]) -> ErrorMetadata {
    let parsed: Option<Map<String, Value>> = serde_json::from_slice(body).ok();
    let field = |names: &[&str]| {
        let object = parsed.as_ref()?;
        names
            .iter()
            .find_map(|name| object.get(*name).and_then(Value::as_str))
            .map(str::to_owned)
    };
    let code = header_code
        .map(str::to_owned)
        .or_else(|| field(&["code"]))
        .or_else(|| field(&["__type"]));
    let mut builder = ErrorMetadata::builder();
    if let Some(code) = code {
        builder = builder.code(sanitize_error_code(&code));
    }
    if let Some(message) = field(&["message", "Message", "errorMessage"]) {
        builder = builder.message(message);
    }
    builder.build()
}

fn sanitize_error_code(code: &str) -> &str {
    let code = code.split(':').next().unwrap_or(code);
    match code.find('#') {
        Some(i) => &code[i + 1..],
        None => code,
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
