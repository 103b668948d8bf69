//! The rules in force, with what they have injected so far: the counts that
//! `error_limit` caps. A new rule set starts with fresh counts.

use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{ErrorLimit, ErrorsAfter, RuleSet};

/// A rule set in force and, per rule, the errors injected under its limit.
#[derive(Debug)]
pub(crate) struct Active {
    set: RuleSet,
    injected: Vec<AtomicU64>,
    /// Per rule, the requests counted against its `errors_after`.
    seen: Vec<AtomicU64>,
}

impl Active {
    pub(crate) fn new(set: RuleSet) -> Active {
        let injected = set.rules().iter().map(|_| AtomicU64::new(0)).collect();
        let seen = set.rules().iter().map(|_| AtomicU64::new(0)).collect();
        Active {
            set,
            injected,
            seen,
        }
    }

    /// The rule set.
    pub(crate) fn set(&self) -> &RuleSet {
        &self.set
    }

    /// Counts one injection against `limit` and says whether it may happen:
    /// false once `limit.max` injections were counted. No limit: always true.
    pub(crate) fn take_injection(&self, limit: Option<ErrorLimit>) -> bool {
        let Some(limit) = limit else {
            return true;
        };
        let Some(count) = self.injected.get(limit.rule) else {
            return true;
        };
        count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit.max).then_some(n + 1)
            })
            .is_ok()
    }
}

impl Active {
    /// Counts one request against `after` and says whether errors may be
    /// injected into it: false for the first `after.after`. None: true.
    pub(crate) fn past_errors_after(&self, after: Option<ErrorsAfter>) -> bool {
        let Some(after) = after else {
            return true;
        };
        let Some(count) = self.seen.get(after.rule) else {
            return true;
        };
        count.fetch_add(1, Ordering::SeqCst) >= after.after
    }
}

impl Deref for Active {
    type Target = RuleSet;

    fn deref(&self) -> &RuleSet {
        &self.set
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inject::ErrorKind;
    use crate::rules::Rule;

    #[test]
    fn errors_after_lets_the_first_requests_of_its_rule_pass() {
        let rules = RuleSet::new(vec![
            Rule::new("t", "Query")
                .with_error(ErrorKind::ProvisionedThroughputExceeded, 1.0)
                .with_errors_after(2),
        ])
        .unwrap();
        let active = Active::new(rules);
        let after = active.resolve("t", "Query").errors_after;
        assert_eq!(after, Some(ErrorsAfter { rule: 0, after: 2 }));
        let past: Vec<bool> = (0..4).map(|_| active.past_errors_after(after)).collect();
        assert_eq!(past, [false, false, true, true]);
        assert!(active.past_errors_after(None), "no grace: errors at once");
    }

    #[test]
    fn a_limit_allows_that_many_injections_per_rule() {
        let rules = RuleSet::new(vec![
            Rule::new("t", "*")
                .with_error(ErrorKind::TransactionConflict, 1.0)
                .with_error_limit(2),
            Rule::new("u", "*").with_error(ErrorKind::TransactionConflict, 1.0),
        ])
        .unwrap();
        let active = Active::new(rules);
        let t = active.resolve("t", "PutItem").error_limit;
        assert_eq!(t, Some(ErrorLimit { rule: 0, max: 2 }));
        let taken: Vec<bool> = (0..4).map(|_| active.take_injection(t)).collect();
        assert_eq!(taken, [true, true, false, false]);
        let u = active.resolve("u", "PutItem").error_limit;
        assert_eq!(u, None);
        assert!((0..10).all(|_| active.take_injection(u)), "no limit");
        let fresh = Active::new(active.set().clone());
        assert!(fresh.take_injection(t), "a new rule set restarts the count");
    }

    #[test]
    fn the_limit_of_a_less_specific_rule_counts_for_every_request_it_covers() {
        let rules = RuleSet::new(vec![
            Rule::new("*", "*").with_error_limit(1),
            Rule::new("t", "PutItem").with_error(ErrorKind::LimitExceeded, 1.0),
        ])
        .unwrap();
        let active = Active::new(rules);
        let put = active.resolve("t", "PutItem").error_limit;
        let get = active.resolve("t", "GetItem").error_limit;
        assert_eq!(put, get);
        assert!(active.take_injection(put));
        assert!(!active.take_injection(get), "one count shared by both");
    }
}
