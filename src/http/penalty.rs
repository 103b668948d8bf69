//! The penalty box: a subject (an API key, an address) that keeps being
//! denied is refused outright for a while, from local state, without a
//! Redis call: Flask-Limiter's "meta limits", decided where it is cheapest.
//!
//! A client that ignores `Retry-After` and hammers a denied limit costs a
//! Redis round trip per request; once it has been denied `denials` times
//! within `within`, this instance answers it 429 for `hold` without asking
//! anyone. Each instance counts its own denials, so in a fleet a subject is
//! boxed by the instances it hammers; the box is a cost defence, the limits
//! in Redis stay the rule.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::ConfigError;
use crate::http::lockout::Lockouts;

/// When a subject goes into the penalty box and for how long.
///
/// ```
/// use std::time::Duration;
/// use dynagate::http::PenaltyBox;
/// let rule = PenaltyBox::after_denials(20)
///     .within(Duration::from_secs(60))
///     .hold_for(Duration::from_secs(300))?;
/// # Ok::<(), dynagate::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PenaltyBox {
    pub(crate) denials: u32,
    pub(crate) within: Duration,
    pub(crate) hold: Duration,
}

/// A [`PenaltyBox`] being built: the denials, then the window.
#[derive(Debug, Clone, Copy)]
pub struct PenaltyBoxDenials {
    denials: u32,
}

/// A [`PenaltyBox`] being built: the hold is next.
#[derive(Debug, Clone, Copy)]
pub struct PenaltyBoxWindow {
    denials: u32,
    within: Duration,
}

impl PenaltyBox {
    /// After this many denials of one subject...
    pub fn after_denials(denials: u32) -> PenaltyBoxDenials {
        PenaltyBoxDenials { denials }
    }
}

impl PenaltyBoxDenials {
    /// ...within this window...
    pub fn within(self, within: Duration) -> PenaltyBoxWindow {
        PenaltyBoxWindow {
            denials: self.denials,
            within,
        }
    }
}

impl PenaltyBoxWindow {
    /// ...the subject is refused for `hold`.
    pub fn hold_for(self, hold: Duration) -> Result<PenaltyBox, ConfigError> {
        if self.denials == 0 || self.within.is_zero() || hold.is_zero() {
            return Err(ConfigError::invalid(
                "penalty_box",
                "needs at least 1 denial, a window and a hold longer than zero",
            ));
        }
        Ok(PenaltyBox {
            denials: self.denials,
            within: self.within,
            hold,
        })
    }
}

/// Denials counted per subject and the subjects in the box, bounded.
#[derive(Debug)]
pub(crate) struct Penalties {
    rule: PenaltyBox,
    counts: Mutex<HashMap<String, (Instant, u32)>>,
    boxed: Lockouts,
    max: usize,
}

impl Penalties {
    pub(crate) fn new(rule: PenaltyBox, max_subjects: usize) -> Penalties {
        Penalties {
            rule,
            counts: Mutex::new(HashMap::new()),
            boxed: Lockouts::new(max_subjects),
            max: max_subjects,
        }
    }

    /// How long `subject` stays in the box, if it is in it.
    pub(crate) fn remaining(&self, subject: &str) -> Option<Duration> {
        self.boxed.remaining(subject)
    }

    /// Counts a denial of `subject`; true when it just went into the box.
    pub(crate) fn denied(&self, subject: &str) -> bool {
        let now = Instant::now();
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.len() >= self.max && !counts.contains_key(subject) {
            let window = self.rule.within;
            counts.retain(|_, (start, _)| now.duration_since(*start) < window);
            if counts.len() >= self.max {
                return false; // full of live counts: this one goes uncounted
            }
        }
        let entry = counts.entry(subject.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.rule.within {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 < self.rule.denials {
            return false;
        }
        counts.remove(subject);
        drop(counts);
        self.boxed.lock(subject, self.rule.hold);
        metrics::counter!("dynagate_http_penalty_box_total").increment(1);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> PenaltyBox {
        PenaltyBox::after_denials(3)
            .within(Duration::from_secs(10))
            .hold_for(Duration::from_secs(60))
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn three_denials_in_the_window_box_the_subject_for_the_hold() {
        let penalties = Penalties::new(rule(), 100);
        assert!(!penalties.denied("a") && !penalties.denied("a"));
        assert_eq!(penalties.remaining("a"), None);
        assert!(penalties.denied("a"), "the third denial boxes");
        assert_eq!(penalties.remaining("a"), Some(Duration::from_secs(60)));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(penalties.remaining("a"), None, "out after the hold");
    }

    #[tokio::test(start_paused = true)]
    async fn denials_spread_beyond_the_window_do_not_add_up() {
        let penalties = Penalties::new(rule(), 100);
        for _ in 0..5 {
            assert!(!penalties.denied("b") && !penalties.denied("b"));
            tokio::time::advance(Duration::from_secs(11)).await;
        }
        assert_eq!(penalties.remaining("b"), None);
    }

    #[test]
    fn a_rule_needs_denials_a_window_and_a_hold() {
        assert!(
            PenaltyBox::after_denials(0)
                .within(Duration::from_secs(1))
                .hold_for(Duration::from_secs(1))
                .is_err()
        );
        assert!(
            PenaltyBox::after_denials(1)
                .within(Duration::ZERO)
                .hold_for(Duration::from_secs(1))
                .is_err()
        );
        assert!(
            PenaltyBox::after_denials(1)
                .within(Duration::from_secs(1))
                .hold_for(Duration::ZERO)
                .is_err()
        );
    }
}
