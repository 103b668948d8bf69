//! The load: tasks that share a bounded budget of checks (phase 1) or of
//! requests of three checks (phase 2), and what the client side saw.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dynagate::limiter::{Check, DecidedBy, Limits, RateLimiter, RedisLimiter};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use redis::cluster_routing::Slot;

/// CPU time this process (all its threads) has used so far.
pub(crate) fn process_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec and the clock id is a
    // constant the kernel knows; clock_gettime writes nothing else.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

pub(crate) fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

/// A phase's client side: decisions made by Redis, their latencies, the
/// wall time and this process's CPU time.
#[derive(Default)]
pub(crate) struct Client {
    pub(crate) by_redis: u64,
    pub(crate) other: u64,
    pub(crate) latencies: Vec<u32>,
    /// Phase 2: the slots and masters each request's checks hash to, summed.
    pub(crate) slots_touched: u64,
    pub(crate) masters_touched: u64,
    pub(crate) elapsed: Duration,
    pub(crate) cpu: Duration,
}

impl Client {
    pub(crate) fn decisions(&self) -> u64 {
        self.by_redis + self.other
    }

    fn add(&mut self, task: Client) {
        self.by_redis += task.by_redis;
        self.other += task.other;
        self.latencies.extend(task.latencies);
        self.slots_touched += task.slots_touched;
        self.masters_touched += task.masters_touched;
    }

    /// One decision, and its latency when Redis made it.
    fn record(&mut self, by_redis: bool, took: Duration) {
        if by_redis {
            self.by_redis += 1;
            self.latencies
                .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
        } else {
            self.other += 1;
        }
    }
}

/// The subjects of one request's three checks: an address, a key, a route.
struct Request {
    ip: String,
    key: String,
    route: String,
}

impl Request {
    fn random(rng: &mut StdRng, subjects: u64) -> Request {
        let a = rng.random_range(0..subjects);
        Request {
            ip: format!("198.51.{}.{}", a / 256, a % 256),
            key: format!("key-{}", rng.random_range(0..1_000)),
            route: format!("GET /api/v1/route-{}", rng.random_range(0..8)),
        }
    }
}

/// Phase 1: `budget` single checks on random subjects from `tasks` tasks.
pub(crate) async fn singles(
    limiter: &RedisLimiter,
    limits: &Arc<Limits>,
    tasks: u64,
    subjects: u64,
    budget: u64,
) -> Client {
    let next = Arc::new(AtomicU64::new(0));
    let (started, cpu_started) = (Instant::now(), process_cpu_time());
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (limiter, limits, next) = (limiter.clone(), limits.clone(), next.clone());
        handles.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(task);
            let mut tally = Client::default();
            while next.fetch_add(1, Ordering::Relaxed) < budget {
                let subject = format!("s{}", rng.random_range(0..subjects));
                let t = Instant::now();
                let decision = limiter.check(&limits, &subject, 1).await;
                tally.record(decision.decided_by() == DecidedBy::Redis, t.elapsed());
            }
            tally
        }));
    }
    collect(handles, started, cpu_started).await
}

/// Phase 2: `budget` requests of three checks each (`check_all`).
pub(crate) async fn requests(
    limiter: &RedisLimiter,
    limits: &Arc<[Limits; 3]>,
    owner: &Arc<HashMap<Slot, usize>>,
    tasks: u64,
    subjects: u64,
    budget: u64,
) -> Client {
    let next = Arc::new(AtomicU64::new(0));
    let (started, cpu_started) = (Instant::now(), process_cpu_time());
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (limiter, limits, next) = (limiter.clone(), limits.clone(), next.clone());
        let owner = owner.clone();
        handles.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(1_000 + task);
            let mut tally = Client::default();
            while next.fetch_add(1, Ordering::Relaxed) < budget {
                let r = Request::random(&mut rng, subjects);
                let checks = [
                    Check::new(&limits[0], &r.ip, 1),
                    Check::new(&limits[1], &r.key, 1),
                    Check::new(&limits[2], &r.route, 1),
                ];
                // Where the checks live, as the limiter groups them: by the
                // slot of each subject's hash tag.
                let slots: HashSet<Slot> = checks
                    .iter()
                    .map(|c| Slot::for_key(&limiter.keys(c.limits, c.subject)[0]))
                    .collect();
                let on: HashSet<usize> =
                    slots.iter().filter_map(|s| owner.get(s).copied()).collect();
                tally.slots_touched += slots.len() as u64;
                tally.masters_touched += on.len() as u64;
                let t = Instant::now();
                let decisions = limiter.check_all(&checks).await;
                let by_redis = decisions.admitted
                    && decisions
                        .each
                        .iter()
                        .all(|d| d.decided_by() == DecidedBy::Redis);
                tally.record(by_redis, t.elapsed());
            }
            tally
        }));
    }
    collect(handles, started, cpu_started).await
}

async fn collect(
    handles: Vec<tokio::task::JoinHandle<Client>>,
    started: Instant,
    cpu_started: Duration,
) -> Client {
    let mut client = Client::default();
    for handle in handles {
        client.add(handle.await.expect("bench task"));
    }
    client.elapsed = started.elapsed();
    client.cpu = process_cpu_time().saturating_sub(cpu_started);
    client.latencies.sort_unstable();
    client
}
