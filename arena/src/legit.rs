//! The legitimate population: many keys at modest rates, each from a few
//! client addresses of its own, with a realistic mix of operations on the
//! users it created; it honours `Retry-After` and never retries a failed
//! request (the next one is simply the next in its schedule).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use rand::RngExt;

use crate::client::{Call, Targets};
use crate::outcome::classify;
use crate::pacing::Pacer;
use crate::tally::LegitTally;

/// An operation of the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `GET /api/v1/users/{id}`: one of its own users, or a missing id.
    Get,
    /// `POST /api/v1/users`: a new user.
    Post,
    /// `PUT /api/v1/users/{id}` with `If-Match`: one of its own users.
    Put,
    /// `GET /api/v1/users?limit=10`: a page.
    List,
}

/// Weights of the operations.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    weights: Vec<(Op, u32)>,
    total: u32,
}

impl Mix {
    /// `get=55,post=15,put=20,list=10`; an operation left out is not sent.
    pub fn parse(text: &str) -> Result<Mix, String> {
        let mut weights = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("--mix: `{part}` is not OP=WEIGHT"))?;
            let op = match name.trim() {
                "get" => Op::Get,
                "post" => Op::Post,
                "put" => Op::Put,
                "list" => Op::List,
                other => {
                    return Err(format!(
                        "--mix: unknown operation `{other}` (get, post, put, list)"
                    ));
                }
            };
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("--mix: the weight of {name} must be a whole number"))?;
            weights.push((op, weight));
        }
        let total = weights.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return Err("--mix needs at least one operation with a weight above 0".into());
        }
        Ok(Mix { weights, total })
    }

    /// The operation for a draw in `0..total()`.
    pub fn pick(&self, draw: u32) -> Op {
        let mut left = draw % self.total;
        for (op, weight) in &self.weights {
            if left < *weight {
                return *op;
            }
            left -= weight;
        }
        unreachable!("draw is below the total of the weights")
    }

    /// The sum of the weights.
    pub fn total(&self) -> u32 {
        self.total
    }
}

/// What one legitimate key does.
#[derive(Debug, Clone)]
pub struct Profile {
    pub rate: f64,
    pub mix: Mix,
    pub missing_share: f64,
    pub run_id: String,
}

/// One legitimate key and the users it made (id, version when known).
#[derive(Debug)]
pub struct User {
    index: usize,
    key: String,
    own: Vec<(String, Option<u64>)>,
    created: u64,
}

impl User {
    /// The `index`-th key of the population.
    pub fn new(index: usize, key: String) -> User {
        User {
            index,
            key,
            own: Vec::new(),
            created: 0,
        }
    }

    /// One of its own addresses (four per key).
    fn address(&self) -> String {
        format!(
            "10.1.{}.{}",
            self.index % 250,
            1 + self.index / 250 * 4 + rand::rng().random_range(0..4usize)
        )
    }

    /// Creates `count` users before the measured phases (not counted).
    pub async fn seed(&mut self, targets: &Targets, profile: &Profile, count: usize) {
        for _ in 0..count {
            let (call, _) = self.create_call(profile);
            let reply = targets.send(&call).await;
            self.learn(&call, Op::Post, reply.status, reply.etag);
        }
    }

    fn create_call(&mut self, profile: &Profile) -> (Call, Vec<u16>) {
        self.created += 1;
        let id = format!("{}-k{}-{}", profile.run_id, self.index, self.created);
        let mut call = Call::new(Method::POST, "/api/v1/users".into(), self.address());
        call.api_key = Some(self.key.clone());
        call.body = Some(format!(
            r#"{{"user_id":"{id}","email":"{id}@example.com","name":"Legit {}"}}"#,
            self.index
        ));
        (call, Vec::new())
    }

    /// The next request for `op` and the 4xx statuses it deserves.
    fn call(&mut self, op: Op, profile: &Profile) -> (Call, Vec<u16>) {
        let mut rng = rand::rng();
        let known: Vec<usize> = (0..self.own.len())
            .filter(|i| self.own[*i].1.is_some())
            .collect();
        let op = match op {
            Op::Put if known.is_empty() => Op::Get,
            other => other,
        };
        if op == Op::Post || (op == Op::Get && self.own.is_empty()) {
            return self.create_call(profile);
        }
        let (mut call, deserved) = match op {
            Op::Get if rng.random_bool(profile.missing_share.clamp(0.0, 1.0)) => {
                let id = format!("{}-missing-{}", profile.run_id, rng.random::<u32>());
                let path = format!("/api/v1/users/{id}");
                (Call::new(Method::GET, path, self.address()), vec![404])
            }
            Op::Get => {
                let (id, _) = &self.own[rng.random_range(0..self.own.len())];
                let path = format!("/api/v1/users/{id}");
                (Call::new(Method::GET, path, self.address()), Vec::new())
            }
            Op::Put => {
                let (id, version) = &self.own[known[rng.random_range(0..known.len())]];
                let path = format!("/api/v1/users/{id}");
                let mut call = Call::new(Method::PUT, path, self.address());
                call.if_match = *version;
                call.body = Some(format!(
                    r#"{{"email":"{id}@example.org","name":"Legit {} v{}"}}"#,
                    self.index,
                    version.unwrap_or(0) + 1
                ));
                (call, Vec::new())
            }
            Op::List | Op::Post => {
                let path = "/api/v1/users?limit=10".to_owned();
                (Call::new(Method::GET, path, self.address()), Vec::new())
            }
        };
        call.api_key = Some(self.key.clone());
        (call, deserved)
    }

