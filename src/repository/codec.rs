//! Items to and from serde types (through `serde_dynamo`), and DynamoDB's
//! item size rule, so an oversized item is refused before any call.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An item as DynamoDB holds it.
pub type Item = HashMap<String, AttributeValue>;

/// DynamoDB's largest item: 400 KB, names and values together.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// Encodes a serde value as an item; it must serialize to a map (a struct).
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Item, serde_dynamo::Error> {
    serde_dynamo::aws_sdk_dynamodb_1::to_item(value)
}

/// Decodes an item, leaving out the attributes the repository keeps for itself.
pub(crate) fn decode<T: DeserializeOwned>(
    mut item: Item,
    private: &[&str],
) -> Result<T, serde_dynamo::Error> {
    for name in private {
        item.remove(*name);
    }
    serde_dynamo::aws_sdk_dynamodb_1::from_item(item)
}

/// The size DynamoDB counts for an item: each attribute name's UTF-8 length
/// plus its value's size.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// The size DynamoDB counts for one attribute value.
pub(crate) fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        // 3 bytes per container, 1 per element.
        AttributeValue::L(v) => 3 + v.iter().map(|e| 1 + value_size(e)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() + value_size(e))
                .sum::<usize>()
        }
        _ => 0,
    }
}

/// Numbers take about one byte per two significant digits, plus one.
fn number_size(n: &str) -> usize {
    let digits = n
        .trim_start_matches(['-', '+'])
        .split(['e', 'E'])
        .next()
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.max(1).div_ceil(2) + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct User {
        user_id: String,
        name: String,
        logins: u32,
    }

    #[test]
    fn a_struct_round_trips_and_private_attributes_are_left_out() {
        let user = User {
            user_id: "ada".into(),
            name: "Ada".into(),
            logins: 3,
        };
        let mut item = encode(&user).unwrap();
        assert_eq!(item["logins"], AttributeValue::N("3".into()));
        item.insert("_token".into(), AttributeValue::S("t".into()));
        let back: User = decode(item, &["_token"]).unwrap();
        assert_eq!(back, user);
    }

    #[test]
    fn sizes_follow_dynamodbs_rules() {
        // The documentation's example: "shirt-color" = "R" is 11 + 1 bytes.
        let item = HashMap::from([("shirt-color".to_owned(), AttributeValue::S("R".into()))]);
        assert_eq!(item_size(&item), 12);
        assert_eq!(value_size(&AttributeValue::N("12345".into())), 4);
        assert_eq!(value_size(&AttributeValue::N("-0.00100".into())), 2);
        assert_eq!(value_size(&AttributeValue::Bool(true)), 1);
        let list = AttributeValue::L(vec![AttributeValue::S("ab".into())]);
        assert_eq!(value_size(&list), 3 + 1 + 2);
    }
}
