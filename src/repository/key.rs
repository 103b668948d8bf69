//! A table's key schema, declared once, and the keys of its items.

use std::collections::HashMap;
use std::fmt;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::repository::codec::Item;

/// The scalar type of a key attribute, as declared in the table's key schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyType {
    /// String (`S`).
    String,
    /// Number (`N`).
    Number,
    /// Binary (`B`).
    Binary,
}

impl KeyType {
    fn matches(self, value: &AttributeValue) -> bool {
        matches!(
            (self, value),
            (KeyType::String, AttributeValue::S(_))
                | (KeyType::Number, AttributeValue::N(_))
                | (KeyType::Binary, AttributeValue::B(_))
        )
    }

    fn name(self) -> &'static str {
        match self {
            KeyType::String => "string",
            KeyType::Number => "number",
            KeyType::Binary => "binary",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyAttribute {
    name: String,
    key_type: KeyType,
}

/// The partition key and optional sort key of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySchema {
    partition: KeyAttribute,
    sort: Option<KeyAttribute>,
}

impl KeySchema {
    /// A schema with only a partition key.
    pub fn partition(name: impl Into<String>, key_type: KeyType) -> KeySchema {
        KeySchema {
            partition: KeyAttribute {
                name: name.into(),
                key_type,
            },
            sort: None,
        }
    }

    /// Adds a sort key.
    pub fn with_sort(mut self, name: impl Into<String>, key_type: KeyType) -> KeySchema {
        self.sort = Some(KeyAttribute {
            name: name.into(),
            key_type,
        });
        self
    }

    /// The partition key attribute's name.
    pub fn partition_name(&self) -> &str {
        &self.partition.name
    }

    /// The sort key attribute's name, if the table has one.
    pub fn sort_name(&self) -> Option<&str> {
        self.sort.as_ref().map(|s| s.name.as_str())
    }

    /// The same partition key with another sort key (a local index).
    pub(crate) fn replace_sort(mut self, name: &str, key_type: KeyType) -> KeySchema {
        self.sort = Some(KeyAttribute {
            name: name.to_owned(),
            key_type,
        });
        self
    }

    /// The partition key's type.
    pub(crate) fn partition_type(&self) -> KeyType {
        self.partition.key_type
    }

    /// The sort key's type, if there is one.
    pub(crate) fn sort_type(&self) -> Option<KeyType> {
        self.sort.as_ref().map(|s| s.key_type)
    }

    /// Checks one key value against a key attribute's declared type.
    pub(crate) fn check(
        name: &str,
        key_type: KeyType,
        value: &AttributeValue,
    ) -> Result<(), String> {
        check_value(
            &KeyAttribute {
                name: name.to_owned(),
                key_type,
            },
            value,
        )
    }

    /// The key of an encoded item, checked against the schema.
    pub(crate) fn key_of(&self, item: &Item) -> Result<Key, String> {
        let value = |attribute: &KeyAttribute| -> Result<AttributeValue, String> {
            let value = item
                .get(&attribute.name)
                .ok_or_else(|| format!("the item has no key attribute `{}`", attribute.name))?;
            check_value(attribute, value)?;
            Ok(value.clone())
        };
        Ok(Key {
            partition: value(&self.partition)?,
            sort: self.sort.as_ref().map(value).transpose()?,
        })
    }

    /// The key as DynamoDB's `Key` map, checked against the schema.
    pub(crate) fn key_map(&self, key: &Key) -> Result<Item, String> {
        check_value(&self.partition, &key.partition)?;
        let mut map = HashMap::from([(self.partition.name.clone(), key.partition.clone())]);
        match (&self.sort, &key.sort) {
            (Some(attribute), Some(value)) => {
                check_value(attribute, value)?;
                map.insert(attribute.name.clone(), value.clone());
            }
            (Some(attribute), None) => {
                return Err(format!("the key lacks the sort key `{}`", attribute.name));
            }
            (None, Some(_)) => return Err("the table has no sort key".to_owned()),
            (None, None) => {}
        }
        Ok(map)
    }
}

fn check_value(attribute: &KeyAttribute, value: &AttributeValue) -> Result<(), String> {
    if !attribute.key_type.matches(value) {
        return Err(format!(
            "key attribute `{}` must be a {}, got {value:?}",
            attribute.name,
            attribute.key_type.name()
        ));
    }
    let empty = match value {
        AttributeValue::S(s) => s.is_empty(),
        AttributeValue::B(b) => b.as_ref().is_empty(),
        AttributeValue::N(n) => n.trim().is_empty(),
        _ => false,
    };
    if empty {
        return Err(format!("key attribute `{}` is empty", attribute.name));
    }
    Ok(())
}

/// The key of one item: a partition key value and, for tables with a sort
/// key, a sort key value.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    partition: AttributeValue,
    sort: Option<AttributeValue>,
}

