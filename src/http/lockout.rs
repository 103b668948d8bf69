//! Addresses locked out for failed authentications, remembered in this
//! process: the look the layer takes before it spends anything on a request.
//!
//! Once the failed-auth bucket of an address denies, every further request
//! of that address that carries a key is refused here, until the bucket's
//! retry-after, without a Redis call or a key lookup: a locked-out address
//! that rotates random keys costs no DynamoDB read (and is refused at once
//! while DynamoDB is slow). Each instance learns a lockout from its own first
//! denial, so a fleet of N instances makes at most N lookups per lockout.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Lockouts by client subject, bounded: when full, expired entries go first,
/// then the one that ends soonest (the least useful to keep).
#[derive(Debug)]
pub(crate) struct Lockouts {
    until: Mutex<HashMap<String, Instant>>,
    max: usize,
}

impl Lockouts {
    pub(crate) fn new(max: usize) -> Lockouts {
        Lockouts {
            until: Mutex::new(HashMap::new()),
            max,
        }
    }

    /// How long `subject` stays locked out, if it is.
    pub(crate) fn remaining(&self, subject: &str) -> Option<Duration> {
        let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match until.get(subject) {
            Some(end) if *end > now => Some(*end - now),
            Some(_) => {
                until.remove(subject);
                None
            }
            None => None,
        }
    }

    /// Locks `subject` out for `wait`.
    pub(crate) fn lock(&self, subject: &str, wait: Duration) {
        if self.max == 0 {
            return;
        }
        let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if until.len() >= self.max && !until.contains_key(subject) {
            until.retain(|_, end| *end > now);
            if until.len() >= self.max
                && let Some(soonest) = until
                    .iter()
                    .min_by_key(|(_, end)| **end)
                    .map(|(k, _)| k.clone())
            {
                until.remove(&soonest);
            }
        }
        until.insert(subject.to_owned(), now + wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_lockout_ends_at_its_time_and_the_map_stays_bounded() {
        let lockouts = Lockouts::new(2);
        lockouts.lock("a", Duration::from_secs(60));
        assert_eq!(lockouts.remaining("a"), Some(Duration::from_secs(60)));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(lockouts.remaining("a"), Some(Duration::from_secs(1)));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(lockouts.remaining("a"), None);

        lockouts.lock("b", Duration::from_secs(10));
        lockouts.lock("c", Duration::from_secs(20));
        lockouts.lock("d", Duration::from_secs(30));
        assert_eq!(lockouts.remaining("b"), None, "the soonest to end went");
        assert!(lockouts.remaining("c").is_some() && lockouts.remaining("d").is_some());
    }
}
