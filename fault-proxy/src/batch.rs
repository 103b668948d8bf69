//! Batches under partial capacity, as DynamoDB treats them: what fits is
//! processed, the rest comes back as `UnprocessedItems` (`UnprocessedKeys`),
//! and only a batch of which nothing fits is throttled.

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::admission::Admission;
use crate::inject::ThrottleReason;
use crate::operation;
use crate::proxy::{Call, Shared, lock};
use crate::units::HalfUnits;

/// BatchWriteItem: each put or delete request is paid for on its own, in
/// order; those the bank cannot pay are held back.
pub(crate) fn admit_batch_write(
    shared: &Shared,
    call: &Call,
    now: Instant,
    body: Bytes,
) -> Admission {
    let Some(request_items) = call.json["RequestItems"].as_object() else {
        return Admission::Forward {
            body,
            held_back: None,
        };
    };
    let mut forwarded = Map::new();
    let mut held = Map::new();
    let mut held_count = 0u64;
    let mut first_refusal: Option<(String, ThrottleReason)> = None;
    let mut paid: Vec<(String, HalfUnits)> = Vec::new();
    {
        let mut model = lock(&shared.capacity);
        for (table, requests) in request_items {
            let effective = call.effective(table);
            for request in requests.as_array().into_iter().flatten() {
                let (cost, key_source) = operation::batch_write_request(request);
                let charge = Call::charge(table, &effective, key_source, cost);
                let target = match model.try_write(now, std::slice::from_ref(&charge)) {
                    Ok(()) => {
                        paid.push((table.clone(), cost));
                        &mut forwarded
                    }
                    Err(refusal) => {
                        first_refusal.get_or_insert(refusal);
                        held_count += 1;
                        &mut held
                    }
                };
                push(target, table, request.clone());
            }
        }
    }
    for (table, cost) in &paid {
        shared_record_write(shared, table, &call.operation, *cost);
    }
    match first_refusal {
        None => Admission::Forward {
            body,
            held_back: None,
        },
        Some((table, reason)) if forwarded.is_empty() => {
            Admission::Reject(call.throttled(shared, &table, reason))
        }
        Some(_) => {
            record_unprocessed(shared, call, held_count);
            Admission::Forward {
                body: with_request_items(&call.json, forwarded),
                held_back: Some(held),
            }
        }
    }
}

/// BatchGetItem: a table whose read bank is in debt has all its keys held back.
pub(crate) fn admit_batch_get(
    shared: &Shared,
    call: &Call,
    now: Instant,
    body: Bytes,
) -> Admission {
    let Some(request_items) = call.json["RequestItems"].as_object() else {
        return Admission::Forward {
            body,
            held_back: None,
        };
    };
    let mut forwarded = Map::new();
    let mut held = Map::new();
    let mut first_refusal: Option<(String, ThrottleReason)> = None;
    {
        let mut model = lock(&shared.capacity);
        for (table, keys) in request_items {
            let effective = call.effective(table);
            let charge = Call::charge(table, &effective, None, HalfUnits::default());
            match model.admit_read(now, &charge) {
                Ok(()) => forwarded.insert(table.clone(), keys.clone()),
                Err(reason) => {
                    first_refusal.get_or_insert((table.clone(), reason));
                    held.insert(table.clone(), keys.clone())
                }
            };
        }
    }
    match first_refusal {
        None => Admission::Forward {
            body,
            held_back: None,
        },
        Some((table, reason)) if forwarded.is_empty() => {
            Admission::Reject(call.throttled(shared, &table, reason))
        }
        Some(_) => {
            record_unprocessed(shared, call, held.len() as u64);
            Admission::Forward {
                body: with_request_items(&call.json, forwarded),
                held_back: Some(held),
            }
        }
    }
}

/// Adds what the proxy held back to the upstream's own unprocessed items.
pub(crate) fn merge_unprocessed(operation: &str, answer: &mut Value, held: Map<String, Value>) {
    let field = if operation == "BatchGetItem" {
        "UnprocessedKeys"
    } else {
        "UnprocessedItems"
    };
    let Some(answer) = answer.as_object_mut() else {
        return;
    };
    let unprocessed = answer
        .entry(field)
        .or_insert_with(|| Value::Object(Map::new()));
    if !unprocessed.is_object() {
        *unprocessed = Value::Object(Map::new());
    }
    let Some(unprocessed) = unprocessed.as_object_mut() else {
        return;
    };
    for (table, entry) in held {
        match (unprocessed.get_mut(&table), entry) {
            (Some(Value::Array(existing)), Value::Array(more)) => existing.extend(more),
            (_, entry) => {
                unprocessed.insert(table, entry);
            }
        }
    }
}

fn push(map: &mut Map<String, Value>, table: &str, request: Value) {
    if let Value::Array(requests) = map
        .entry(table.to_owned())
        .or_insert_with(|| Value::Array(Vec::new()))
    {
        requests.push(request);
    }
}

fn with_request_items(request: &Value, items: Map<String, Value>) -> Bytes {
    let mut request = request.clone();
    request["RequestItems"] = Value::Object(items);
    Bytes::from(request.to_string())
}

fn record_unprocessed(shared: &Shared, call: &Call, count: u64) {
    lock(&shared.stats)
        .entry(&call.primary, &call.operation)
        .unprocessed += count;
}

fn shared_record_write(shared: &Shared, table: &str, operation: &str, cost: HalfUnits) {
    lock(&shared.stats).entry(table, operation).write_units += cost.as_units();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn held_back_items_join_the_upstreams_own_unprocessed_items() {
        let mut answer =
            json!({"UnprocessedItems": {"a": [{"PutRequest": {"Item": {"pk": {"S": "1"}}}}]}});
        let held = json!({
            "a": [{"PutRequest": {"Item": {"pk": {"S": "2"}}}}],
            "b": [{"DeleteRequest": {"Key": {"pk": {"S": "3"}}}}]
        });
        merge_unprocessed(
            "BatchWriteItem",
            &mut answer,
            held.as_object().unwrap().clone(),
        );
        assert_eq!(answer["UnprocessedItems"]["a"].as_array().unwrap().len(), 2);
        assert_eq!(
            answer["UnprocessedItems"]["b"][0]["DeleteRequest"]["Key"]["pk"]["S"],
            "3"
        );
    }

    #[test]
    fn held_back_keys_become_unprocessed_keys() {
        let mut answer = json!({"Responses": {"a": []}, "UnprocessedKeys": {}});
        let held = json!({"b": {"Keys": [{"pk": {"S": "1"}}], "ConsistentRead": true}});
        merge_unprocessed(
            "BatchGetItem",
            &mut answer,
            held.as_object().unwrap().clone(),
        );
        assert_eq!(answer["UnprocessedKeys"]["b"]["ConsistentRead"], true);
    }
}
