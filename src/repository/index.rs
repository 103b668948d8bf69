//! Secondary indexes, declared once like the table's key schema, so that a
//! query names an index and gets its key checked before any call.

use crate::repository::key::{KeySchema, KeyType};

/// A secondary index of a table: its name, its key schema and its kind.
///
/// ```
/// use dynagate::repository::{Index, KeySchema, KeyType};
/// let by_email = Index::global("by_email", KeySchema::partition("email", KeyType::String));
/// let by_created = Index::local("by_created", "created_at", KeyType::Number);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub(crate) name: String,
    pub(crate) kind: IndexKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IndexKind {
    /// Its own partition key; eventually consistent reads only.
    Global(KeySchema),
    /// The table's partition key with another sort key.
    Local { sort: String, key_type: KeyType },
}

impl Index {
    /// A global secondary index with its own key schema. DynamoDB answers
    /// its queries eventually consistent only, so a strongly consistent
    /// query on it is refused before any call.
    pub fn global(name: impl Into<String>, schema: KeySchema) -> Index {
        Index {
            name: name.into(),
            kind: IndexKind::Global(schema),
        }
    }

    /// A local secondary index: the table's partition key, sorted by
    /// `sort` instead of the table's sort key.
    pub fn local(name: impl Into<String>, sort: impl Into<String>, key_type: KeyType) -> Index {
        Index {
            name: name.into(),
            kind: IndexKind::Local {
                sort: sort.into(),
                key_type,
            },
        }
    }

    /// The index name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The index's key schema, given the table's.
    pub(crate) fn schema(&self, table: &KeySchema) -> KeySchema {
        match &self.kind {
            IndexKind::Global(schema) => schema.clone(),
            IndexKind::Local { sort, key_type } => table.clone().replace_sort(sort, *key_type),
        }
    }

    pub(crate) fn is_global(&self) -> bool {
        matches!(self.kind, IndexKind::Global(_))
    }
}
