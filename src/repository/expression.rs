//! Filters, projections and key conditions, built only through expression
//! attribute names (`#n0`) and values (`:v0`): no text a caller supplies
//! ever becomes part of an expression, so reserved words (`name`, `status`,
//! `size`) work as attribute names and no value can inject syntax.
//!
//! Attribute names are top-level names, taken literally: `a.b` is the
//! attribute called `a.b`, not a path into a map.

use std::collections::HashMap;
use std::fmt::Write as _;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

/// A value compared in a [`Filter`]: a string, a number, bytes or a boolean.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterValue(pub(crate) AttributeValue);

macro_rules! filter_value_from {
    ($($type:ty => |$v:ident| $make:expr),+ $(,)?) => {
        $(impl From<$type> for FilterValue {
            fn from($v: $type) -> Self {
                FilterValue($make)
            }
        })+
    };
}

filter_value_from!(
    &str => |v| AttributeValue::S(v.to_owned()),
    String => |v| AttributeValue::S(v),
    &String => |v| AttributeValue::S(v.clone()),
    i64 => |v| AttributeValue::N(v.to_string()),
    u64 => |v| AttributeValue::N(v.to_string()),
    i32 => |v| AttributeValue::N(v.to_string()),
    u32 => |v| AttributeValue::N(v.to_string()),
    bool => |v| AttributeValue::Bool(v),
    Vec<u8> => |v| AttributeValue::B(Blob::new(v)),
);

/// A condition on items, applied by DynamoDB after it read them.
///
/// A filter saves bandwidth, not capacity: DynamoDB charges for every item it
/// read, also those the filter discards. That is why every Query and Scan
/// has a [read budget](crate::repository::ReadBudget).
///
/// ```
/// use dynagate::repository::Filter;
/// let active_adults = Filter::attr("status").eq("active").and(Filter::attr("age").ge(18));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Filter(Node);

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Compare(String, &'static str, FilterValue),
    Between(String, FilterValue, FilterValue),
    BeginsWith(String, FilterValue),
    Contains(String, FilterValue),
    Exists(String, bool),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
}

/// An attribute a [`Filter`] is about; its methods make the filter.
#[derive(Debug, Clone)]
pub struct FilterAttribute(String);

impl Filter {
    /// The attribute `name` (a top-level attribute, taken literally).
    pub fn attr(name: impl Into<String>) -> FilterAttribute {
        FilterAttribute(name.into())
    }

    /// Both conditions.
    pub fn and(self, other: Filter) -> Filter {
        Filter(Node::And(Box::new(self.0), Box::new(other.0)))
    }

    /// Either condition.
    pub fn or(self, other: Filter) -> Filter {
        Filter(Node::Or(Box::new(self.0), Box::new(other.0)))
    }

    /// The opposite condition.
    #[allow(clippy::should_implement_trait)] // `!filter` would read worse than `Filter::not`
    pub fn not(filter: Filter) -> Filter {
        Filter(Node::Not(Box::new(filter.0)))
    }
}

