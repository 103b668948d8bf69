//! Abuse signals of one key, decided locally on each instance: a key seen
//! from too many client addresses in a window, or put in the penalty box
//! too often. Memory is bounded: at most `MAX_WATCHED_KEYS` keys, each with
//! at most `max_addresses` addresses and `max_penalties` penalty times.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use dynagate::http::Observed;

use crate::bounded::Bounded;

/// Keys watched at once per instance; beyond it the least recently first
/// seen key's history is dropped (it only loses what was counted so far).
const MAX_WATCHED_KEYS: usize = 10_000;

/// When a key is suspended for abuse, and for how long
/// (`KEY_MAX_ADDRESSES`, `KEY_ADDRESS_WINDOW_SECS`, `KEY_MAX_PENALTIES`,
/// `KEY_SUSPENSION_SECS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbuseLimits {
    /// Distinct client addresses (IPv6 by /64) a key may be used from
    /// within `window`; one more suspends it.
    pub max_addresses: usize,
    /// The window both signals are counted in.
    pub window: Duration,
    /// Penalty-box entries within `window` that suspend the key.
    pub max_penalties: usize,
    /// How long a suspension lasts.
    pub suspension: Duration,
}

impl Default for AbuseLimits {
    fn default() -> Self {
        AbuseLimits {
            max_addresses: 20,
            window: Duration::from_secs(300),
            max_penalties: 3,
            suspension: Duration::from_secs(3600),
        }
    }
}

/// What was detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// More than `max_addresses` distinct addresses within the window.
    ManyAddresses,
    /// `max_penalties` penalty-box entries within the window.
    PenaltyBox,
}

impl Signal {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Signal::ManyAddresses => "many_addresses",
            Signal::PenaltyBox => "penalty_box",
        }
    }

    /// What the caller is told: what was detected, never the addresses.
    pub fn reason(self, limits: &AbuseLimits) -> String {
        let window = limits.window.as_secs();
        match self {
            Signal::ManyAddresses => format!(
                "the key was used from more than {} client addresses within {window} seconds",
                limits.max_addresses
            ),
            Signal::PenaltyBox => format!(
                "the key was put in the penalty box {} times within {window} seconds",
                limits.max_penalties
            ),
        }
    }
}

#[derive(Debug, Default)]
struct Activity {
    /// Address group → when last seen.
    addresses: HashMap<IpAddr, Instant>,
    penalties: VecDeque<Instant>,
}

/// The signals of every watched key.
#[derive(Debug)]
pub(crate) struct AbuseWatch {
    limits: AbuseLimits,
    keys: Bounded<Activity>,
}

impl AbuseWatch {
    pub(crate) fn new(limits: AbuseLimits) -> AbuseWatch {
        Self::with_capacity(limits, MAX_WATCHED_KEYS)
    }

    fn with_capacity(limits: AbuseLimits, max_keys: usize) -> AbuseWatch {
        AbuseWatch {
            limits,
            keys: Bounded::new(max_keys),
        }
    }

    /// Counts what the layer saw of key `key_id` at `now`; a signal when the
    /// key crossed a limit (its history is then cleared: it is suspended).
    pub(crate) fn observe(
        &mut self,
        key_id: &str,
        observed: Observed,
        now: Instant,
    ) -> Option<Signal> {
        let limits = self.limits;
        if self.keys.get(key_id).is_none() {
            self.keys.insert(key_id.to_owned(), Activity::default());
        }
        let activity = self.keys.get_mut(key_id)?;
        let recent = |at: &Instant| now.saturating_duration_since(*at) < limits.window;
        let signal = match observed {
            Observed::Request { client } => {
                let group = address_group(client);
                if activity.addresses.contains_key(&group)
                    || activity.addresses.len() < limits.max_addresses
                {
                    activity.addresses.insert(group, now);
                    None
                } else {
                    // Full: forget the addresses outside the window (only
                    // here, so the common request costs one map update).
                    activity.addresses.retain(|_, at| recent(at));
                    if activity.addresses.len() < limits.max_addresses {
                        activity.addresses.insert(group, now);
                        None
                    } else {
                        Some(Signal::ManyAddresses)
                    }
                }
            }
            Observed::PenaltyBox => {
                activity.penalties.push_back(now);
                while activity.penalties.front().is_some_and(|at| !recent(at)) {
                    activity.penalties.pop_front();
                }
                (activity.penalties.len() >= limits.max_penalties).then_some(Signal::PenaltyBox)
            }
            _ => None,
        };
        if signal.is_some() {
            self.keys.remove(key_id);
        }
        signal
    }
}

