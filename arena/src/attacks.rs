//! The attacks: open loops at a fixed rate that do not wait for answers
//! (an attacker does not slow down when the service does), each with its
//! own requests and client addresses. A loop sends at most `MAX_IN_FLIGHT`
//! requests at once; a send beyond that is counted as skipped, so a stalled
//! service shows in the record instead of piling up tasks in the generator.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use rand::RngExt;
use tokio::sync::Semaphore;

use crate::client::{Call, Targets};
use crate::pacing::Pacer;
use crate::tally::AttackTally;

/// Requests of one attack waiting for an answer at once.
pub const MAX_IN_FLIGHT: usize = 256;

type MakeCall = Box<dyn Fn(u64) -> Call + Send + Sync>;

/// One attack: its name, rate and how it builds its `n`-th request.
pub struct Attack {
    pub name: &'static str,
    pub rate: f64,
    make: MakeCall,
}

impl std::fmt::Debug for Attack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attack")
            .field("name", &self.name)
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

/// The `n`-th of `count` addresses in `10.{net}.x.y`.
pub fn address(net: u8, n: u64, count: usize) -> String {
    let i = n % count.max(1) as u64;
    format!("10.{net}.{}.{}", i / 250, 1 + i % 250)
}

/// A well-formed key nobody issued: `dg_` and 64 random hex digits.
pub fn random_key() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("dg_{hex}")
}

/// A legitimate user's id, as the population names them.
fn some_user(run_id: &str, n: u64) -> String {
    format!("/api/v1/users/{run_id}-k{}-1", n % 50)
}

impl Attack {
    /// A new random key on every request, from `addresses` addresses.
    pub fn invalid_keys(rate: f64, addresses: usize, run_id: &str) -> Attack {
        let run_id = run_id.to_owned();
        Attack::new("invalid_keys", rate, move |n| {
            let mut call = Call::new(Method::GET, some_user(&run_id, n), address(2, n, addresses));
            call.api_key = Some(random_key());
            call
        })
    }

    /// One valid key, stolen, used from `addresses` addresses.
    pub fn stolen_key(rate: f64, key: String, addresses: usize, run_id: &str) -> Attack {
        let run_id = run_id.to_owned();
        Attack::new("stolen_key", rate, move |n| {
            let mut call = Call::new(Method::GET, some_user(&run_id, n), address(3, n, addresses));
            call.api_key = Some(key.clone());
            call
        })
    }

    /// Requests without a key.
    pub fn anonymous(rate: f64, addresses: usize, run_id: &str) -> Attack {
        let run_id = run_id.to_owned();
        Attack::new("anonymous", rate, move |n| {
            Call::new(Method::GET, some_user(&run_id, n), address(4, n, addresses))
        })
    }

    /// Pages of 100 with the attacker's own valid keys, from a few addresses.
    pub fn list_flood(rate: f64, keys: Vec<String>) -> Attack {
        Attack::new("list_flood", rate, move |n| {
            let path = "/api/v1/users?limit=100".to_owned();
            let mut call = Call::new(Method::GET, path, address(5, n, 20));
            call.api_key = Some(keys[n as usize % keys.len()].clone());
            call
        })
    }

    /// New users as fast as the rate, with the attacker's keys.
    pub fn create_flood(rate: f64, keys: Vec<String>, run_id: &str) -> Attack {
        let run_id = run_id.to_owned();
        Attack::new("create_flood", rate, move |n| {
            let mut call = Call::new(Method::POST, "/api/v1/users".into(), address(6, n, 20));
            call.api_key = Some(keys[n as usize % keys.len()].clone());
            let id = format!("{run_id}-flood-{n}");
            call.body = Some(format!(
                r#"{{"user_id":"{id}","email":"{id}@example.com","name":"Flood"}}"#
            ));
            call
        })
    }

    /// The same create with the same `Idempotency-Key`, again and again.
    pub fn replay_storm(rate: f64, keys: Vec<String>, run_id: &str) -> Attack {
        let id = format!("{run_id}-replayed");
        let body = format!(r#"{{"user_id":"{id}","email":"{id}@example.com","name":"Replay"}}"#);
        let idempotency_key = format!("{run_id}-replay");
        Attack::new("replay_storm", rate, move |n| {
            let mut call = Call::new(Method::POST, "/api/v1/users".into(), address(7, n, 20));
            call.api_key = Some(keys[n as usize % keys.len()].clone());
            call.idempotency_key = Some(idempotency_key.clone());
            call.body = Some(body.clone());
            call
        })
    }

    fn new(
        name: &'static str,
        rate: f64,
        make: impl Fn(u64) -> Call + Send + Sync + 'static,
    ) -> Attack {
        Attack {
            name,
            rate,
            make: Box::new(make),
        }
    }

    /// Sends from `from` to `until` (offsets from `start`) at its rate; every
    /// answer is counted in `tally`. Returns when the last request ended.
    pub async fn run(
        self,
        targets: Arc<Targets>,
        tally: Arc<Mutex<AttackTally>>,
        start: Instant,
        from: Duration,
        until: Duration,
    ) {
        let Some(mut pacer) = Pacer::per_second(self.rate, from) else {
            return;
        };
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut n = 0u64;
        loop {
            let at = pacer.next(start.elapsed(), Duration::ZERO);
            if at >= until {
                break;
            }
            tokio::time::sleep_until((start + at).into()).await;
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                tally.lock().unwrap_or_else(|p| p.into_inner()).skipped += 1;
                continue;
            };
            let call = (self.make)(n);
            n += 1;
            let (targets, tally) = (Arc::clone(&targets), Arc::clone(&tally));
            tokio::spawn(async move {
                let reply = targets.send(&call).await;
                tally
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .record(reply.status, reply.why.as_deref());
                drop(slot);
            });
        }
        // Every request in flight has ended (answered or timed out).
        let _ = slots.acquire_many(MAX_IN_FLIGHT as u32).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_cycle_over_their_count_in_their_own_network() {
        assert_eq!(address(2, 0, 1000), "10.2.0.1");
        assert_eq!(address(2, 249, 1000), "10.2.0.250");
        assert_eq!(address(2, 250, 1000), "10.2.1.1");
        assert_eq!(address(2, 1000, 1000), address(2, 0, 1000));
        let distinct: std::collections::HashSet<String> =
            (0..5000).map(|n| address(3, n, 300)).collect();
        assert_eq!(distinct.len(), 300);
    }

    #[test]
    fn attacks_build_the_requests_they_are_named_for() {
        let key = random_key();
        assert!(key.starts_with("dg_") && key.len() == 67);
        assert_ne!(random_key(), key);
        let invalid = Attack::invalid_keys(1.0, 1000, "r");
        assert_ne!((invalid.make)(0).api_key, (invalid.make)(1).api_key);
        let replay = Attack::replay_storm(1.0, vec!["k".into()], "r");
        let (a, b) = ((replay.make)(0), (replay.make)(1));
        assert_eq!(
            (a.body.clone(), a.idempotency_key.clone()),
            (b.body, b.idempotency_key)
        );
        assert_ne!(a.forwarded_for, b.forwarded_for);
        assert!((Attack::anonymous(1.0, 5, "r").make)(0).api_key.is_none());
        let flood = Attack::create_flood(1.0, vec!["k".into()], "r");
        assert_ne!((flood.make)(0).body, (flood.make)(1).body);
    }
}