impl Key {
    /// A key with a partition key value only.
    pub fn new(partition: impl Into<KeyValue>) -> Key {
        Key {
            partition: partition.into().0,
            sort: None,
        }
    }

    /// Adds the sort key value.
    pub fn with_sort(mut self, sort: impl Into<KeyValue>) -> Key {
        self.sort = Some(sort.into().0);
        self
    }

    /// The partition key value.
    pub fn partition(&self) -> &AttributeValue {
        &self.partition
    }

    /// The sort key value, if any.
    pub fn sort(&self) -> Option<&AttributeValue> {
        self.sort.as_ref()
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn show(v: &AttributeValue, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match v {
                AttributeValue::S(s) => write!(f, "{s:?}"),
                AttributeValue::N(n) => write!(f, "{n}"),
                other => write!(f, "{other:?}"),
            }
        }
        show(&self.partition, f)?;
        if let Some(sort) = &self.sort {
            f.write_str("/")?;
            show(sort, f)?;
        }
        Ok(())
    }
}

/// A key attribute value: a string, a number or bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyValue(AttributeValue);

impl KeyValue {
    pub(crate) fn into_attribute(self) -> AttributeValue {
        self.0
    }
}

impl From<&str> for KeyValue {
    fn from(s: &str) -> Self {
        KeyValue(AttributeValue::S(s.to_owned()))
    }
}

impl From<String> for KeyValue {
    fn from(s: String) -> Self {
        KeyValue(AttributeValue::S(s))
    }
}

impl From<&String> for KeyValue {
    fn from(s: &String) -> Self {
        KeyValue(AttributeValue::S(s.clone()))
    }
}

impl From<i64> for KeyValue {
    fn from(n: i64) -> Self {
        KeyValue(AttributeValue::N(n.to_string()))
    }
}

impl From<u64> for KeyValue {
    fn from(n: u64) -> Self {
        KeyValue(AttributeValue::N(n.to_string()))
    }
}

impl From<Vec<u8>> for KeyValue {
    fn from(b: Vec<u8>) -> Self {
        KeyValue(AttributeValue::B(Blob::new(b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> KeySchema {
        KeySchema::partition("pk", KeyType::String).with_sort("sk", KeyType::Number)
    }

    #[test]
    fn a_key_is_taken_from_an_item_and_checked() {
        let item = HashMap::from([
            ("pk".to_owned(), AttributeValue::S("a".into())),
            ("sk".to_owned(), AttributeValue::N("3".into())),
            ("other".to_owned(), AttributeValue::Bool(true)),
        ]);
        let key = schema().key_of(&item).unwrap();
        assert_eq!(key, Key::new("a").with_sort(3i64));
        assert_eq!(key.to_string(), "\"a\"/3");
    }

    #[test]
    fn missing_empty_and_mistyped_keys_are_rejected_with_the_attribute_named() {
        let s = schema();
        let err = s.key_map(&Key::new("").with_sort(1i64)).unwrap_err();
        assert!(err.contains("`pk` is empty"), "{err}");
        let err = s.key_map(&Key::new("a")).unwrap_err();
        assert!(err.contains("sort key `sk`"), "{err}");
        let err = s.key_map(&Key::new(7i64).with_sort(1i64)).unwrap_err();
        assert!(err.contains("`pk` must be a string"), "{err}");
        let only_pk = KeySchema::partition("pk", KeyType::String);
        assert!(only_pk.key_map(&Key::new("a").with_sort("b")).is_err());
        let item = HashMap::from([("sk".to_owned(), AttributeValue::N("3".into()))]);
        assert!(
            s.key_of(&item)
                .unwrap_err()
                .contains("no key attribute `pk`")
        );
    }
}
