//! Several OS processes hammer one bucket on the shared Redis (`REDIS_URL`):
//! the admitted total stays within the token bucket's bound.
//!
//! The workers are this test binary run again, with an environment variable
//! that turns the single-process `worker` test into one share of the load.

mod common;

use std::time::Duration;

use dynagate::limiter::{Limits, Outcome, Quota, RedisLimiter};

const WORKER_ENV: &str = "DYNAGATE_LIMITER_WORKER";
const PROCESSES: usize = 4;
const REQUESTS_PER_PROCESS: usize = 1200;
const TASKS_PER_PROCESS: usize = 8;

/// `(prefix, capacity, tokens, period_ms)` travels to the workers through the
/// environment as `prefix|capacity|tokens|period_ms`.
fn limits(capacity: u64, tokens: u64, period_ms: u64) -> Limits {
    let quota = Quota::per_period(tokens, Duration::from_millis(period_ms))
        .burst(capacity)
        .unwrap();
    Limits::single("hammer", "bucket", quota).unwrap()
}

/// One process's share of the hammering: started by `spawn_workers` with the
/// bucket in the environment, it prints its admitted count for the parent.
/// Run on its own, it hammers a bucket of its own and checks the same bound
/// for a single process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker() {
    if let Ok(spec) = std::env::var(WORKER_ENV) {
        let parts: Vec<&str> = spec.split('|').collect();
        let [prefix, capacity, tokens, period_ms] = parts[..] else {
            panic!("bad {WORKER_ENV}: {spec}");
        };
        let limits = limits(
            capacity.parse().unwrap(),
            tokens.parse().unwrap(),
            period_ms.parse().unwrap(),
        );
        println!("ADMITTED {}", hammer(prefix, &limits).await);
        return;
    }
    let (mut manager, keys) = common::redis().await;
    let (capacity, tokens, period_ms) = (50, 100, 1000);
    let limits = limits(capacity, tokens, period_ms);
    let started = server_micros(&mut manager).await;
    let admitted = hammer(keys.prefix(), &limits).await;
    let ended = server_micros(&mut manager).await;
    let bound = capacity + (ended - started) / limits.as_slice()[0].quota().interval_micros();
    assert!(admitted <= bound, "{admitted} admitted, bound {bound}");
    assert!(
        admitted >= capacity,
        "the full burst of {capacity} is admitted: {admitted}"
    );
    keys.cleanup().await;
}

/// Sends this process's requests from several tasks; returns how many were admitted.
async fn hammer(prefix: &str, limits: &Limits) -> u64 {
    let client = redis::Client::open(common::redis_url()).unwrap();
    let manager = redis::aio::ConnectionManager::new(client).await.unwrap();
    let limiter = RedisLimiter::builder(manager)
        .prefix(prefix)
        .deadline(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..TASKS_PER_PROCESS {
        let (limiter, limits) = (limiter.clone(), limits.clone());
        tasks.push(tokio::spawn(async move {
            let mut admitted = 0u64;
            for _ in 0..REQUESTS_PER_PROCESS / TASKS_PER_PROCESS {
                let decision = limiter.try_check(&limits, "shared", 1).await.unwrap();
                if decision.outcome() == Outcome::Allowed {
                    admitted += 1;
                }
            }
            admitted
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        admitted += task.await.unwrap();
    }
    admitted
}

async fn server_micros(manager: &mut redis::aio::ConnectionManager) -> u64 {
    let (seconds, micros): (u64, u64) = redis::cmd("TIME").query_async(manager).await.unwrap();
    seconds * 1_000_000 + micros
}

/// Runs the workers to completion; returns the admitted total and the server
/// time (µs) before the first and after the last worker.
async fn spawn_workers(
    prefix: &str,
    capacity: u64,
    tokens: u64,
    period_ms: u64,
) -> (u64, u64, u64) {
    let (mut manager, _) = common::redis().await;
    let spec = format!("{prefix}|{capacity}|{tokens}|{period_ms}");
    let started = server_micros(&mut manager).await;
    let admitted =
        common::run_test_workers("worker", WORKER_ENV, &vec![spec; PROCESSES], "ADMITTED");
    let ended = server_micros(&mut manager).await;
    (admitted, started, ended)
}

#[tokio::test]
async fn processes_sharing_a_bucket_never_exceed_capacity_plus_refill() {
    let (_, keys) = common::redis().await;
    let (capacity, tokens, period_ms) = (50, 100, 1000);
    let (admitted, started, ended) =
        spawn_workers(keys.prefix(), capacity, tokens, period_ms).await;
    let quota = limits(capacity, tokens, period_ms).as_slice()[0].quota();
    let bound = capacity + (ended - started) / quota.interval_micros();
    println!(
        "{admitted} of {} admitted in {} ms (bound {bound})",
        PROCESSES * REQUESTS_PER_PROCESS,
        (ended - started) / 1000
    );
    assert!(admitted <= bound, "{admitted} admitted, bound {bound}");
    assert!(
        admitted >= capacity,
        "the first burst is admitted: {admitted}"
    );
    keys.cleanup().await;
}

#[tokio::test]
async fn processes_sharing_a_daily_bucket_take_exactly_its_capacity() {
    let (_, keys) = common::redis().await;
    // 300 per day: no token comes back during the test, so exactly 300 of
    // the 4 800 requests get through, whatever the interleaving.
    let (admitted, _, _) = spawn_workers(keys.prefix(), 300, 300, 86_400_000).await;
    assert_eq!(admitted, 300);
    keys.cleanup().await;
}
