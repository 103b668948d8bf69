//! Fault rules and how the ones that apply to a request combine.
//!
//! A rule names a table (or `*`) and an operation (or `*`) and sets any of:
//! capacity, a hot-key limit, error probabilities, a drop-response
//! probability, latency. For a request on table `T` and operation `O`, every
//! rule matching `T`/`O` applies, and for each setting the most specific rule
//! that sets it wins: `T:O` over `T:*` over `*:O` over `*:*`. Error
//! probabilities combine per kind the same way.
//!
//! Here: a rule and a rule set, parsed and validated. `settings` holds what a
//! rule can set; `resolve` which rules match a request and how they combine.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::inject::ErrorKind;
use crate::reasons::{CancellationCode, InjectedReason};

mod active;
mod resolve;
mod settings;
mod validate;

pub(crate) use active::Active;

#[cfg(test)]
mod shape_tests;

pub use resolve::{Effective, ErrorLimit, ErrorsAfter};
pub use settings::{Capacity, ErrorShape, HotKey, Latency};

/// One rule. Unset settings inherit from less specific rules.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Rule {
    /// A table name, or `*` for every table (the default).
    #[serde(default = "any")]
    pub table: String,
    /// A DynamoDB operation name such as `PutItem`, or `*` (the default).
    #[serde(default = "any")]
    pub operation: String,
    /// Provisioned capacity of the table (only on rules whose operation is `*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Capacity>,
    /// A per-partition-key limit (only on rules whose operation is `*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hot_key: Option<HotKey>,
    /// Probability in `0..=1` of answering each error kind without forwarding.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<ErrorKind, f64>,
    /// Probability in `0..=1` that a write is forwarded (and applied) but its
    /// response is never sent: the client connection is closed instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_response: Option<f64>,
    /// Delay added before forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    /// The `ThrottlingReasons` of injected `provisioned_throughput_exceeded`
    /// and `request_limit_exceeded` errors, and of `throttling`, which with
    /// them becomes the on-demand `ThrottlingException` carrying `throttlingReasons`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttling_reasons: Option<Vec<InjectedReason>>,
    /// The `CancellationReasons` codes of an injected `transaction_canceled`,
    /// one per item of the transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_reasons: Option<Vec<CancellationCode>>,
    /// How far the server's clock (the `Date` of an injected
    /// `invalid_signature`) is ahead of the client's; negative: behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew_seconds: Option<i64>,
    /// At most this many errors are injected under this rule's limit, counted
    /// over every request it applies to; then requests pass. Setting the rules
    /// again restarts the count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_limit: Option<u64>,
    /// The first this many requests this rule applies to pass without an
    /// injected error (counted over every request it applies to, from when
    /// the rules were set): a fault that starts in the middle of a sequence,
    /// e.g. on the second call of a paginated read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors_after: Option<u64>,
}

fn any() -> String {
    "*".to_owned()
}

impl Rule {
    /// An empty rule for `table` (or `*`) and `operation` (or `*`).
    pub fn new(table: impl Into<String>, operation: impl Into<String>) -> Rule {
        Rule {
            table: table.into(),
            operation: operation.into(),
            ..Rule::default()
        }
    }

    /// Sets the capacity.
    pub fn with_capacity(mut self, capacity: Capacity) -> Rule {
        self.capacity = Some(capacity);
        self
    }

    /// Sets the hot-key limit.
    pub fn with_hot_key(mut self, hot_key: HotKey) -> Rule {
        self.hot_key = Some(hot_key);
        self
    }

    /// Sets the probability of one error kind.
    pub fn with_error(mut self, kind: ErrorKind, probability: f64) -> Rule {
        self.errors.insert(kind, probability);
        self
    }

    /// Sets the drop-response probability.
    pub fn with_drop_response(mut self, probability: f64) -> Rule {
        self.drop_response = Some(probability);
        self
    }

    /// Sets the latency.
    pub fn with_latency(mut self, latency: Latency) -> Rule {
        self.latency = Some(latency);
        self
    }

    /// Sets the throttling reasons of injected throttles.
    pub fn with_throttling_reasons(mut self, reasons: Vec<InjectedReason>) -> Rule {
        self.throttling_reasons = Some(reasons);
        self
    }

    /// Sets the cancellation reason codes of an injected `transaction_canceled`.
    pub fn with_cancellation_reasons(mut self, codes: Vec<CancellationCode>) -> Rule {
        self.cancellation_reasons = Some(codes);
        self
    }

    /// Sets the clock skew of an injected `invalid_signature`, in seconds.
    pub fn with_clock_skew_seconds(mut self, seconds: i64) -> Rule {
        self.clock_skew_seconds = Some(seconds);
        self
    }

    /// Injects at most `count` errors under this rule, then lets requests pass.
    pub fn with_error_limit(mut self, count: u64) -> Rule {
        self.error_limit = Some(count);
        self
    }

    /// Lets the first `count` requests under this rule pass without errors.
    pub fn with_errors_after(mut self, count: u64) -> Rule {
        self.errors_after = Some(count);
        self
    }

    fn name(&self) -> String {
        format!("{}:{}", self.table, self.operation)
    }
}

/// A validated list of rules.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// Validates `rules`: known operations, probabilities in `0..=1`, capacity
    /// only on `table:*` rules, non-zero rates, no duplicate `table:operation`.
    pub fn new(rules: Vec<Rule>) -> Result<RuleSet, ConfigError> {
        for (i, rule) in rules.iter().enumerate() {
            rule.validate()?;
            if rules[..i]
                .iter()
                .any(|r| r.table == rule.table && r.operation == rule.operation)
            {
                return Err(ConfigError::DuplicateRule { rule: rule.name() });
            }
        }
        Ok(RuleSet { rules })
    }

    /// Parses and validates a JSON array of rules.
    pub fn from_json(json: &str) -> Result<RuleSet, ConfigError> {
        let rules: Vec<Rule> =
            serde_json::from_str(json).map_err(|source| ConfigError::Json { source })?;
        RuleSet::new(rules)
    }

    /// The rules, in the order given.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

