//! How the Redis limiter's decisions spread over the masters of a Redis
//! Cluster, and what each master pays for them: the sizing evidence for
//! "how many shards" (issue 17).
//!
//! Two phases against the cluster named by `REDIS_CLUSTER_URLS` (any of its
//! nodes; the masters are read from `CLUSTER NODES`), each a bounded number
//! of decisions, each preceded by `CONFIG RESETSTAT` on every master:
//!
//! 1. `RedisLimiter::check` on many distinct subjects (one limit that no
//!    subject reaches, cost 1), from several tasks over one cluster
//!    connection: script calls per master from `INFO commandstats`
//!    (`evalsha` + `eval`), their share against the share of slots the
//!    master owns, calls per second, and the master's CPU per call from
//!    `INFO cpu` (`used_cpu_sys` + `used_cpu_user`, before and after).
//! 2. `RateLimiter::check_all` of one request's three checks (client
//!    address, API key, route), whose subjects hash to different slots: the
//!    script calls per request on a cluster (one per slot touched; they are
//!    sent together, so one round trip of latency), against the slots and
//!    masters each request touched.
//!
//! The client's CPU per decision (this process, every thread) is shown too.
//! Another client of the cluster during the run adds to the masters'
//! figures; the bench says how many script calls it did not make itself.
//!
//! Run with the cluster up (`stack/stack.sh start cluster`):
//! `cargo bench --bench cluster_spread`. The masters' side is in
//! `masters.rs`, the load in `load.rs`. Settings: `REDIS_CLUSTER_URLS`,
//! `BENCH_CONCURRENCY` (32 tasks), `BENCH_SUBJECTS` (10 000),
//! `BENCH_DECISIONS` (200 000 checks in phase 1), `BENCH_REQUESTS` (20 000
//! requests in phase 2), `BENCH_DEADLINE_MS` (100). Writes
//! `benches/results/cluster_spread.md`.

#[path = "../common/mod.rs"]
mod common;
mod load;
mod masters;

use common::env_number;
use common::results::{Results, redis_version, say};

use std::sync::Arc;
use std::time::Duration;

use dynagate::limiter::{Limits, Quota, RedisLimiter};

use load::{Client, percentile_ms, requests, singles};
use masters::{
    DEFAULT_URLS, Master, SLOTS, Spent, cleanup, end_phase, masters, slot_owners, start_phase,
};

/// The per-master table of one phase.
fn spread_table(results: &mut Results, masters: &[Master], spent: &[Spent], client: &Client) {
    let calls: u64 = spent.iter().map(|s| s.script_calls).sum();
    let seconds = client.elapsed.as_secs_f64();
    say!(
        results,
        "| master | slots owned (share) | script calls | share of calls | calls/s | Redis CPU µs/call |"
    );
    say!(results, "|---|---:|---:|---:|---:|---:|");
    for (master, s) in masters.iter().zip(spent) {
        say!(
            results,
            "| {} | {} ({:.1}%) | {} | {:.1}% | {:.0} | {:.1} |",
            master.address,
            master.slot_count(),
            100.0 * master.slot_count() as f64 / f64::from(SLOTS),
            s.script_calls,
            100.0 * s.script_calls as f64 / calls.max(1) as f64,
            s.script_calls as f64 / seconds,
            s.cpu_seconds * 1e6 / s.script_calls.max(1) as f64
        );
    }
    let cpu: f64 = spent.iter().map(|s| s.cpu_seconds).sum();
    say!(
        results,
        "| all masters | {SLOTS} | {calls} | 100% | {:.0} | {:.1} |",
        calls as f64 / seconds,
        cpu * 1e6 / calls.max(1) as f64
    );
}