/// The address as the layer counts clients: IPv4 (also IPv4-mapped IPv6)
/// as is, IPv6 by its /64, since one end site gets a /64 or more.
fn address_group(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_addresses: usize, max_penalties: usize) -> AbuseLimits {
        AbuseLimits {
            max_addresses,
            window: Duration::from_secs(60),
            max_penalties,
            suspension: Duration::from_secs(600),
        }
    }

    fn from(ip: &str) -> Observed {
        Observed::Request {
            client: ip.parse().unwrap(),
        }
    }

    #[test]
    fn one_address_more_than_the_limit_within_the_window_is_a_signal() {
        let mut watch = AbuseWatch::new(limits(3, 3));
        let t0 = Instant::now();
        for n in 1..=3 {
            let seen = watch.observe("k", from(&format!("192.0.2.{n}")), t0);
            assert_eq!(seen, None);
        }
        // The same addresses again are not new.
        assert_eq!(watch.observe("k", from("192.0.2.1"), t0), None);
        // Another key has its own count.
        assert_eq!(watch.observe("other", from("192.0.2.9"), t0), None);
        assert_eq!(
            watch.observe("k", from("192.0.2.4"), t0),
            Some(Signal::ManyAddresses)
        );
        // Cleared once signalled: the key starts again from nothing.
        assert_eq!(watch.observe("k", from("192.0.2.5"), t0), None);
    }

    #[test]
    fn addresses_outside_the_window_no_longer_count() {
        let mut watch = AbuseWatch::new(limits(2, 3));
        let t0 = Instant::now();
        watch.observe("k", from("192.0.2.1"), t0);
        watch.observe("k", from("192.0.2.2"), t0 + Duration::from_secs(30));
        // .1 is 61 s old at t0+61: out of the window, so .3 makes two.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(watch.observe("k", from("192.0.2.3"), later), None);
        assert_eq!(
            watch.observe("k", from("192.0.2.4"), later),
            Some(Signal::ManyAddresses)
        );
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_ipv4_as_ipv4() {
        let mut watch = AbuseWatch::new(limits(1, 3));
        let t0 = Instant::now();
        watch.observe("k", from("2001:db8:1:2::1"), t0);
        assert_eq!(watch.observe("k", from("2001:db8:1:2:ffff::9"), t0), None);
        assert_eq!(
            watch.observe("k", from("2001:db8:1:3::1"), t0),
            Some(Signal::ManyAddresses)
        );
        watch.observe("v4", from("203.0.113.9"), t0);
        assert_eq!(watch.observe("v4", from("::ffff:203.0.113.9"), t0), None);
    }

    #[test]
    fn penalties_within_the_window_are_a_signal() {
        let mut watch = AbuseWatch::new(limits(20, 3));
        let t0 = Instant::now();
        assert_eq!(watch.observe("k", Observed::PenaltyBox, t0), None);
        assert_eq!(
            watch.observe("k", Observed::PenaltyBox, t0 + Duration::from_secs(59)),
            None
        );
        // The first one is out of the window by now: still two.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(watch.observe("k", Observed::PenaltyBox, later), None);
        assert_eq!(
            watch.observe("k", Observed::PenaltyBox, later),
            Some(Signal::PenaltyBox)
        );
    }

    #[test]
    fn memory_is_bounded_in_keys_and_in_addresses_per_key() {
        let mut watch = AbuseWatch::with_capacity(limits(5, 3), 100);
        let t0 = Instant::now();
        for n in 0..10_000u32 {
            let key = format!("key-{n}");
            watch.observe(
                &key,
                from(&format!("10.0.{}.{}", n / 256 % 256, n % 256)),
                t0,
            );
        }
        assert_eq!(watch.keys.len(), 100, "at most 100 keys watched");
        assert!(watch.keys.get("key-0").is_none(), "the oldest went");
        // One key from many addresses never holds more than the limit: it
        // is signalled (and cleared) at the one above it.
        let mut signals = 0;
        for n in 0..1000u32 {
            let ip = format!("198.51.{}.{}", n / 256, n % 256);
            if watch.observe("busy", from(&ip), t0).is_some() {
                signals += 1;
            }
            let held = watch.keys.get("busy").map_or(0, |a| a.addresses.len());
            assert!(held <= 5, "{held} addresses held");
        }
        assert_eq!(signals, 1000 / 6);
        assert!(
            Signal::ManyAddresses
                .reason(&limits(5, 3))
                .contains("more than 5 client addresses within 60 seconds")
        );
    }
}
