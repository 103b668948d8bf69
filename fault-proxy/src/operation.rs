//! What a DynamoDB request is: its operation (from `X-Amz-Target`), the tables
//! it names (from its JSON body), and what its items cost.

use serde_json::{Map, Value};

use crate::item_size::{item_size, value_size};
use crate::units::{Consistency, HalfUnits, read_cost, write_cost};

/// The operation named by an `X-Amz-Target: DynamoDB_20120810.<Operation>` header.
pub(crate) fn operation_from_target(target: &str) -> Option<&str> {
    target
        .strip_prefix("DynamoDB_20120810.")
        .filter(|op| !op.is_empty())
}

/// How the capacity model treats an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// PutItem, UpdateItem, DeleteItem, TransactWriteItems: paid up front.
    Write,
    /// BatchWriteItem: paid up front, item by item.
    BatchWrite,
    /// GetItem, Query, Scan, TransactGetItems: admitted unless in debt, paid after.
    Read,
    /// BatchGetItem: admitted per table, paid after.
    BatchGet,
    /// Everything else: not charged.
    Other,
}

pub(crate) fn class(operation: &str) -> Class {
    match operation {
        "PutItem" | "UpdateItem" | "DeleteItem" | "TransactWriteItems" => Class::Write,
        "BatchWriteItem" => Class::BatchWrite,
        "GetItem" | "Query" | "Scan" | "TransactGetItems" => Class::Read,
        "BatchGetItem" => Class::BatchGet,
        _ => Class::Other,
    }
}

/// Whether a drop-response fault applies: the operation changes data.
pub(crate) fn is_write(operation: &str) -> bool {
    matches!(class(operation), Class::Write | Class::BatchWrite)
}

/// The tables a request names, in order, without repeats.
pub(crate) fn tables(operation: &str, body: &Value) -> Vec<String> {
    let mut tables: Vec<String> = Vec::new();
    let mut add = |name: Option<&str>| {
        if let Some(name) = name
            && !tables.iter().any(|t| t == name)
        {
            tables.push(name.to_owned());
        }
    };
    match operation {
        "BatchGetItem" | "BatchWriteItem" => {
            for name in body["RequestItems"]
                .as_object()
                .into_iter()
                .flat_map(Map::keys)
            {
                add(Some(name));
            }
        }
        "TransactWriteItems" | "TransactGetItems" => {
            for item in body["TransactItems"].as_array().into_iter().flatten() {
                let action = item.as_object().and_then(|o| o.values().next());
                add(action.and_then(|a| a["TableName"].as_str()));
            }
        }
        _ => add(body["TableName"].as_str()),
    }
    tables
}

/// One item written: its table, cost, and the attributes its partition key
/// is found in (`Item` for puts, `Key` otherwise).
#[derive(Clone, Debug)]
pub(crate) struct Write<'a> {
    pub(crate) table: &'a str,
    pub(crate) cost: HalfUnits,
    pub(crate) key_source: Option<&'a Map<String, Value>>,
}

/// The items a single or transactional write changes (not BatchWriteItem,
/// see [`batch_write_request`]). UpdateItem and DeleteItem are priced from
/// the request (key plus new values), as the stored item is not known up front.
pub(crate) fn writes<'a>(operation: &str, body: &'a Value) -> Vec<Write<'a>> {
    match operation {
        "TransactWriteItems" => body["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item.as_object()?.iter().next())
            .filter_map(|(action, request)| write_of(action, request, true))
            .collect(),
        "PutItem" => write_of("Put", body, false).into_iter().collect(),
        "UpdateItem" => write_of("Update", body, false).into_iter().collect(),
        "DeleteItem" => write_of("Delete", body, false).into_iter().collect(),
        _ => Vec::new(),
    }
}

fn write_of<'a>(action: &str, request: &'a Value, transactional: bool) -> Option<Write<'a>> {
    let table = request["TableName"].as_str()?;
    let (size, key_source) = match action {
        "Put" => {
            let item = request["Item"].as_object();
            (item.map_or(0, item_size), item)
        }
        "Update" => {
            let key = request["Key"].as_object();
            let values: u64 = request["ExpressionAttributeValues"]
                .as_object()
                .into_iter()
                .flat_map(Map::values)
                .map(value_size)
                .sum();
            let legacy: u64 = request["AttributeUpdates"]
                .as_object()
                .into_iter()
                .flat_map(Map::iter)
                .map(|(name, update)| name.len() as u64 + value_size(&update["Value"]))
                .sum();
            (key.map_or(0, item_size) + values + legacy, key)
        }
        "Delete" | "ConditionCheck" => {
            let key = request["Key"].as_object();
            (key.map_or(0, item_size), key)
        }
        _ => return None,
    };
    Some(Write {
        table,
        cost: write_cost(size, transactional),
        key_source,
    })
}

