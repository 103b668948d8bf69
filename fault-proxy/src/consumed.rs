//! The `ConsumedCapacity` a priced Query or Scan answer carries: the proxy's
//! price, not the upstream's, so a client that charges its callers from it
//! pays what the proxy's bucket took.
//!
//! The shape is DynamoDB's (API Reference, `ConsumedCapacity` and `Capacity`):
//! `TableName`, `CapacityUnits` and `ReadCapacityUnits` for `TOTAL`; for
//! `INDEXES` also `Table` and, when the request names an index, that index's
//! entry under `GlobalSecondaryIndexes` (or `LocalSecondaryIndexes` when the
//! upstream filed it there), the table's share then being 0, as DynamoDB Local
//! reports an index read. The proxy models capacity per table only, so the
//! units are taken from the table's bucket even for a GSI, whose reads
//! DynamoDB charges to the index's own capacity (Developer Guide, "Capacity
//! units consumed by query").

use serde_json::{Value, json};

use crate::units::HalfUnits;

/// Puts `cost` into `answer` as its `ConsumedCapacity` when `request` asked
/// for it (`ReturnConsumedCapacity` `TOTAL` or `INDEXES`). Returns whether the
/// answer changed.
pub(crate) fn report(request: &Value, answer: &mut Value, cost: HalfUnits) -> bool {
    let indexes = match request["ReturnConsumedCapacity"].as_str() {
        Some("TOTAL") => false,
        Some("INDEXES") => true,
        _ => return false,
    };
    let Some(answer_fields) = answer.as_object_mut() else {
        return false;
    };
    let units = cost.as_units();
    let capacity = |units: f64| json!({"CapacityUnits": units, "ReadCapacityUnits": units});
    let mut consumed = json!({
        "TableName": request["TableName"],
        "CapacityUnits": units,
        "ReadCapacityUnits": units,
    });
    if indexes {
        match request["IndexName"].as_str() {
            None => consumed["Table"] = capacity(units),
            Some(index) => {
                let upstream = &answer_fields.get("ConsumedCapacity");
                let local = upstream
                    .and_then(|c| c["LocalSecondaryIndexes"].get(index))
                    .is_some();
                let group = if local {
                    "LocalSecondaryIndexes"
                } else {
                    "GlobalSecondaryIndexes"
                };
                consumed["Table"] = capacity(0.0);
                consumed[group] = json!({ index: capacity(units) });
            }
        }
    }
    answer_fields.insert("ConsumedCapacity".to_owned(), consumed);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reported(request: Value, upstream: Value, halves: u64) -> Option<Value> {
        let mut answer = upstream;
        report(&request, &mut answer, HalfUnits::new(halves))
            .then(|| answer["ConsumedCapacity"].clone())
    }

    #[test]
    fn total_replaces_the_upstream_figure() {
        let request = json!({"TableName": "t", "ReturnConsumedCapacity": "TOTAL"});
        let upstream =
            json!({"Items": [], "ConsumedCapacity": {"TableName": "t", "CapacityUnits": 0.5}});
        assert_eq!(
            reported(request, upstream, 5),
            Some(json!({"TableName": "t", "CapacityUnits": 2.5, "ReadCapacityUnits": 2.5}))
        );
    }

    #[test]
    fn nothing_is_added_unless_asked_for() {
        for level in [json!(null), json!("NONE")] {
            let request = json!({"TableName": "t", "ReturnConsumedCapacity": level});
            let mut answer = json!({"Items": []});
            assert!(!report(&request, &mut answer, HalfUnits::new(3)));
            assert_eq!(answer, json!({"Items": []}));
        }
    }

    #[test]
    fn indexes_name_the_table_or_the_index_read() {
        let table = json!({"TableName": "t", "ReturnConsumedCapacity": "INDEXES"});
        assert_eq!(
            reported(table, json!({}), 2).unwrap()["Table"],
            json!({"CapacityUnits": 1.0, "ReadCapacityUnits": 1.0})
        );

        let gsi =
            json!({"TableName": "t", "IndexName": "byEmail", "ReturnConsumedCapacity": "INDEXES"});
        let consumed = reported(gsi, json!({}), 3).unwrap();
        assert_eq!(consumed["CapacityUnits"], 1.5);
        assert_eq!(consumed["Table"]["CapacityUnits"], 0.0);
        assert_eq!(
            consumed["GlobalSecondaryIndexes"]["byEmail"]["CapacityUnits"],
            1.5
        );

        let lsi =
            json!({"TableName": "t", "IndexName": "byDate", "ReturnConsumedCapacity": "INDEXES"});
        let upstream = json!({"ConsumedCapacity": {"LocalSecondaryIndexes": {"byDate": {"CapacityUnits": 0.5}}}});
        let consumed = reported(lsi, upstream, 4).unwrap();
        assert_eq!(
            consumed["LocalSecondaryIndexes"]["byDate"]["ReadCapacityUnits"],
            2.0
        );
        assert!(consumed.get("GlobalSecondaryIndexes").is_none());
    }
}
