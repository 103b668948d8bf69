//! Item sizes as DynamoDB computes them for capacity accounting.
//!
//! The rules are the ones in the DynamoDB Developer Guide, "DynamoDB item sizes
//! and formats": an item's size is the sum over its attributes of the UTF-8
//! length of the name plus the size of the value, where
//!
//! - a string is its UTF-8 length,
//! - a number is about 1 byte per two significant digits plus 1 byte,
//! - a binary value is its raw (base64-decoded) length,
//! - a boolean or null is 1 byte,
//! - a list or map is 3 bytes plus, for each element, 1 byte of overhead plus
//!   the element's size (and, in a map, the element's name),
//! - a set is the sum of its elements' sizes.
//!
//! Values arrive in DynamoDB's JSON wire format (`{"S": "abc"}`); anything
//! that is not such a value counts as 0 bytes rather than failing a request
//! the upstream will judge anyway.

use serde_json::{Map, Value};

/// The size in bytes of one item (or key) given as a map of attribute name to
/// DynamoDB JSON attribute value.
pub fn item_size(item: &Map<String, Value>) -> u64 {
    item.iter()
        .map(|(name, value)| name.len() as u64 + value_size(value))
        .sum()
}

/// The size in bytes of one DynamoDB JSON attribute value, without its name.
pub fn value_size(value: &Value) -> u64 {
    let Some((kind, inner)) = value.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    match (kind.as_str(), inner) {
        ("S", Value::String(s)) => s.len() as u64,
        ("N", Value::String(n)) => number_size(n),
        ("B", Value::String(b)) => base64_decoded_len(b),
        ("BOOL" | "NULL", _) => 1,
        ("SS", Value::Array(items)) => strings(items).map(|s| s.len() as u64).sum(),
        ("NS", Value::Array(items)) => strings(items).map(number_size).sum(),
        ("BS", Value::Array(items)) => strings(items).map(base64_decoded_len).sum(),
        ("L", Value::Array(items)) => 3 + items.iter().map(|v| 1 + value_size(v)).sum::<u64>(),
        ("M", Value::Object(entries)) => {
            3 + entries
                .iter()
                .map(|(name, v)| 1 + name.len() as u64 + value_size(v))
                .sum::<u64>()
        }
        _ => 0,
    }
}

fn strings(items: &[Value]) -> impl Iterator<Item = &str> {
    items.iter().filter_map(Value::as_str)
}

/// 1 byte per two significant digits (rounded up) plus 1 byte. Leading and
/// trailing zeros, the sign, the decimal point and any exponent do not count.
pub(crate) fn number_size(number: &str) -> u64 {
    let mantissa = number
        .trim()
        .split(['e', 'E'])
        .next()
        .unwrap_or_default()
        .trim_start_matches(['-', '+']);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len() as u64;
    significant.max(1).div_ceil(2) + 1
}

/// The number of bytes a base64 string decodes to, without decoding it.
fn base64_decoded_len(encoded: &str) -> u64 {
    let symbols = encoded
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
        .count() as u64;
    symbols * 3 / 4
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn size_of(item: Value) -> u64 {
        item_size(item.as_object().expect("test item is an object"))
    }

    #[test]
    fn documented_example_two_string_attributes_is_23_bytes() {
        // Developer Guide, "Read capacity units": an item with "shirt-color" = "R"
        // and "shirt-size" = "M" is 23 bytes.
        let item = json!({"shirt-color": {"S": "R"}, "shirt-size": {"S": "M"}});
        assert_eq!(size_of(item), 23);
    }

    #[test]
    fn strings_count_utf8_bytes_not_characters() {
        assert_eq!(size_of(json!({"n": {"S": "héllo"}})), 1 + 6);
        assert_eq!(size_of(json!({"名前": {"S": ""}})), 6);
    }

    #[test]
    fn numbers_count_one_byte_per_two_significant_digits_plus_one() {
        assert_eq!(number_size("1"), 2);
        assert_eq!(number_size("12"), 2);
        assert_eq!(number_size("123"), 3);
        assert_eq!(number_size("-123.45"), 4);
        // Leading and trailing zeros are trimmed.
        assert_eq!(number_size("000120000"), 2);
        assert_eq!(number_size("0.0012"), 2);
        assert_eq!(number_size("0"), 2);
        assert_eq!(number_size("1.5E+10"), 2);
        // 38 significant digits, the maximum: 19 + 1.
        assert_eq!(number_size("12345678901234567890123456789012345678"), 20);
    }

    #[test]
    fn binary_counts_raw_bytes() {
        // "aGVsbG8=" is "hello".
        assert_eq!(size_of(json!({"b": {"B": "aGVsbG8="}})), 1 + 5);
        assert_eq!(value_size(&json!({"B": "aGVsbG8h"})), 6);
    }

    #[test]
    fn booleans_and_nulls_are_one_byte() {
        assert_eq!(
            size_of(json!({"ok": {"BOOL": true}, "x": {"NULL": true}})),
            2 + 1 + 1 + 1
        );
    }

    #[test]
    fn lists_and_maps_have_three_bytes_plus_one_per_element() {
        assert_eq!(value_size(&json!({"L": []})), 3);
        assert_eq!(value_size(&json!({"M": {}})), 3);
        // 3 + (1 + 2) + (1 + 1)
        assert_eq!(value_size(&json!({"L": [{"S": "ab"}, {"BOOL": false}]})), 8);
        // 3 + (1 + len("k") + 3)
        assert_eq!(value_size(&json!({"M": {"k": {"S": "abc"}}})), 8);
        // Nesting: the inner list costs 3 + (1 + 1) = 5, the outer 3 + 1 + 5.
        assert_eq!(value_size(&json!({"L": [{"L": [{"S": "a"}]}]})), 9);
    }

    #[test]
    fn sets_are_the_sum_of_their_elements() {
        assert_eq!(value_size(&json!({"SS": ["ab", "cde"]})), 5);
        assert_eq!(value_size(&json!({"NS": ["1", "123"]})), 2 + 3);
        assert_eq!(value_size(&json!({"BS": ["aGVsbG8=", "AA=="]})), 5 + 1);
    }

    #[test]
    fn a_kilobyte_item_is_exactly_1024_bytes() {
        let value = "x".repeat(1024 - 2);
        assert_eq!(size_of(json!({"pk": {"S": value}})), 1024);
    }

    #[test]
    fn malformed_values_count_as_nothing() {
        assert_eq!(value_size(&json!("plain")), 0);
        assert_eq!(value_size(&json!({"S": 5})), 0);
    }
}
