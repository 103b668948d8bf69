//! Query: the items of one partition, on the table or a declared index,
//! narrowed by a sort key condition, one page or one stream at a time.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::repository::expression::Placeholders;
use crate::repository::key::{KeySchema, KeyValue};
use crate::repository::listing::{ListKind, Listing, Request, listing_setters};
use crate::repository::page::ReadBudget;
use crate::repository::{Consistency, Repository, RepositoryError};

/// A key condition: the partition key's value, and optionally a condition on
/// the sort key.
///
/// ```
/// use dynagate::repository::{KeyCondition, SortCondition};
/// let march = KeyCondition::partition("ada").sort(SortCondition::begins_with("2026-03"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct KeyCondition {
    partition: KeyValue,
    sort: Option<SortCondition>,
}

impl KeyCondition {
    /// The items whose partition key equals `value`.
    pub fn partition(value: impl Into<KeyValue>) -> KeyCondition {
        KeyCondition {
            partition: value.into(),
            sort: None,
        }
    }

    /// Only the items whose sort key meets `condition`.
    pub fn sort(mut self, condition: SortCondition) -> KeyCondition {
        self.sort = Some(condition);
        self
    }
}

/// The sort key conditions DynamoDB's `KeyConditionExpression` has.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SortCondition {
    /// `sk = value`
    Eq(KeyValue),
    /// `sk < value`
    Lt(KeyValue),
    /// `sk <= value`
    Le(KeyValue),
    /// `sk > value`
    Gt(KeyValue),
    /// `sk >= value`
    Ge(KeyValue),
    /// `sk BETWEEN low AND high` (both included)
    Between(KeyValue, KeyValue),
    /// `begins_with(sk, prefix)` (strings and bytes)
    BeginsWith(KeyValue),
}

impl SortCondition {
    /// `sk = value`
    pub fn eq(value: impl Into<KeyValue>) -> SortCondition {
        SortCondition::Eq(value.into())
    }
    /// `sk < value`
    pub fn lt(value: impl Into<KeyValue>) -> SortCondition {
        SortCondition::Lt(value.into())
    }
    /// `sk <= value`
    pub fn le(value: impl Into<KeyValue>) -> SortCondition {
        SortCondition::Le(value.into())
    }
    /// `sk > value`
    pub fn gt(value: impl Into<KeyValue>) -> SortCondition {
        SortCondition::Gt(value.into())
    }
    /// `sk >= value`
    pub fn ge(value: impl Into<KeyValue>) -> SortCondition {
        SortCondition::Ge(value.into())
    }
    /// `sk BETWEEN low AND high`
    pub fn between(low: impl Into<KeyValue>, high: impl Into<KeyValue>) -> SortCondition {
        SortCondition::Between(low.into(), high.into())
    }
    /// `begins_with(sk, prefix)`
    pub fn begins_with(prefix: impl Into<KeyValue>) -> SortCondition {
        SortCondition::BeginsWith(prefix.into())
    }

    fn values(&self) -> Vec<&KeyValue> {
        match self {
            SortCondition::Between(low, high) => vec![low, high],
            SortCondition::Eq(v)
            | SortCondition::Lt(v)
            | SortCondition::Le(v)
            | SortCondition::Gt(v)
            | SortCondition::Ge(v)
            | SortCondition::BeginsWith(v) => vec![v],
        }
    }
}

/// A query being built; [`page`](Query::page) or [`stream`](Query::stream)
/// runs it. Made by [`Repository::query`].
#[derive(Debug)]
pub struct Query<'r, T> {
    repository: &'r Repository<T>,
    condition: KeyCondition,
    index: Option<String>,
    common: Request,
}

impl<T> Repository<T>
where
    T: Serialize + DeserializeOwned,
{
    /// A query for the items matching `condition`, on the table unless
    /// [`Query::index`] names a declared index. Its read budget is
    /// [`ReadBudget::QUERY_DEFAULT`] unless [`Query::budget`] says otherwise.
    pub fn query(&self, condition: KeyCondition) -> Query<'_, T> {
        Query {
            repository: self,
            condition,
            index: None,
            common: Request::new(ReadBudget::QUERY_DEFAULT),
        }
    }
}