/// The cost and key attributes of one BatchWriteItem request
/// (`{"PutRequest": {"Item": ...}}` or `{"DeleteRequest": {"Key": ...}}`).
pub(crate) fn batch_write_request(request: &Value) -> (HalfUnits, Option<&Map<String, Value>>) {
    let source = request["PutRequest"]["Item"]
        .as_object()
        .or_else(|| request["DeleteRequest"]["Key"].as_object());
    (write_cost(source.map_or(0, item_size), false), source)
}

/// The partition key value `attribute` has in `attributes`, as a map key.
pub(crate) fn key_value(
    attributes: Option<&Map<String, Value>>,
    attribute: &str,
) -> Option<String> {
    attributes?.get(attribute).map(Value::to_string)
}

fn consistency(request: &Value) -> Consistency {
    if request["ConsistentRead"].as_bool() == Some(true) {
        Consistency::Strong
    } else {
        Consistency::Eventual
    }
}

/// What a successful read response costs, per table, in request order:
/// GetItem the item returned, Query and Scan the summed size of the items
/// returned (rounded once: the items read when the page neither filters nor
/// projects; otherwise see [`crate::page`]), BatchGetItem and
/// TransactGetItems each item.
pub(crate) fn read_costs(
    operation: &str,
    request: &Value,
    response: &Value,
) -> Vec<(String, HalfUnits)> {
    let size_of = |item: &Value| item.as_object().map_or(0, item_size);
    let table = || request["TableName"].as_str().unwrap_or_default().to_owned();
    match operation {
        "GetItem" => vec![(
            table(),
            read_cost(size_of(&response["Item"]), consistency(request)),
        )],
        "Query" | "Scan" => {
            let size = response["Items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(size_of)
                .sum();
            vec![(table(), read_cost(size, consistency(request)))]
        }
        "BatchGetItem" => response["Responses"]
            .as_object()
            .into_iter()
            .flat_map(Map::iter)
            .map(|(table, items)| {
                let level = consistency(&request["RequestItems"][table]);
                let cost = items
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|item| read_cost(size_of(item), level))
                    .sum();
                (table.clone(), cost)
            })
            .collect(),
        "TransactGetItems" => {
            let requested = request["TransactItems"]
                .as_array()
                .map_or(&[][..], Vec::as_slice);
            let returned = response["Responses"]
                .as_array()
                .map_or(&[][..], Vec::as_slice);
            requested
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    let table = item["Get"]["TableName"].as_str()?.to_owned();
                    let size = returned.get(i).map_or(0, |r| size_of(&r["Item"]));
                    Some((table, read_cost(size, Consistency::Transactional)))
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

/// DynamoDB's operations (API version 2012-08-10), for validating rule names.
pub(crate) const OPERATIONS: &[&str] = &[
    "BatchExecuteStatement",
    "BatchGetItem",
    "BatchWriteItem",
    "CreateBackup",
    "CreateGlobalTable",
    "CreateTable",
    "DeleteBackup",
    "DeleteItem",
    "DeleteResourcePolicy",
    "DeleteTable",
    "DescribeBackup",
    "DescribeContinuousBackups",
    "DescribeContributorInsights",
    "DescribeEndpoints",
    "DescribeExport",
    "DescribeGlobalTable",
    "DescribeGlobalTableSettings",
    "DescribeImport",
    "DescribeKinesisStreamingDestination",
    "DescribeLimits",
    "DescribeTable",
    "DescribeTableReplicaAutoScaling",
    "DescribeTimeToLive",
    "DisableKinesisStreamingDestination",
    "EnableKinesisStreamingDestination",
    "ExecuteStatement",
    "ExecuteTransaction",
    "ExportTableToPointInTime",
    "GetItem",
    "GetResourcePolicy",
    "ImportTable",
    "ListBackups",
    "ListContributorInsights",
    "ListExports",
    "ListGlobalTables",
    "ListImports",
    "ListTables",
    "ListTagsOfResource",
    "PutItem",
    "PutResourcePolicy",
    "Query",
    "RestoreTableFromBackup",
    "RestoreTableToPointInTime",
    "Scan",
    "TagResource",
    "TransactGetItems",
    "TransactWriteItems",
    "UntagResource",
    "UpdateContinuousBackups",
    "UpdateContributorInsights",
    "UpdateGlobalTable",
    "UpdateGlobalTableSettings",
    "UpdateItem",
    "UpdateKinesisStreamingDestination",
    "UpdateTable",
    "UpdateTableReplicaAutoScaling",
    "UpdateTimeToLive",
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operation_comes_from_the_target_header() {
        assert_eq!(
            operation_from_target("DynamoDB_20120810.PutItem"),
            Some("PutItem")
        );
        assert_eq!(
            operation_from_target("DynamoDBStreams_20120810.GetRecords"),
            None
        );
    }

    #[test]
    fn tables_are_found_in_every_request_shape() {
        assert_eq!(tables("PutItem", &json!({"TableName": "a"})), ["a"]);
        assert_eq!(
            tables(
                "BatchWriteItem",
                &json!({"RequestItems": {"a": [], "b": []}})
            ),
            ["a", "b"]
        );
        let transact = json!({"TransactItems": [
            {"Put": {"TableName": "a"}}, {"ConditionCheck": {"TableName": "b"}}, {"Delete": {"TableName": "a"}}
        ]});
        assert_eq!(tables("TransactWriteItems", &transact), ["a", "b"]);
        assert!(tables("ListTables", &json!({})).is_empty());
    }

    #[test]
    fn writes_are_priced_from_the_request() {
        let big = "x".repeat(1500);
        let put = json!({"TableName": "t", "Item": {"pk": {"S": big}}});
        let put_writes = writes("PutItem", &put);
        assert_eq!(put_writes.len(), 1);
        assert_eq!(put_writes[0].cost.as_units(), 2.0);
        assert_eq!(
            key_value(put_writes[0].key_source, "pk"),
            Some(format!("{{\"S\":\"{big}\"}}"))
        );

        let transact = json!({"TransactItems": [
            {"Put": {"TableName": "a", "Item": {"pk": {"S": "1"}}}},
            {"Update": {"TableName": "b", "Key": {"pk": {"S": "2"}},
                        "ExpressionAttributeValues": {":v": {"S": "x".repeat(2000)}}}}
        ]});
        let costs: Vec<f64> = writes("TransactWriteItems", &transact)
            .iter()
            .map(|w| w.cost.as_units())
            .collect();
        assert_eq!(costs, [2.0, 4.0], "transactional writes cost double");
    }

    #[test]
    fn batch_write_requests_are_priced_each() {
        let put = json!({"PutRequest": {"Item": {"pk": {"S": "a"}}}});
        let delete = json!({"DeleteRequest": {"Key": {"pk": {"S": "a"}}}});
        assert_eq!(batch_write_request(&put).0.as_units(), 1.0);
        assert_eq!(batch_write_request(&delete).0.as_units(), 1.0);
    }

    #[test]
    fn reads_are_priced_from_the_response() {
        let item = json!({"pk": {"S": "x".repeat(5000)}});
        let get = read_costs(
            "GetItem",
            &json!({"TableName": "t", "ConsistentRead": true}),
            &json!({"Item": item}),
        );
        assert_eq!(get, [("t".to_owned(), HalfUnits::from_units(2))]);
        let missing = read_costs("GetItem", &json!({"TableName": "t"}), &json!({}));
        assert_eq!(missing[0].1.as_units(), 0.5);

        // Query sums the items first: 3 x 2000 bytes = 6000 bytes = 2 blocks.
        let small = json!({"pk": {"S": "x".repeat(1998)}});
        let query = read_costs(
            "Query",
            &json!({"TableName": "t"}),
            &json!({"Items": [small, small, small]}),
        );
        assert_eq!(query[0].1.as_units(), 1.0);

        // BatchGetItem rounds each item: 3 x 2000 bytes = 3 blocks, strongly.
        let batch = read_costs(
            "BatchGetItem",
            &json!({"RequestItems": {"t": {"Keys": [], "ConsistentRead": true}}}),
            &json!({"Responses": {"t": [small, small, small]}}),
        );
        assert_eq!(batch[0].1.as_units(), 3.0);

        let transact = read_costs(
            "TransactGetItems",
            &json!({"TransactItems": [{"Get": {"TableName": "a"}}, {"Get": {"TableName": "b"}}]}),
            &json!({"Responses": [{"Item": small}, {}]}),
        );
        assert_eq!(
            transact,
            [
                ("a".to_owned(), HalfUnits::from_units(2)),
                ("b".to_owned(), HalfUnits::from_units(2))
            ]
        );
    }
}
