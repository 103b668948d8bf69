//! What the Redis limiter answers when Redis cannot decide: Redis failed, was
//! late, or the limiter's [circuit breaker](crate::BreakerSettings) is open.

use std::num::NonZeroU32;

use crate::error::ConfigError;

/// How the Redis limiter answers when Redis fails, is late, or the circuit
/// is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Admit: availability over protection. Right for limits that only
    /// smooth traffic, wrong for abuse limits (a dead Redis opens the gate).
    FailOpen,
    /// Deny, with the breaker's open time as retry-after: protection over
    /// availability (login attempts, expensive endpoints).
    FailClosed,
    /// Decide with the in-memory limiter, each quota divided by the number of
    /// instances that share it, so the fleet as a whole stays within the
    /// quota's rate without coordinating (each instance holds its own share,
    /// so an unevenly balanced caller gets less than the whole; a burst
    /// smaller than the number of instances is rounded up to one token each,
    /// see [`Quota::shared_by`](crate::limiter::Quota::shared_by)).
    Fallback {
        /// How many instances enforce the quota together.
        instances: NonZeroU32,
    },
}

impl FailurePolicy {
    /// [`FailurePolicy::Fallback`] for `instances` instances (at least 1).
    pub fn fallback(instances: u32) -> Result<FailurePolicy, ConfigError> {
        let instances = NonZeroU32::new(instances)
            .ok_or_else(|| ConfigError::invalid("instances", "must be at least 1"))?;
        Ok(FailurePolicy::Fallback { instances })
    }

    /// A short stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            FailurePolicy::FailOpen => "fail_open",
            FailurePolicy::FailClosed => "fail_closed",
            FailurePolicy::Fallback { .. } => "fallback",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_needs_an_instance() {
        assert!(FailurePolicy::fallback(0).is_err());
        assert_eq!(FailurePolicy::fallback(3).unwrap().label(), "fallback");
    }
}