impl<'r, T> Query<'r, T>
where
    T: Serialize + DeserializeOwned,
{
    listing_setters!();

    /// Queries the declared index `name` (see [`Repository::with_index`]).
    pub fn index(mut self, name: impl Into<String>) -> Self {
        self.index = Some(name.into());
        self
    }

    /// Highest sort key first.
    pub fn descending(mut self) -> Self {
        self.common.forward = false;
        self
    }

    /// The most this query may read (units and calls); see [`ReadBudget`].
    pub fn budget(mut self, budget: ReadBudget) -> Self {
        self.common.budget = budget;
        self
    }

    /// One page: up to the page size of matching items, within the budget.
    pub async fn page(self) -> Result<crate::repository::Page<T>, RepositoryError<T>> {
        let listing = self.build()?;
        listing.page().await
    }

    /// Every matching item, page after page, within the budget: when the
    /// budget runs out before the end, the stream ends with
    /// [`RepositoryError::BudgetExhausted`] and its cursor.
    pub fn stream(
        self,
    ) -> Result<
        impl futures_core::Stream<Item = Result<T, RepositoryError<T>>> + Send + 'r,
        RepositoryError<T>,
    >
    where
        T: Send + 'r,
    {
        Ok(self.build()?.stream())
    }

    fn build(self) -> Result<Listing<'r, T>, RepositoryError<T>> {
        let repository = self.repository;
        let invalid = |message: String| RepositoryError::InvalidQuery(message);
        let (schema, global) = match &self.index {
            None => (repository.schema().clone(), false),
            Some(name) => {
                let index = repository.index_named(name).ok_or_else(|| {
                    invalid(format!(
                        "index `{name}` is not declared on this repository (Repository::with_index)"
                    ))
                })?;
                (index.schema(repository.schema()), index.is_global())
            }
        };
        if global && self.common.consistency == Consistency::Strong {
            return Err(invalid(
                "a global secondary index cannot be read with strong consistency".to_owned(),
            ));
        }
        let mut placeholders = Placeholders::default();
        let key_condition =
            key_condition(&schema, &self.condition, &mut placeholders).map_err(invalid)?;
        let partition_label = match self.condition.partition.clone().into_attribute() {
            AttributeValue::S(s) => s,
            AttributeValue::N(n) => n,
            _ => String::new(),
        };
        self.common.into_listing(
            repository,
            ListKind::Query {
                index: self.index,
                key_condition,
                partition_label,
            },
            placeholders,
        )
    }
}

fn key_condition(
    schema: &KeySchema,
    condition: &KeyCondition,
    placeholders: &mut Placeholders,
) -> Result<String, String> {
    let partition = condition.partition.clone().into_attribute();
    KeySchema::check(schema.partition_name(), schema.partition_type(), &partition)?;
    let pk = placeholders.name(schema.partition_name());
    let pv = placeholders.value(partition);
    let mut text = format!("{pk} = {pv}");
    if let Some(sort) = &condition.sort {
        let (Some(name), Some(key_type)) = (schema.sort_name(), schema.sort_type()) else {
            return Err("a sort key condition needs a sort key; this key schema has none".into());
        };
        for value in sort.values() {
            KeySchema::check(name, key_type, &value.clone().into_attribute())?;
        }
        let sk = placeholders.name(name);
        let mut value = |v: &KeyValue| placeholders.value(v.clone().into_attribute());
        let clause = match sort {
            SortCondition::Eq(v) => format!("{sk} = {}", value(v)),
            SortCondition::Lt(v) => format!("{sk} < {}", value(v)),
            SortCondition::Le(v) => format!("{sk} <= {}", value(v)),
            SortCondition::Gt(v) => format!("{sk} > {}", value(v)),
            SortCondition::Ge(v) => format!("{sk} >= {}", value(v)),
            SortCondition::Between(low, high) => {
                let low = value(low);
                format!("{sk} BETWEEN {low} AND {}", value(high))
            }
            SortCondition::BeginsWith(v) => format!("begins_with({sk}, {})", value(v)),
        };
        text.push_str(" AND ");
        text.push_str(&clause);
    }
    Ok(text)
}
