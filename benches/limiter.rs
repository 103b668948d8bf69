//! Decisions per second and latency of the Redis limiter against one local
//! Redis, next to the physical limit: `redis-benchmark` running `EVALSHA` of
//! the same script with the same number of requests in flight (one per
//! connection, and pipelined on one connection), in the same run.
//!
//! Each decision is `RedisLimiter::check` (fail open, deny cache on) on one
//! of 10 000 subjects, one limit of 100 tokens refilled at 50/s, cost 1. The
//! deadline is raised from the default 5 ms to 100 ms: on a shared, loaded
//! machine a few slow calls in a row open the circuit, and the run would then
//! time the fail-open path instead of Redis. Rates and latencies count only
//! decisions made by Redis; the others (deny cache, policy) are shown apart.
//!
//! CPU time per decision, which holds still on a shared machine where rates
//! do not: the client's (this process, every thread, over the measured run)
//! and Redis's (`INFO cpu`: `used_cpu_sys` + `used_cpu_user`, before and
//! after; another client of the same Redis meanwhile adds to it). The last
//! line, `LIMITER_JSON {...}`, carries them to `benches/compare/report.py`.
//!
//! Run with the stack up: `cargo bench --bench limiter`. Settings:
//! `REDIS_URL` (default `redis://127.0.0.1:6379`), `BENCH_CONCURRENCY`
//! (default 32), `BENCH_SECONDS` (default 5), `BENCH_DEADLINE_MS` (default 100).
//! Besides printing its table, it writes it to `benches/results/limiter.md`.

mod common;

use common::env_number;
use common::results::{Results, redis_version, say};

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dynagate::limiter::{DecidedBy, Limits, Quota, RateLimiter, RedisLimiter};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const SUBJECTS: u64 = 10_000;

fn percentile(sorted: &[u32], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Duration::from_micros(u64::from(sorted[rank.clamp(1, sorted.len()) - 1]))
}

/// `(host, port)` of a `redis://host:port[/db]` URL.
fn host_port(url: &str) -> (String, String) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    match authority.rsplit_once(':') {
        Some((host, port)) => (host.to_owned(), port.to_owned()),
        None => (authority.to_owned(), "6379".to_owned()),
    }
}

struct Run {
    decisions: u64,
    elapsed: Duration,
    latencies: Vec<u32>,
    by_redis: u64,
    allowed: u64,
}

async fn run_limiter(limiter: &RedisLimiter, limits: &Limits, tasks: u64, seconds: u64) -> Run {
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (limiter, limits) = (limiter.clone(), limits.clone());
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(100_000);
            let (mut decisions, mut by_redis, mut allowed) = (0u64, 0u64, 0u64);
            let mut rng = StdRng::seed_from_u64(task);
            while Instant::now() < until {
                let subject = rng.random_range(0..SUBJECTS).to_string();
                let t = Instant::now();
                let decision = limiter.check(&limits, &subject, 1).await;
                let took = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
                decisions += 1;
                if decision.decided_by() == DecidedBy::Redis {
                    by_redis += 1;
                    latencies.push(took);
                }
                allowed += u64::from(decision.allowed());
                // Answers that need no I/O (deny cache, an open circuit) would
                // otherwise keep this task on its thread and starve the
                // connection's driver; a request handler yields on its socket.
                tokio::task::yield_now().await;
            }
            (latencies, decisions, by_redis, allowed)
        }));
    }
    let mut run = Run {
        decisions: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        by_redis: 0,
        allowed: 0,
    };
    for handle in handles {
        let (latencies, decisions, by_redis, allowed) = handle.await.expect("bench task");
        run.decisions += decisions;
        run.latencies.extend(latencies);
        run.by_redis += by_redis;
        run.allowed += allowed;
    }
    run.elapsed = started.elapsed();
    run.latencies.sort_unstable();
    run
}

/// `(rps, p50 ms, p99 ms)` from `redis-benchmark --csv`.
fn redis_benchmark(
    url: &str,
    clients: u64,
    pipeline: u64,
    requests: u64,
    args: &[String],
) -> (f64, f64, f64) {
    let (host, port) = host_port(url);
    let output = Command::new("redis-benchmark")
        .args(["-h", &host, "-p", &port, "--csv"])
        .args(["-c", &clients.to_string(), "-n", &requests.to_string()])
        .args(["-P", &pipeline.to_string()])
        .args(["-r", &SUBJECTS.to_string()])
        .args(args)
        .output()
        .expect("redis-benchmark is installed (Debian's redis-tools package)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "redis-benchmark failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    let line = stdout
        .lines()
        .rfind(|l| l.starts_with("\"EVALSHA"))
        .unwrap_or_else(|| panic!("no EVALSHA line in redis-benchmark output: {stdout}"));
    let fields: Vec<f64> = line
        .split("\",\"")
        .skip(1)
        .map(|f| f.trim_matches('"').parse().unwrap_or(f64::NAN))
        .collect();
    (fields[0], fields[3], fields[5])
}

/// `redis-benchmark --version`, without its build details.
fn redis_benchmark_version() -> Option<String> {
    let output = Command::new("redis-benchmark")
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace().nth(1).map(str::to_owned)
}

/// CPU time this process (all its threads) has used so far.
fn process_cpu_time() -> Duration {
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

/// Redis's CPU time so far (main thread and background threads), from `INFO cpu`.
async fn redis_cpu_seconds(connection: &mut redis::aio::ConnectionManager) -> f64 {
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query_async(connection)
        .await
        .expect("INFO cpu");
    info.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| matches!(*k, "used_cpu_sys" | "used_cpu_user"))
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .sum()
}

async fn delete_prefixed(connection: &mut redis::aio::ConnectionManager, prefix: &str) -> usize {
    let mut deleted = 0;
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(connection)
            .await
            .expect("SCAN");
        if !keys.is_empty() {
            let removed: usize = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(connection)
                .await
                .expect("UNLINK");
            deleted += removed;
        }
        if next == 0 {
            return deleted;
        }
        cursor = next;
    }
}