macro_rules! comparisons {
    ($($(#[$doc:meta])* $method:ident => $op:literal),+ $(,)?) => {
        $($(#[$doc])*
        pub fn $method(self, value: impl Into<FilterValue>) -> Filter {
            Filter(Node::Compare(self.0, $op, value.into()))
        })+
    };
}

impl FilterAttribute {
    comparisons!(
        /// Equal to `value`.
        eq => "=",
        /// Not equal to `value` (also true when the attribute is missing).
        ne => "<>",
        /// Less than `value`.
        lt => "<",
        /// Less than or equal to `value`.
        le => "<=",
        /// Greater than `value`.
        gt => ">",
        /// Greater than or equal to `value`.
        ge => ">=",
    );

    /// Between `low` and `high`, both included.
    pub fn between(self, low: impl Into<FilterValue>, high: impl Into<FilterValue>) -> Filter {
        Filter(Node::Between(self.0, low.into(), high.into()))
    }

    /// A string or bytes starting with `prefix`.
    pub fn begins_with(self, prefix: impl Into<FilterValue>) -> Filter {
        Filter(Node::BeginsWith(self.0, prefix.into()))
    }

    /// A string containing `part`, or a set or list containing the element.
    pub fn contains(self, part: impl Into<FilterValue>) -> Filter {
        Filter(Node::Contains(self.0, part.into()))
    }

    /// The attribute is present.
    pub fn exists(self) -> Filter {
        Filter(Node::Exists(self.0, true))
    }

    /// The attribute is absent.
    pub fn not_exists(self) -> Filter {
        Filter(Node::Exists(self.0, false))
    }
}

/// `ExpressionAttributeNames`.
pub(crate) type Names = HashMap<String, String>;
/// `ExpressionAttributeValues`.
pub(crate) type Values = HashMap<String, AttributeValue>;

/// The names and values of one request's expressions, and a canonical text
/// of everything placed so far (what a cursor is bound to).
#[derive(Debug, Default)]
pub(crate) struct Placeholders {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    /// Every name and value in the order placed: with the expressions'
    /// text, this determines the request's meaning.
    canonical: String,
}

impl Placeholders {
    /// `#nK` for an attribute name (the same placeholder for the same name).
    pub(crate) fn name(&mut self, attribute: &str) -> String {
        if let Some((placeholder, _)) = self.names.iter().find(|(_, a)| *a == attribute) {
            return placeholder.clone();
        }
        let placeholder = format!("#n{}", self.names.len());
        let _ = write!(self.canonical, "{placeholder}={attribute:?};");
        self.names.insert(placeholder.clone(), attribute.to_owned());
        placeholder
    }

    /// `:vK` for a value.
    pub(crate) fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        let _ = write!(self.canonical, "{placeholder}={};", canonical_value(&value));
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    /// The expression text of a filter.
    pub(crate) fn filter(&mut self, filter: &Filter) -> String {
        self.node(&filter.0)
    }

    fn node(&mut self, node: &Node) -> String {
        match node {
            Node::Compare(name, op, value) => {
                let (n, v) = (self.name(name), self.value(value.0.clone()));
                format!("{n} {op} {v}")
            }
            Node::Between(name, low, high) => {
                let n = self.name(name);
                let (l, h) = (self.value(low.0.clone()), self.value(high.0.clone()));
                format!("{n} BETWEEN {l} AND {h}")
            }
            Node::BeginsWith(name, prefix) => {
                let (n, v) = (self.name(name), self.value(prefix.0.clone()));
                format!("begins_with({n}, {v})")
            }
            Node::Contains(name, part) => {
                let (n, v) = (self.name(name), self.value(part.0.clone()));
                format!("contains({n}, {v})")
            }
            Node::Exists(name, true) => format!("attribute_exists({})", self.name(name)),
            Node::Exists(name, false) => format!("attribute_not_exists({})", self.name(name)),
            Node::And(a, b) => format!("({}) AND ({})", self.node(a), self.node(b)),
            Node::Or(a, b) => format!("({}) OR ({})", self.node(a), self.node(b)),
            Node::Not(a) => format!("NOT ({})", self.node(a)),
        }
    }

    /// A projection of `attributes` (`#n0, #n1`).
    pub(crate) fn projection(&mut self, attributes: &[String]) -> String {
        attributes
            .iter()
            .map(|a| self.name(a))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(crate) fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The maps for the request (`None` when empty: DynamoDB refuses an
    /// empty map).
    pub(crate) fn into_maps(self) -> (Option<Names>, Option<Values>) {
        let names = (!self.names.is_empty()).then_some(self.names);
        let values = (!self.values.is_empty()).then_some(self.values);
        (names, values)
    }
}

/// One line per value, unambiguous across types (`S"a"` is not `N"a"`).
fn canonical_value(value: &AttributeValue) -> String {
    match value {
        AttributeValue::S(s) => format!("S{s:?}"),
        AttributeValue::N(n) => format!("N{n:?}"),
        AttributeValue::B(b) => format!("B{:?}", b.as_ref()),
        AttributeValue::Bool(b) => format!("BOOL{b}"),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_caller_text_reaches_the_expression() {
        let mut p = Placeholders::default();
        let filter = Filter::attr("status")
            .eq("x) OR (1 = 1")
            .and(Filter::not(Filter::attr("size").between(1i64, 5i64)))
            .or(Filter::attr("name")
                .begins_with("a")
                .and(Filter::attr("status").exists()));
        let text = p.filter(&filter);
        assert_eq!(
            text,
            "((#n0 = :v0) AND (NOT (#n1 BETWEEN :v1 AND :v2))) OR ((begins_with(#n2, :v3)) AND (attribute_exists(#n0)))"
        );
        assert!(!text.contains("status") && !text.contains("1 = 1"));
        let (names, values) = p.into_maps();
        assert_eq!(names.unwrap()["#n0"], "status");
        assert_eq!(
            values.unwrap()[":v0"],
            AttributeValue::S("x) OR (1 = 1".into())
        );
    }

    #[test]
    fn the_canonical_text_tells_types_and_values_apart() {
        let text = |value: FilterValue| {
            let mut p = Placeholders::default();
            p.filter(&Filter::attr("a").eq(value));
            p.canonical().to_owned()
        };
        assert_ne!(text("1".into()), text(1i64.into()));
        assert_ne!(text("1".into()), text("2".into()));
        assert_eq!(text("1".into()), text("1".into()));
    }
}