#[tokio::main]
async fn main() {
    // Test runners list every target's tests (`--list`); a bench program has none.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let urls: Vec<String> = std::env::var("REDIS_CLUSTER_URLS")
        .unwrap_or_else(|_| DEFAULT_URLS.into())
        .split(',')
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    let tasks = env_number("BENCH_CONCURRENCY", 32).max(1);
    let subjects = env_number("BENCH_SUBJECTS", 10_000).max(1);
    let decisions = env_number("BENCH_DECISIONS", 200_000).max(1);
    let request_count = env_number("BENCH_REQUESTS", 20_000).max(1);
    let deadline_ms = env_number("BENCH_DEADLINE_MS", 100).max(1);
    let prefix = format!("dynagate-spread:{}:", std::process::id());
    let mut results = Results::start("cluster_spread");

    let mut masters = masters(&urls).await;
    if let Some(version) = redis_version(&mut masters[0].admin).await {
        results.version("Redis", version);
    }
    let connection = redis::cluster::ClusterClient::new(urls.clone())
        .unwrap_or_else(|e| panic!("REDIS_CLUSTER_URLS={urls:?}: {e}"))
        .get_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connecting to the Redis Cluster at {urls:?}: {e}"));
    let limiter = RedisLimiter::builder(connection)
        .prefix(prefix.as_str())
        .deadline(Duration::from_millis(deadline_ms))
        .build()
        .expect("limiter");
    limiter
        .load_script()
        .await
        .expect("SCRIPT LOAD on every master");
    // Limits no subject reaches: every check is one script call, decided by Redis.
    let roomy = |namespace: &str| {
        let quota = Quota::per_second(1_000_000)
            .burst(1_000_000)
            .expect("quota");
        Limits::single(namespace, "second", quota).expect("limits")
    };
    let single = Arc::new(roomy("spread"));
    let per_request = Arc::new([roomy("ip"), roomy("key"), roomy("route")]);

    // Warm-up (connections to every master, slot map), not counted.
    let _ = singles(&limiter, &single, tasks, subjects, decisions / 10).await;

    let before = start_phase(&mut masters).await;
    let one = singles(&limiter, &single, tasks, subjects, decisions).await;
    let one_spent = end_phase(&mut masters, &before).await;

    let owner = Arc::new(slot_owners(&masters));
    let before = start_phase(&mut masters).await;
    let all = requests(
        &limiter,
        &per_request,
        &owner,
        tasks,
        subjects,
        request_count,
    )
    .await;
    let all_spent = end_phase(&mut masters, &before).await;
    let deleted = cleanup(&mut masters, &prefix).await;

    say!(results);
    say!(
        results,
        "Redis Cluster of {} masters (from CLUSTER NODES of {}), {tasks} tasks over one cluster connection, {deadline_ms} ms deadline; CONFIG RESETSTAT on every master before each phase, INFO commandstats (evalsha + eval calls) and INFO cpu (used_cpu_sys + used_cpu_user) after.",
        masters.len(),
        urls.join(", ")
    );
    say!(results);
    say!(
        results,
        "Phase 1: {decisions} `RedisLimiter::check` on {subjects} subjects (one limit never reached, cost 1): {:.0} decisions/s, p50 {:.3} ms, p99 {:.3} ms; client CPU {:.1} µs per decision (this process, every thread).",
        one.by_redis as f64 / one.elapsed.as_secs_f64(),
        percentile_ms(&one.latencies, 50.0),
        percentile_ms(&one.latencies, 99.0),
        one.cpu.as_secs_f64() * 1e6 / one.decisions().max(1) as f64
    );
    say!(results);
    spread_table(&mut results, &masters, &one_spent, &one);
    let calls: u64 = one_spent.iter().map(|s| s.script_calls).sum();
    say!(results);
    say!(
        results,
        "{calls} script calls counted on the masters for {} decisions by Redis ({} by the deny cache or the failure policy); calls beyond the decisions: {:+} (another client of the cluster, or a script reloaded after NOSCRIPT).",
        one.by_redis,
        one.other,
        calls as i64 - one.by_redis as i64
    );
    say!(results);
    say!(
        results,
        "Phase 2: {request_count} requests, each `check_all` of three checks (client address of {subjects}, API key of 1000, route of 8; limits never reached): {:.0} requests/s, p50 {:.3} ms, p99 {:.3} ms; client CPU {:.1} µs per request.",
        all.by_redis as f64 / all.elapsed.as_secs_f64(),
        percentile_ms(&all.latencies, 50.0),
        percentile_ms(&all.latencies, 99.0),
        all.cpu.as_secs_f64() * 1e6 / all.decisions().max(1) as f64
    );
    say!(results);
    spread_table(&mut results, &masters, &all_spent, &all);
    let calls: u64 = all_spent.iter().map(|s| s.script_calls).sum();
    say!(results);
    say!(
        results,
        "Script calls per request: {:.2} measured ({calls} over {} requests; {} admitted by Redis alone, {} otherwise). Their checks hashed to {:.2} slots on {:.2} masters on average: one call per slot, all sent at once, so a request waits one round trip; on a single Redis it is one call. A script's keys must share one slot (Redis Cluster refuses CROSSSLOT even within one master), so two checks on one master in two slots are two calls. The 8 routes are 8 subjects, so their calls fall on a few slots: the masters' shares follow those rather than the slots they own.",
        calls as f64 / all.decisions().max(1) as f64,
        all.decisions(),
        all.by_redis,
        all.other,
        all.slots_touched as f64 / all.decisions().max(1) as f64,
        all.masters_touched as f64 / all.decisions().max(1) as f64
    );
    results.save();
    // Buckets that no longer hold a debt expire on their own; these are the rest.
    println!("cleaned up {deleted} keys under {prefix}");
}