    /// What an answer teaches about its own users' versions: a write whose
    /// outcome is unknown makes the version unknown until a GET reads it.
    fn learn(&mut self, call: &Call, op: Op, status: Option<u16>, etag: Option<u64>) {
        let id = call.path.strip_prefix("/api/v1/users/").map(str::to_owned);
        let ok = status.is_some_and(|s| (200..300).contains(&s));
        match (call.method.clone(), id) {
            (Method::POST, _) if ok => {
                let id = call
                    .body
                    .as_deref()
                    .and_then(|b| b.split('"').nth(3))
                    .map(str::to_owned);
                if let Some(id) = id {
                    self.own.push((id, etag));
                }
            }
            (Method::GET | Method::PUT, Some(id)) => {
                if let Some(entry) = self.own.iter_mut().find(|(own, _)| *own == id) {
                    if ok {
                        entry.1 = etag.or(entry.1);
                    } else if op == Op::Put {
                        entry.1 = None;
                    }
                }
            }
            _ => {}
        }
    }

    /// Sends on its schedule from `start` until `until`, recording every
    /// outcome in `tally`.
    pub async fn run(
        mut self,
        targets: Arc<Targets>,
        profile: Arc<Profile>,
        tally: Arc<Mutex<LegitTally>>,
        start: Instant,
        until: Duration,
    ) {
        let offset = Duration::from_secs_f64(rand::rng().random_range(0.0..1.0) / profile.rate);
        let Some(mut pacer) = Pacer::per_second(profile.rate, offset) else {
            return;
        };
        let mut not_before = Duration::ZERO;
        loop {
            let at = pacer.next(start.elapsed(), not_before);
            if at >= until {
                return;
            }
            tokio::time::sleep_until((start + at).into()).await;
            let draw = rand::rng().random_range(0..profile.mix.total());
            let op = profile.mix.pick(draw);
            let (call, deserved) = self.call(op, &profile);
            let reply = targets.send(&call).await;
            let outcome = classify(reply.status, &deserved);
            let why = reply
                .why
                .as_deref()
                .map(|why| format!("{}: {why}", route(&call)));
            tally.lock().unwrap_or_else(|p| p.into_inner()).record(
                start.elapsed(),
                reply.took,
                reply.status,
                why.as_deref(),
                outcome,
            );
            self.learn(&call, op, reply.status, reply.etag);
            if let Some(wait) = reply.retry_after {
                not_before = start.elapsed() + wait;
            }
        }
    }
}

/// What a request is, for counting its failures: `GET one`, `GET list`,
/// `POST`, `PUT`.
fn route(call: &Call) -> String {
    let what = if call.path.contains('?') {
        "list"
    } else if call.path.len() > "/api/v1/users/".len() {
        "one"
    } else {
        ""
    };
    format!("{} {what}", call.method).trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_picks_by_weight() {
        let mix = Mix::parse("get=55,post=15,put=20,list=10").unwrap();
        assert_eq!(mix.total(), 100);
        assert_eq!(mix.pick(0), Op::Get);
        assert_eq!(mix.pick(54), Op::Get);
        assert_eq!(mix.pick(55), Op::Post);
        assert_eq!(mix.pick(70), Op::Put);
        assert_eq!(mix.pick(90), Op::List);
        assert_eq!(mix.pick(99), Op::List);
        let counts = (0..100).filter(|d| mix.pick(*d) == Op::Put).count();
        assert_eq!(counts, 20);
    }

    #[test]
    fn a_bad_mix_is_refused_with_the_reason() {
        assert!(
            Mix::parse("get=1,delete=2")
                .unwrap_err()
                .contains("unknown operation `delete`")
        );
        assert!(Mix::parse("get=0").unwrap_err().contains("at least one"));
        assert!(Mix::parse("get").unwrap_err().contains("OP=WEIGHT"));
        assert_eq!(Mix::parse("get=85,post=15").unwrap().pick(90), Op::Post);
    }

    #[test]
    fn a_user_puts_only_what_it_knows_the_version_of() {
        let profile = Profile {
            rate: 1.0,
            mix: Mix::parse("put=1").unwrap(),
            missing_share: 0.0,
            run_id: "t".into(),
        };
        let mut user = User::new(3, "dg_key".into());
        // Nothing of its own yet: a PUT becomes a create.
        let (call, _) = user.call(Op::Put, &profile);
        assert_eq!(call.method, Method::POST);
        user.learn(&call, Op::Post, Some(201), Some(1));
        let (put, _) = user.call(Op::Put, &profile);
        assert_eq!((put.method.clone(), put.if_match), (Method::PUT, Some(1)));
        assert_eq!(put.path, "/api/v1/users/t-k3-1");
        // A PUT with no answer: the version is unknown, a GET comes first.
        user.learn(&put, Op::Put, None, None);
        let (next, _) = user.call(Op::Put, &profile);
        assert_eq!(next.method, Method::GET);
        user.learn(&next, Op::Get, Some(200), Some(2));
        assert_eq!(user.call(Op::Put, &profile).0.if_match, Some(2));
        assert_eq!(route(&user.call(Op::Put, &profile).0), "PUT one");
        assert_eq!(route(&user.call(Op::List, &profile).0), "GET list");
        assert_eq!(route(&user.call(Op::Post, &profile).0), "POST");
    }
}
