//! Fault rules and how the ones that apply to a request combine.
//!
//! A rule names a table (or `*`) and an operation (or `*`) and sets any of:
//! capacity, a hot-key limit, error probabilities, a drop-response
//! probability, latency. For a request on table `T` and operation `O`, every
//! rule matching `T`/`O` applies, and for each setting the most specific rule
//! that sets it wins: `T:O` over `T:*` over `*:O` over `*:*`. Error
//! probabilities combine per kind the same way.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::inject::ErrorKind;
use crate::operation::OPERATIONS;

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

    fn name(&self) -> String {
        format!("{}:{}", self.table, self.operation)
    }

    /// 0 for `*:*` up to 3 for `table:operation`.
    fn specificity(&self) -> u8 {
        u8::from(self.table != "*") * 2 + u8::from(self.operation != "*")
    }

    fn matches(&self, table: &str, operation: &str) -> bool {
        (self.table == "*" || self.table == table)
            && (self.operation == "*" || self.operation == operation)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let fail = |problem: String| ConfigError::Rule {
            rule: self.name(),
            problem,
        };
        if self.table.is_empty() || self.operation.is_empty() {
            return Err(fail("table and operation must be names or \"*\"".into()));
        }
        if self.operation != "*" && !OPERATIONS.contains(&self.operation.as_str()) {
            return Err(fail(format!(
                "unknown DynamoDB operation {:?}",
                self.operation
            )));
        }
        if self.operation != "*" && (self.capacity.is_some() || self.hot_key.is_some()) {
            return Err(fail(
                "capacity and hot_key belong to a table: set them on a rule whose operation is \"*\"".into(),
            ));
        }
        for (kind, p) in &self.errors {
            check_probability(*p).map_err(|e| fail(format!("errors.{kind}: {e}")))?;
        }
        if let Some(p) = self.drop_response {
            check_probability(p).map_err(|e| fail(format!("drop_response: {e}")))?;
        }
        if let Some(capacity) = &self.capacity {
            capacity.validate().map_err(fail)?;
        }
        if let Some(hot_key) = &self.hot_key {
            if hot_key.partition_key.is_empty() {
                return Err(fail(
                    "hot_key.partition_key must name the partition key attribute".into(),
                ));
            }
            if hot_key.read_units_per_second == 0 || hot_key.write_units_per_second == 0 {
                return Err(fail("hot_key units per second must be at least 1".into()));
            }
        }
        Ok(())
    }
}

fn check_probability(p: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(format!("probability {p} is outside 0..=1"))
    }
}

/// A table's provisioned capacity, modelled on DynamoDB's provisioned mode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Capacity {
    /// Read capacity units per second; unset means reads are not limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_units_per_second: Option<u32>,
    /// Write capacity units per second; unset means writes are not limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_units_per_second: Option<u32>,
    /// Unused capacity is banked up to this many seconds' worth (DynamoDB: 300).
    #[serde(default = "default_burst_seconds")]
    pub burst_seconds: u32,
    /// Read units in the bank at start (default 0, so tests are deterministic).
    #[serde(default)]
    pub initial_read_units: u64,
    /// Write units in the bank at start (default 0).
    #[serde(default)]
    pub initial_write_units: u64,
}

fn default_burst_seconds() -> u32 {
    300
}

impl Capacity {
    /// Read and write units per second (either may be `None`: unlimited),
    /// a 300-second burst bank and an empty initial bank.
    pub fn new(
        read_units_per_second: Option<u32>,
        write_units_per_second: Option<u32>,
    ) -> Capacity {
        Capacity {
            read_units_per_second,
            write_units_per_second,
            burst_seconds: default_burst_seconds(),
            initial_read_units: 0,
            initial_write_units: 0,
        }
    }

    /// Sets the burst bank size in seconds.
    pub fn with_burst_seconds(mut self, seconds: u32) -> Capacity {
        self.burst_seconds = seconds;
        self
    }

    /// Sets the initial bank, in units.
    pub fn with_initial_units(mut self, read: u64, write: u64) -> Capacity {
        self.initial_read_units = read;
        self.initial_write_units = write;
        self
    }

