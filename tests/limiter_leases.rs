//! Local leases (`RedisLimiterBuilder::leases`) on the shared single Redis
//! (`REDIS_URL`), round trips counted by a proxy in front of it: a busy
//! subject is decided mostly without a round trip; two instances leasing the
//! same subjects never admit more than the buckets hold, and admit all of it
//! while their callers keep asking; a lease that asks more than the buckets
//! hold never refuses a request they would admit.

mod common;

use std::time::Duration;

use common::CountingProxy;
use dynagate::limiter::{Check, DecidedBy, Leases, Limits, Quota, RateLimiter, RedisLimiter};

async fn limiter(url: &str, prefix: &str, leases: Option<Leases>) -> RedisLimiter {
    let client = redis::Client::open(url).unwrap();
    let manager = redis::aio::ConnectionManager::new(client).await.unwrap();
    let builder = RedisLimiter::builder(manager)
        .prefix(prefix)
        .deadline(Duration::from_secs(2));
    let builder = match leases {
        Some(leases) => builder.leases(leases),
        None => builder,
    };
    let limiter = builder.build().unwrap();
    limiter.load_script().await.unwrap();
    limiter
}

/// `burst` tokens that refill one in 6 minutes: none during a test.
fn per_hour(namespace: &str, burst: u64) -> Limits {
    Limits::single(namespace, "hour", Quota::per_hour(10).burst(burst).unwrap()).unwrap()
}

/// Leases of up to 16 tokens that outlive the test: none expires unspent.
fn leases() -> Leases {
    Leases::up_to(16)
        .unwrap()
        .lasting(Duration::from_secs(60))
        .unwrap()
}

#[tokio::test]
async fn a_busy_subject_is_decided_mostly_without_a_round_trip() {
    let (_direct, keys) = common::redis().await;
    let proxy = CountingProxy::start(common::host_port(&common::redis_url(), 6379)).await;
    let limiter = limiter(&proxy.url, keys.prefix(), Some(leases())).await;
    let (ip, key) = (per_hour("ip", 10_000), per_hour("key", 10_000));
    proxy.take();
    let mut by_lease = 0;
    for _ in 0..1_000 {
        let checks = [
            Check::new(&ip, "203.0.113.9", 1),
            Check::new(&key, "key-1", 1),
        ];
        let decisions = limiter.check_all(&checks).await;
        assert!(decisions.admitted);
        if decisions
            .each
            .iter()
            .all(|d| d.decided_by() == DecidedBy::Lease)
        {
            by_lease += 1;
        }
    }
    let calls = proxy.take();
    assert!(
        calls.iter().all(|c| c == "EVALSHA"),
        "only decisions: {calls:?}"
    );
    // A lease ramps up 2, 4, 8, 16 and then serves 16 requests per call.
    assert!(
        calls.len() <= 1_000 / 16 + 8,
        "{} calls for 1,000 requests",
        calls.len()
    );
    assert_eq!(
        by_lease + calls.len(),
        1_000,
        "every request without a call was spent from the leases"
    );
    // The buckets were charged for every request and every lease.
    let look = limiter.check(&key, "key-1", 0).await;
    assert!(
        (10_000 - 1_000 - 16..=10_000 - 1_000).contains(&look.remaining()),
        "{} remaining",
        look.remaining()
    );
}

#[tokio::test]
async fn two_instances_leasing_never_admit_more_than_the_buckets_hold() {
    let (_direct, keys) = common::redis().await;
    let url = common::redis_url();
    let instances = [
        limiter(&url, keys.prefix(), Some(leases())).await,
        limiter(&url, keys.prefix(), Some(leases())).await,
    ];
    let (ip, key) = (per_hour("ip", 1_000), per_hour("key", 200));
    let mut tasks = tokio::task::JoinSet::new();
    let by_lease = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    for task in 0..8 {
        let by_lease = by_lease.clone();
        let limiter = instances[task % 2].clone();
        let (ip, key) = (ip.clone(), key.clone());
        tasks.spawn(async move {
            let mut admitted = 0u64;
            for _ in 0..150 {
                let checks = [
                    Check::new(&ip, "198.51.100.7", 1),
                    Check::new(&key, "key-2", 1),
                ];
                let decisions = limiter.check_all(&checks).await;
                if decisions.admitted {
                    admitted += 1;
                }
                if decisions.each[1].decided_by() == DecidedBy::Lease {
                    by_lease.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            admitted
        });
    }
    let mut admitted = 0;
    while let Some(each) = tasks.join_next().await {
        admitted += each.unwrap();
    }
    // 1,200 requests for 200 tokens: every leased token is spent by a
    // request that came after it, on the instance that holds it.
    assert_eq!(admitted, 200, "exactly the key's burst");
    let by_lease = by_lease.load(std::sync::atomic::Ordering::Relaxed);
    assert!(by_lease >= 100, "{by_lease} of 200 spent from leases");
}

#[tokio::test]
async fn a_lease_that_asks_too_much_never_refuses_what_the_buckets_hold() {
    let (_direct, keys) = common::redis().await;
    let url = common::redis_url();
    let proxy = CountingProxy::start(common::host_port(&url, 6379)).await;
    let leasing = limiter(&proxy.url, keys.prefix(), Some(leases())).await;
    let exact = limiter(&url, keys.prefix(), None).await;
    let key = per_hour("key", 1_000);
    let mut admitted = 0;
    for _ in 0..40 {
        assert!(leasing.check(&key, "key-3", 1).await.allowed());
        admitted += 1;
    }
    // The other instance takes all but one token the buckets still hold;
    // the leasing one last heard of hundreds.
    let left = exact.check(&key, "key-3", 0).await.remaining();
    assert!(exact.check(&key, "key-3", left - 1).await.allowed());
    proxy.take();
    let mut after = Vec::new();
    for _ in 0..40 {
        let decision = leasing.check(&key, "key-3", 1).await;
        after.push((decision.allowed(), decision.decided_by()));
    }
    let leased = after
        .iter()
        .take_while(|(allowed, by)| *allowed && *by == DecidedBy::Lease)
        .count();
    assert_eq!(
        after[leased],
        (true, DecidedBy::Redis),
        "the lease it asked was refused; the token left was not: {after:?}"
    );
    assert!(
        after[leased + 1..]
            .iter()
            .all(|(allowed, by)| !allowed && *by != DecidedBy::Lease),
        "{after:?}"
    );
    // The lease asked and refused, the request's own cost asked and
    // admitted, the next request refused; the deny cache answers the rest.
    assert_eq!(proxy.take().len(), 3);
    admitted += leased as u64 + 1;
    assert_eq!(admitted + (left - 1), 1_000, "every token admitted once");
}