impl<'de> Deserialize<'de> for RuleSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let rules = Vec::<Rule>::deserialize(deserializer)?;
        RuleSet::new(rules).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule_set(json: &str) -> RuleSet {
        RuleSet::from_json(json).expect("valid rules")
    }

    fn error_of(json: &str) -> String {
        RuleSet::from_json(json)
            .expect_err("invalid rules")
            .to_string()
    }

    #[test]
    fn most_specific_rule_wins_per_setting() {
        let rules = rule_set(
            r#"[
              {"errors": {"throttling": 0.1}, "drop_response": 0.5, "latency": {"fixed_ms": 1}},
              {"operation": "PutItem", "errors": {"throttling": 0.2}},
              {"table": "users", "capacity": {"write_units_per_second": 5}, "drop_response": 0.25},
              {"table": "users", "operation": "PutItem", "errors": {"throttling": 0.3, "internal_server_error": 1.0}}
            ]"#,
        );
        let put = rules.resolve("users", "PutItem");
        assert_eq!(put.errors[&ErrorKind::Throttling], 0.3);
        assert_eq!(put.errors[&ErrorKind::InternalServerError], 1.0);
        assert_eq!(put.drop_response, 0.25, "table:* beats *:PutItem and *:*");
        assert_eq!(put.latency.fixed_ms, 1, "inherited from *:*");
        assert_eq!(
            put.capacity.as_ref().and_then(|c| c.write_units_per_second),
            Some(5)
        );

        let get = rules.resolve("users", "GetItem");
        assert_eq!(get.errors[&ErrorKind::Throttling], 0.1);
        assert!(!get.errors.contains_key(&ErrorKind::InternalServerError));

        let other_put = rules.resolve("orders", "PutItem");
        assert_eq!(
            other_put.errors[&ErrorKind::Throttling],
            0.2,
            "*:PutItem beats *:*"
        );
        assert_eq!(other_put.drop_response, 0.5);
        assert!(other_put.capacity.is_none());
    }

    #[test]
    fn requests_without_a_table_match_only_wildcard_tables() {
        let rules = rule_set(r#"[{"table": "users", "errors": {"throttling": 1.0}}]"#);
        assert!(rules.resolve("", "ListTables").errors.is_empty());
    }

    #[test]
    fn defaults_fill_in_capacity_and_hot_key() {
        let rules = rule_set(
            r#"[{"table": "t", "capacity": {"read_units_per_second": 10}, "hot_key": {"partition_key": "pk"}}]"#,
        );
        let effective = rules.resolve("t", "GetItem");
        let capacity = effective.capacity.unwrap();
        assert_eq!(capacity.burst_seconds, 300);
        assert_eq!(capacity.initial_read_units, 0);
        assert_eq!(capacity.write_units_per_second, None);
        let hot = effective.hot_key.unwrap();
        assert_eq!(
            (hot.read_units_per_second, hot.write_units_per_second),
            (3000, 1000)
        );
    }

    #[test]
    fn invalid_rules_say_what_is_wrong() {
        assert!(error_of(r#"[{"errors": {"teapot": 0.1}}]"#).contains("unknown variant `teapot`"));
        assert!(
            error_of(r#"[{"errors": {"throttling": 1.5}}]"#)
                .contains("probability 1.5 is outside 0..=1")
        );
        assert!(error_of(r#"[{"drop_response": -0.1}]"#).contains("drop_response"));
        assert!(
            error_of(r#"[{"operation": "PutItems"}]"#)
                .contains("unknown DynamoDB operation \"PutItems\"")
        );
        assert!(
            error_of(r#"[{"table": "t", "operation": "PutItem", "capacity": {"write_units_per_second": 1}}]"#)
                .contains("operation is \"*\"")
        );
        assert!(
            error_of(r#"[{"capacity": {"write_units_per_second": 0}}]"#).contains("at least 1")
        );
        assert!(
            error_of(r#"[{"capacity": {"write_units_per_second": 1, "burst_seconds": 0}}]"#)
                .contains("burst_seconds")
        );
        assert!(
            error_of(r#"[{"capacity": {"write_units_per_second": 1, "burst_seconds": 10, "initial_write_units": 11}}]"#)
                .contains("exceeds the bank of 10 units")
        );
        assert!(error_of(r#"[{"table": "t"}, {"table": "t"}]"#).contains("t:* appears twice"));
        assert!(error_of(r#"[{"tabel": "t"}]"#).contains("unknown field `tabel`"));
    }

    #[test]
    fn rules_round_trip_through_json() {
        let rules = RuleSet::new(vec![
            Rule::new("users", "*")
                .with_capacity(Capacity::new(Some(10), Some(5)).with_initial_units(3, 2))
                .with_hot_key(HotKey::new("pk").with_units(30, 10)),
            Rule::new("*", "PutItem")
                .with_error(ErrorKind::ServiceUnavailable, 0.5)
                .with_drop_response(0.1)
                .with_latency(Latency {
                    fixed_ms: 3,
                    jitter_ms: 4,
                }),
        ])
        .unwrap();
        let json = serde_json::to_string(&rules).unwrap();
        assert_eq!(RuleSet::from_json(&json).unwrap(), rules);
    }
}