    fn validate(&self) -> Result<(), String> {
        if self.burst_seconds == 0 {
            return Err("capacity.burst_seconds must be at least 1".into());
        }
        for (what, rate, initial) in [
            ("read", self.read_units_per_second, self.initial_read_units),
            (
                "write",
                self.write_units_per_second,
                self.initial_write_units,
            ),
        ] {
            match rate {
                Some(0) => {
                    return Err(format!(
                        "capacity.{what}_units_per_second must be at least 1"
                    ));
                }
                Some(rate) => {
                    let bank = u64::from(rate) * u64::from(self.burst_seconds);
                    if initial > bank {
                        return Err(format!(
                            "capacity.initial_{what}_units {initial} exceeds the bank of {bank} units"
                        ));
                    }
                }
                None if initial > 0 => {
                    return Err(format!(
                        "capacity.initial_{what}_units needs {what}_units_per_second"
                    ));
                }
                None => {}
            }
        }
        Ok(())
    }
}

/// A per-partition-key limit, like DynamoDB's per-partition throughput.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HotKey {
    /// The table's partition key attribute name.
    pub partition_key: String,
    /// Read units per second per key value (DynamoDB: 3000).
    #[serde(default = "default_hot_reads")]
    pub read_units_per_second: u32,
    /// Write units per second per key value (DynamoDB: 1000).
    #[serde(default = "default_hot_writes")]
    pub write_units_per_second: u32,
}

fn default_hot_reads() -> u32 {
    3000
}

fn default_hot_writes() -> u32 {
    1000
}

impl HotKey {
    /// DynamoDB's per-partition limits (3000 RCU, 1000 WCU) on `partition_key`.
    pub fn new(partition_key: impl Into<String>) -> HotKey {
        HotKey {
            partition_key: partition_key.into(),
            read_units_per_second: default_hot_reads(),
            write_units_per_second: default_hot_writes(),
        }
    }

    /// Sets the per-key limits.
    pub fn with_units(mut self, read_per_second: u32, write_per_second: u32) -> HotKey {
        self.read_units_per_second = read_per_second;
        self.write_units_per_second = write_per_second;
        self
    }
}

/// A delay of `fixed_ms` plus a uniform random `0..=jitter_ms`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    /// Milliseconds always added.
    #[serde(default)]
    pub fixed_ms: u64,
    /// Up to this many more milliseconds, uniformly drawn.
    #[serde(default)]
    pub jitter_ms: u64,
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

    /// What applies to `operation` on `table` (`""` for requests without a
    /// table, which only `*` rules match).
    pub fn resolve(&self, table: &str, operation: &str) -> Effective {
        let mut matching: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| r.matches(table, operation))
            .collect();
        matching.sort_by_key(|r| r.specificity());
        let mut effective = Effective::default();
        for rule in matching {
            if rule.capacity.is_some() {
                effective.capacity.clone_from(&rule.capacity);
            }
            if rule.hot_key.is_some() {
                effective.hot_key.clone_from(&rule.hot_key);
            }
            effective
                .errors
                .extend(rule.errors.iter().map(|(k, p)| (*k, *p)));
            if let Some(p) = rule.drop_response {
                effective.drop_response = p;
            }
            if let Some(latency) = rule.latency {
                effective.latency = latency;
            }
        }
        effective
    }
}

impl<'de> Deserialize<'de> for RuleSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let rules = Vec::<Rule>::deserialize(deserializer)?;
        RuleSet::new(rules).map_err(serde::de::Error::custom)
    }
}

/// The settings that apply to one table and operation after precedence.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Effective {
    /// The table's capacity, if limited.
    pub capacity: Option<Capacity>,
    /// The table's per-key limit, if any.
    pub hot_key: Option<HotKey>,
    /// Error probabilities by kind.
    pub errors: BTreeMap<ErrorKind, f64>,
    /// Drop-response probability (writes only).
    pub drop_response: f64,
    /// Added latency.
    pub latency: Latency,
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
