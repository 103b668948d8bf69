//! A Query or Scan page as DynamoDB reads and prices it.
//!
//! DynamoDB reads a page first and only then applies the filter and the
//! projection, so a page costs the summed size of every item it *read*,
//! rounded up to 4 KB once for the whole request, half when eventually
//! consistent (Developer Guide, "Filter expressions for the Query operation":
//! "a Query consumes the same amount of read capacity, regardless of whether a
//! filter expression is present"; "Working with scans": the same for Scan;
//! "Capacity unit consumption for read operations": a Query's items are "a
//! single read operation", their total size rounded up to the next 4 KB).
//! A page reads at most 1 MB, and "this limit applies before the filter
//! expression is evaluated" (same pages), as `Limit` does ("Query.Limit":
//! DynamoDB "reads up to six items, and then returns only those that match").
//!
//! The upstream's answer only shows the items kept, so for a page whose
//! request filters or projects, the proxy first sends an unfiltered
//! *companion*: the same request (key condition, start key, `Limit`, index,
//! consistency, segment) without the filter and projection. It reads exactly
//! the items the real request reads, returns all of them, and is bounded at
//! 1 MB by the upstream. The real request is then sent with `Limit` set to the
//! number of items the companion read when the companion stopped early, so it
//! stops where the companion stopped: DynamoDB Local bounds an unfiltered page
//! at 1 MB (the item that crosses 1 MB is the page's last, as on DynamoDB)
//! but lets a filtered Query read past it.

use serde_json::{Map, Value};

use crate::item_size::item_size;
use crate::units::{Consistency, HalfUnits, read_cost};

/// Whether `operation` reads a page (Query or Scan).
pub(crate) fn is_page(operation: &str) -> bool {
    matches!(operation, "Query" | "Scan")
}

/// Whether the items a page request returns may be fewer or smaller than the
/// items it reads: it filters, projects or only counts.
pub(crate) fn needs_companion(request: &Value) -> bool {
    [
        "FilterExpression",
        "ProjectionExpression",
        "AttributesToGet",
    ]
    .iter()
    .chain(&["QueryFilter", "ScanFilter"])
    .any(|field| !request[field].is_null())
        || matches!(
            request["Select"].as_str(),
            Some("COUNT" | "SPECIFIC_ATTRIBUTES")
        )
}

/// The companion of a page request: the same read, returning every item read
/// whole. Only the names and values the key condition uses are kept, as
/// DynamoDB refuses a request carrying unused ones.
pub(crate) fn companion(request: &Value) -> Value {
    let mut companion = request.as_object().cloned().unwrap_or_default();
    for field in [
        "FilterExpression",
        "ProjectionExpression",
        "AttributesToGet",
        "QueryFilter",
        "ScanFilter",
        "ConditionalOperator",
        "ReturnConsumedCapacity",
    ] {
        companion.remove(field);
    }
    // ALL_ATTRIBUTES and ALL_PROJECTED_ATTRIBUTES read what they return (and
    // an LSI's ALL_ATTRIBUTES fetches from the table, which costs): kept.
    if matches!(
        companion.get("Select").and_then(Value::as_str),
        Some("COUNT" | "SPECIFIC_ATTRIBUTES")
    ) {
        companion.remove("Select");
    }
    let key_condition = request["KeyConditionExpression"]
        .as_str()
        .unwrap_or_default();
    for (field, sigil) in [
        ("ExpressionAttributeNames", '#'),
        ("ExpressionAttributeValues", ':'),
    ] {
        let used = placeholders(key_condition, sigil);
        let kept: Map<String, Value> = companion
            .get(field)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter(|(name, _)| used.contains(&name.as_str()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        // An empty map is refused too.
        if kept.is_empty() {
            companion.remove(field);
        } else {
            companion.insert(field.to_owned(), Value::Object(kept));
        }
    }
    Value::Object(companion)
}

/// The `#name` or `:value` placeholders an expression uses.
fn placeholders(expression: &str, sigil: char) -> Vec<&str> {
    let is_part = |c: char| c.is_ascii_alphanumeric() || c == '_';
    expression
        .match_indices(sigil)
        .map(|(start, _)| {
            let rest = &expression[start + 1..];
            let len = rest.find(|c: char| !is_part(c)).unwrap_or(rest.len());
            &expression[start..start + 1 + len]
        })
        .filter(|placeholder| placeholder.len() > 1)
        .collect()
}

/// The real request, bounded to the items its companion read when the
/// companion stopped before the end (at `Limit` or at 1 MB); `None` when the
/// request can go as it is.
pub(crate) fn bounded(request: &Value, read: &Value) -> Option<Value> {
    read.get("LastEvaluatedKey")?;
    let count = read["Items"].as_array().map_or(0, Vec::len);
    if count == 0 {
        return None;
    }
    let mut bounded = request.clone();
    bounded["Limit"] = Value::from(count);
    Some(bounded)
}

/// The items a page read: the companion's, up to and including the real
/// answer's `LastEvaluatedKey` (all of them when the answer has none, or when
/// the key is not among them because the table changed between the two calls).
pub(crate) fn items_read<'a>(read: &'a Value, answer: &Value) -> &'a [Value] {
    let items = read["Items"].as_array().map_or(&[][..], Vec::as_slice);
    let Some(last) = answer["LastEvaluatedKey"].as_object() else {
        return items;
    };
    let is_last = |item: &Value| {
        !last.is_empty()
            && last
                .iter()
                .all(|(name, value)| item.get(name) == Some(value))
    };
    match items.iter().position(is_last) {
        Some(end) => &items[..=end],
        None => items,
    }
}

