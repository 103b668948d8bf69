//! What makes a rule valid: names, probabilities, reasons and the settings
//! that belong to tables, each refusal naming the rule.

use crate::error::ConfigError;
use crate::operation::OPERATIONS;
use crate::reasons::CancellationCode;

use super::Rule;

impl Rule {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
        for reason in self.throttling_reasons.iter().flatten() {
            match (&reason.index, reason.reason.is_index()) {
                (None, true) => {
                    return Err(fail(format!(
                        "throttling_reasons: {} names an index: give it as {{\"reason\": ..., \"index\": NAME}}",
                        reason.reason
                    )));
                }
                (Some(_), false) => {
                    return Err(fail(format!(
                        "throttling_reasons: {} is a table reason and takes no index",
                        reason.reason
                    )));
                }
                _ => {}
            }
        }
        if self.throttling_reasons.as_ref().is_some_and(Vec::is_empty) {
            return Err(fail("throttling_reasons must not be empty".into()));
        }
        if let Some(codes) = &self.cancellation_reasons
            && codes.iter().all(|c| *c == CancellationCode::None)
        {
            return Err(fail(
                "cancellation_reasons needs at least one code other than None".into(),
            ));
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