#[tokio::main]
async fn main() {
    // Test runners list every target's tests (`--list`); a bench program has none.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let concurrency = env_number("BENCH_CONCURRENCY", 32);
    let seconds = env_number("BENCH_SECONDS", 5);
    let deadline_ms = env_number("BENCH_DEADLINE_MS", 100).max(1);
    let prefix = format!("dynagate-bench:{}:", std::process::id());
    let mut results = Results::start("limiter");

    let client = redis::Client::open(url.as_str()).expect("REDIS_URL");
    let mut admin = redis::aio::ConnectionManager::new(client.clone())
        .await
        .unwrap_or_else(|e| panic!("Redis at {url}: {e} (start it: stack/stack.sh start redis)"));
    let limiter = RedisLimiter::builder(
        redis::aio::ConnectionManager::new(client)
            .await
            .expect("connect"),
    )
    .prefix(prefix.as_str())
    .deadline(Duration::from_millis(deadline_ms))
    .build()
    .expect("limiter");
    limiter.load_script().await.expect("SCRIPT LOAD");
    if let Some(version) = redis_version(&mut admin).await {
        results.version("Redis", version);
    }
    if let Some(version) = redis_benchmark_version() {
        results.version("redis-benchmark", version);
    }
    let quota = Quota::per_second(50).burst(100).expect("quota");
    let limits = Arc::new(Limits::single("bench", "second", quota).expect("limits"));

    // Warm up connections and the script cache.
    let _ = run_limiter(&limiter, &limits, concurrency, 1).await;
    let (redis_cpu_started, cpu_started) =
        (redis_cpu_seconds(&mut admin).await, process_cpu_time());
    let run = run_limiter(&limiter, &limits, concurrency, seconds).await;
    let client_cpu = process_cpu_time().saturating_sub(cpu_started);
    let redis_cpu = redis_cpu_seconds(&mut admin).await - redis_cpu_started;
    let client_us = client_cpu.as_secs_f64() * 1e6 / run.decisions.max(1) as f64;
    let redis_us = redis_cpu * 1e6 / run.by_redis.max(1) as f64;
    let rate = run.by_redis as f64 / run.elapsed.as_secs_f64();
    let p50 = percentile(&run.latencies, 50.0);
    let p99 = percentile(&run.latencies, 99.0);

    let requests = ((rate * seconds as f64) as u64).clamp(50_000, 2_000_000);
    let key = format!("{prefix}rb:{{__rand_int__}}:second");
    let evalsha = [
        "EVALSHA".to_owned(),
        RedisLimiter::script_sha1().to_owned(),
        "1".to_owned(),
        key,
        "1".to_owned(),
        quota.interval_micros().to_string(),
        quota.capacity().to_string(),
    ];
    // The same number of requests in flight, two ways: one per connection,
    // and all pipelined on one connection as dynagate's multiplexed
    // connection does. The faster is the physical limit.
    let (rb_rate, rb_p50, rb_p99) = redis_benchmark(&url, concurrency, 1, requests, &evalsha);
    let (pl_rate, pl_p50, pl_p99) = redis_benchmark(&url, 1, concurrency, requests, &evalsha);
    let limit = rb_rate.max(pl_rate);
    let deleted = delete_prefixed(&mut admin, &prefix).await;

    say!(results);
    say!(
        results,
        "Redis limiter against {url}: one limit (100 tokens, 50/s), cost 1, {SUBJECTS} subjects, {deadline_ms} ms deadline"
    );
    say!(results);
    say!(
        results,
        "| client | concurrency | decisions/s | p50 | p99 |"
    );
    say!(results, "|---|---|---|---|---|");
    say!(
        results,
        "| dynagate `RedisLimiter::check`, decided by Redis | {concurrency} tasks, 1 multiplexed connection | {rate:.0} | {:.3} ms | {:.3} ms |",
        p50.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0
    );
    say!(
        results,
        "| redis-benchmark `EVALSHA` (same script) | {concurrency} connections | {rb_rate:.0} | {rb_p50:.3} ms | {rb_p99:.3} ms |"
    );
    say!(
        results,
        "| redis-benchmark `EVALSHA` (same script) | 1 connection, pipeline of {concurrency} | {pl_rate:.0} | {pl_p50:.3} ms | {pl_p99:.3} ms |"
    );
    say!(results);
    say!(
        results,
        "ratio dynagate / physical limit (the faster redis-benchmark): {:.2} ({} decisions in {:.1} s; {} by Redis, {} by the deny cache or the policy; {} allowed)",
        rate / limit,
        run.decisions,
        run.elapsed.as_secs_f64(),
        run.by_redis,
        run.decisions - run.by_redis,
        run.allowed
    );
    say!(
        results,
        "CPU per decision: client {client_us:.2} µs (this process, every thread, per decision), Redis {redis_us:.2} µs (INFO cpu, per decision by Redis)"
    );
    results.save();
    println!(
        "LIMITER_JSON {{\"decisions\":{},\"by_redis\":{},\"client_cpu_us_per_decision\":{client_us:.3},\"redis_cpu_us_per_decision\":{redis_us:.3}}}",
        run.decisions, run.by_redis
    );
    println!("cleaned up {deleted} keys under {prefix}");
}
