//! Which rules apply to a request, and how their settings combine: for each
//! setting the most specific matching rule that sets it wins.

use std::collections::BTreeMap;

use super::{Capacity, ErrorShape, HotKey, Latency, Rule, RuleSet};
use crate::inject::ErrorKind;

impl Rule {
    /// 0 for `*:*` up to 3 for `table:operation`.
    fn specificity(&self) -> u8 {
        u8::from(self.table != "*") * 2 + u8::from(self.operation != "*")
    }

    fn matches(&self, table: &str, operation: &str) -> bool {
        (self.table == "*" || self.table == table)
            && (self.operation == "*" || self.operation == operation)
    }
}

impl RuleSet {
    /// What applies to `operation` on `table` (`""` for requests without a
    /// table, which only `*` rules match).
    pub fn resolve(&self, table: &str, operation: &str) -> Effective {
        let mut matching: Vec<(usize, &Rule)> = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.matches(table, operation))
            .collect();
        matching.sort_by_key(|(_, r)| r.specificity());
        let mut effective = Effective::default();
        for (index, rule) in matching {
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
            let shape = &mut effective.shape;
            if rule.throttling_reasons.is_some() {
                shape
                    .throttling_reasons
                    .clone_from(&rule.throttling_reasons);
            }
            if rule.cancellation_reasons.is_some() {
                shape
                    .cancellation_reasons
                    .clone_from(&rule.cancellation_reasons);
            }
            if rule.clock_skew_seconds.is_some() {
                shape.clock_skew_seconds = rule.clock_skew_seconds;
            }
            if let Some(max) = rule.error_limit {
                effective.error_limit = Some(ErrorLimit { rule: index, max });
            }
            if let Some(after) = rule.errors_after {
                effective.errors_after = Some(ErrorsAfter { rule: index, after });
            }
        }
        effective
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
    /// Reasons and clock skew of injected errors.
    pub shape: ErrorShape,
    /// The cap on injected errors, if any.
    pub error_limit: Option<ErrorLimit>,
    /// The requests that pass before errors are injected, if any.
    pub errors_after: Option<ErrorsAfter>,
}

/// Requests that pass before any error is injected: the first `after`,
/// counted per rule (the one that set it) over every request it applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorsAfter {
    /// The position of the rule that set it, in its rule set.
    pub rule: usize,
    /// How many requests pass first.
    pub after: u64,
}

/// A cap on injected errors: at most `max`, counted per rule (the one that
/// set it) over every request the cap applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorLimit {
    /// The position of the rule that set the cap, in its rule set.
    pub rule: usize,
    /// The most errors injected under the cap.
    pub max: u64,
}
