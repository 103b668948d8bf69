//! A cursor's key in a compact, unambiguous binary form, held to the bounds
//! of the largest key DynamoDB can return (so a cursor's length is bounded
//! exactly, and any byte string decodes to a key or `None`, never a panic).

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::repository::Item;

// The largest key DynamoDB can return, from its documented limits
// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Constraints.html,
// "Partition keys and sort keys"; API reference, KeySchemaElement):
// a partition key value is at most 2048 bytes, a sort key value at most 1024,
// a key attribute name at most 255 characters (Smithy counts characters, so
// up to 4 × 255 UTF-8 bytes). A page of a GSI query carries the table's key
// and the index's key: at most four attributes, two partition and two sort.
// The opening side holds any key to these bounds, so the cursor's length
// bound is exact for the largest key DynamoDB can return.
const MAX_KEY_ATTRIBUTES: usize = 4;
const MAX_NAME_CHARS: usize = 255;
const MAX_NAME_BYTES: usize = 4 * MAX_NAME_CHARS;
const MAX_VALUE_BYTES: usize = 2048;
const MAX_KEY_VALUE_BYTES: usize = 2 * 2048 + 2 * 1024;
/// Count, then per attribute: name length (u16), name, type tag, value length
/// (u16), value.
pub(super) const MAX_KEY_BYTES: usize =
    1 + MAX_KEY_ATTRIBUTES * (2 + MAX_NAME_BYTES + 1 + 2) + MAX_KEY_VALUE_BYTES;

const TAG_S: u8 = b'S';
const TAG_N: u8 = b'N';
const TAG_B: u8 = b'B';

/// The key in a compact, unambiguous binary form: a count, then each
/// attribute (sorted by name, so the same key seals the same way) as a
/// length-prefixed name, a type tag and a length-prefixed value. `None` when
/// the key is outside what DynamoDB can return (see the limits at the top).
pub(super) fn encode_key(key: &Item) -> Option<Vec<u8>> {
    if key.is_empty() || key.len() > MAX_KEY_ATTRIBUTES {
        return None;
    }
    let mut names: Vec<&String> = key.keys().collect();
    names.sort();
    let mut out = vec![u8::try_from(key.len()).ok()?];
    let mut value_bytes = 0;
    for name in names {
        let (tag, value): (u8, &[u8]) = match &key[name] {
            AttributeValue::S(text) => (TAG_S, text.as_bytes()),
            AttributeValue::N(number) => (TAG_N, number.as_bytes()),
            AttributeValue::B(blob) => (TAG_B, blob.as_ref()),
            _ => return None,
        };
        if !name_fits(name) || value.is_empty() || value.len() > MAX_VALUE_BYTES {
            return None;
        }
        value_bytes += value.len();
        out.extend_from_slice(&u16::try_from(name.len()).ok()?.to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(tag);
        out.extend_from_slice(&u16::try_from(value.len()).ok()?.to_be_bytes());
        out.extend_from_slice(value);
    }
    (value_bytes <= MAX_KEY_VALUE_BYTES).then_some(out)
}

/// The inverse of [`encode_key`], holding a key to the same bounds. Total: any
/// byte string gives a key or `None`, never a panic.
pub(super) fn decode_key(bytes: &[u8]) -> Option<Item> {
    let (&count, mut rest) = bytes.split_first()?;
    let count = usize::from(count);
    if count == 0 || count > MAX_KEY_ATTRIBUTES {
        return None;
    }
    let mut key = Item::with_capacity(count);
    let mut value_bytes = 0;
    for _ in 0..count {
        let name = take_prefixed(&mut rest)?;
        let name = std::str::from_utf8(name).ok()?;
        let (&tag, after_tag) = rest.split_first()?;
        rest = after_tag;
        let value = take_prefixed(&mut rest)?;
        if !name_fits(name) || value.is_empty() || value.len() > MAX_VALUE_BYTES {
            return None;
        }
        value_bytes += value.len();
        let value = match tag {
            TAG_S => AttributeValue::S(std::str::from_utf8(value).ok()?.to_owned()),
            TAG_N => AttributeValue::N(std::str::from_utf8(value).ok()?.to_owned()),
            TAG_B => AttributeValue::B(Blob::new(value)),
            _ => return None,
        };
        if key.insert(name.to_owned(), value).is_some() {
            return None;
        }
    }
    (rest.is_empty() && value_bytes <= MAX_KEY_VALUE_BYTES).then_some(key)
}

fn name_fits(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_BYTES && name.chars().count() <= MAX_NAME_CHARS
}

/// Takes a u16-length-prefixed field off the front of `rest`.
fn take_prefixed<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, after_len) = rest.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    let (field, after_field) = after_len.split_at_checked(len)?;
    *rest = after_field;
    Some(field)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{decode_key, encode_key};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The key decoder only ever sees bytes the MAC vouched for; it is
        /// total all the same.
        #[test]
        fn the_key_decoder_is_total(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            if let Some(key) = decode_key(&bytes) {
                prop_assert_eq!(encode_key(&key).map(|k| k.len()), Some(bytes.len()));
            }
        }
    }
}