/// What a page that read `items` costs: their summed size, rounded up to 4 KB
/// once, at the request's consistency.
pub(crate) fn cost(request: &Value, items: &[Value]) -> HalfUnits {
    let size = items
        .iter()
        .map(|item| item.as_object().map_or(0, item_size))
        .sum();
    let consistency = if request["ConsistentRead"].as_bool() == Some(true) {
        Consistency::Strong
    } else {
        Consistency::Eventual
    };
    read_cost(size, consistency)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An item of exactly `size` bytes with sort key `sk`: "pk" (2 + 1),
    /// "sk" (2 + 3) and "v" (1 + the rest).
    fn item(sk: u32, size: usize) -> Value {
        json!({"pk": {"S": "p"}, "sk": {"S": format!("{sk:03}")}, "v": {"S": "x".repeat(size - 9)}})
    }

    fn price(request: &Value, read: &Value, answer: &Value) -> f64 {
        cost(request, items_read(read, answer)).as_units()
    }

    #[test]
    fn items_the_filter_discards_are_paid_for() {
        let request = json!({"TableName": "t", "ConsistentRead": true, "FilterExpression": "n > :n",
                             "ExpressionAttributeValues": {":n": {"N": "1"}}});
        let read = json!({"Items": [item(0, 4000), item(1, 4000), item(2, 4000)]});
        let answer = json!({"Items": [item(2, 4000)], "Count": 1, "ScannedCount": 3});
        // 12000 bytes read: 3 blocks, though one 4000-byte item came back.
        assert_eq!(price(&request, &read, &answer), 3.0);
    }

    #[test]
    fn a_projection_does_not_reduce_the_price() {
        let request =
            json!({"TableName": "t", "ConsistentRead": true, "ProjectionExpression": "sk"});
        let read = json!({"Items": [item(0, 5000)]});
        let answer = json!({"Items": [{"sk": {"S": "000"}}]});
        assert_eq!(price(&request, &read, &answer), 2.0);
    }

    #[test]
    fn a_page_is_rounded_up_to_4_kb_once_not_per_item() {
        let request = json!({"TableName": "t", "ConsistentRead": true});
        let read = json!({"Items": (0..10).map(|i| item(i, 100)).collect::<Vec<_>>()});
        // 1000 bytes: one block, where ten GetItems would cost ten.
        assert_eq!(price(&request, &read, &json!({})), 1.0);
        let read = json!({"Items": [item(0, 2048), item(1, 2048)]});
        assert_eq!(price(&request, &read, &json!({})), 1.0, "exactly 4 KB");
        let read = json!({"Items": [item(0, 4096), item(1, 10)]});
        assert_eq!(price(&request, &read, &json!({})), 2.0);
        assert_eq!(
            price(&request, &json!({"Items": []}), &json!({})),
            1.0,
            "an empty page costs the minimum"
        );
    }

    #[test]
    fn eventual_consistency_halves_the_price_and_strong_does_not() {
        let read = json!({"Items": [item(0, 3000), item(1, 3000), item(2, 3000)]});
        // 9000 bytes: 3 blocks.
        let strong = json!({"TableName": "t", "ConsistentRead": true});
        assert_eq!(price(&strong, &read, &json!({})), 3.0);
        assert_eq!(price(&json!({"TableName": "t"}), &read, &json!({})), 1.5);
        let explicit = json!({"TableName": "t", "ConsistentRead": false});
        assert_eq!(price(&explicit, &read, &json!({})), 1.5);
    }

    #[test]
    fn a_page_ends_at_the_answer_s_last_evaluated_key() {
        let read = json!({"Items": [item(0, 4096), item(1, 4096), item(2, 4096)]});
        let answer = json!({"LastEvaluatedKey": {"pk": {"S": "p"}, "sk": {"S": "001"}}});
        assert_eq!(items_read(&read, &answer).len(), 2);
        let strong = json!({"ConsistentRead": true});
        assert_eq!(price(&strong, &read, &answer), 2.0);
        // A key the companion did not read (the table changed): all it read.
        let moved = json!({"LastEvaluatedKey": {"pk": {"S": "p"}, "sk": {"S": "999"}}});
        assert_eq!(items_read(&read, &moved).len(), 3);
    }

    #[test]
    fn only_requests_that_filter_project_or_count_need_a_companion() {
        assert!(!needs_companion(&json!({"TableName": "t", "Limit": 5})));
        assert!(!needs_companion(&json!({"Select": "ALL_ATTRIBUTES"})));
        assert!(needs_companion(&json!({"FilterExpression": "a = :a"})));
        assert!(needs_companion(&json!({"ProjectionExpression": "a"})));
        assert!(needs_companion(&json!({"Select": "COUNT"})));
        assert!(needs_companion(&json!({"ScanFilter": {}})));
    }

    #[test]
    fn the_companion_keeps_the_read_and_drops_what_only_the_filter_used() {
        let request = json!({
            "TableName": "t", "IndexName": "byEmail", "KeyConditionExpression": "#pk = :pk AND #sk > :sk_1",
            "FilterExpression": "#n > :n", "ProjectionExpression": "#pk, #n", "Select": "SPECIFIC_ATTRIBUTES",
            "ExpressionAttributeNames": {"#pk": "pk", "#sk": "sk", "#n": "n"},
            "ExpressionAttributeValues": {":pk": {"S": "p"}, ":sk_1": {"S": "a"}, ":n": {"N": "1"}},
            "ExclusiveStartKey": {"pk": {"S": "p"}, "sk": {"S": "b"}}, "Limit": 7,
            "ConsistentRead": true, "ScanIndexForward": false, "ReturnConsumedCapacity": "TOTAL"
        });
        assert_eq!(
            companion(&request),
            json!({
                "TableName": "t", "IndexName": "byEmail", "KeyConditionExpression": "#pk = :pk AND #sk > :sk_1",
                "ExpressionAttributeNames": {"#pk": "pk", "#sk": "sk"},
                "ExpressionAttributeValues": {":pk": {"S": "p"}, ":sk_1": {"S": "a"}},
                "ExclusiveStartKey": {"pk": {"S": "p"}, "sk": {"S": "b"}}, "Limit": 7,
                "ConsistentRead": true, "ScanIndexForward": false
            })
        );
        // A Scan has no key condition: every name and value goes, maps and all.
        let scan = json!({"TableName": "t", "FilterExpression": "#n > :n", "Segment": 1, "TotalSegments": 4,
                          "ExpressionAttributeNames": {"#n": "n"}, "ExpressionAttributeValues": {":n": {"N": "1"}},
                          "Select": "COUNT"});
        assert_eq!(
            companion(&scan),
            json!({"TableName": "t", "Segment": 1, "TotalSegments": 4})
        );
    }

    #[test]
    fn placeholders_are_whole_tokens() {
        assert_eq!(
            placeholders("#a = :a AND #a_b BETWEEN :lo AND :hi2", ':'),
            [":a", ":lo", ":hi2"]
        );
        assert_eq!(
            placeholders("#a = :a AND begins_with(#a_b, :p)", '#'),
            ["#a", "#a_b"]
        );
    }

    #[test]
    fn the_real_request_stops_where_its_companion_stopped() {
        let request = json!({"TableName": "t", "FilterExpression": "a = :a", "Limit": 50});
        let stopped =
            json!({"Items": [item(0, 10), item(1, 10)], "LastEvaluatedKey": {"pk": {"S": "p"}}});
        assert_eq!(bounded(&request, &stopped).unwrap()["Limit"], 2);
        // Read to the end: a Limit of the count read would add a LastEvaluatedKey.
        let ended = json!({"Items": [item(0, 10)]});
        assert_eq!(bounded(&request, &ended), None);
    }
}
