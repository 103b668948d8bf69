//! `check_all` on the shared single Redis (`REDIS_URL`), through a counting
//! proxy that records every command the limiter sends: every check of one
//! request is one `EVALSHA`, all or nothing; a shadow check takes on its own;
//! a subject the deny cache knows is refused with no command at all.

mod common;

use std::time::Duration;

use common::CountingProxy;
use dynagate::limiter::{Check, DecidedBy, Limits, Quota, RateLimiter, RedisLimiter};
use redis::AsyncCommands;

async fn limiter_through(proxy: &CountingProxy, prefix: &str) -> RedisLimiter {
    let client = redis::Client::open(proxy.url.as_str()).unwrap();
    let manager = redis::aio::ConnectionManager::new(client).await.unwrap();
    RedisLimiter::builder(manager)
        .prefix(prefix)
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap()
}

fn per_hour(namespace: &str, burst: u64) -> Limits {
    Limits::single(namespace, "hour", Quota::per_hour(1).burst(burst).unwrap()).unwrap()
}

async fn tats(connection: &mut redis::aio::ConnectionManager, keys: &[String]) -> Vec<Option<u64>> {
    let mut tats = Vec::new();
    for key in keys {
        tats.push(connection.get(key).await.unwrap());
    }
    tats
}

#[tokio::test]
async fn every_check_of_a_request_is_one_evalsha_and_all_or_nothing() {
    let (mut direct, keys) = common::redis().await;
    let proxy = CountingProxy::start(common::host_port(&common::redis_url(), 6379)).await;
    let limiter = limiter_through(&proxy, keys.prefix()).await;
    let (ip, key, route, shadow) = (
        per_hour("ip", 10),
        per_hour("key", 5),
        per_hour("route", 1),
        per_hour("shadow", 10),
    );
    let checks = [
        Check::new(&ip, "203.0.113.9", 1),
        Check::new(&key, "key-1", 2),
        Check::new(&route, "GET /users/{id}", 1),
        Check::new(&shadow, "key-1", 1).independent(),
    ];
    let bucket_keys: Vec<String> = checks
        .iter()
        .map(|c| limiter.keys(c.limits, c.subject).remove(0))
        .collect();
    // Connection setup and the scripts' first load are not the request's: on
    // a fresh Redis the lone check's script is not loaded yet either (CI's
    // fresh stack answered its first EVALSHA with NOSCRIPT, then EVAL).
    limiter.load_script().await.unwrap();
    let warm_up = [
        Check::new(&ip, "warm-up", 1),
        Check::new(&key, "warm-up", 1),
    ];
    assert!(limiter.check_all(&warm_up).await.admitted);
    proxy.take();

    let first = limiter.check_all(&checks).await;
    assert_eq!(proxy.take(), ["EVALSHA"], "one round trip for four checks");
    assert!(first.admitted, "{first:?}");
    assert!(
        first
            .each
            .iter()
            .all(|d| d.decided_by() == DecidedBy::Redis)
    );
    assert_eq!(
        first.each.iter().map(|d| d.remaining()).collect::<Vec<_>>(),
        [9, 3, 0, 9],
        "each its own cost"
    );
    let taken = tats(&mut direct, &bucket_keys).await;
    assert!(
        taken.iter().all(Option::is_some),
        "every bucket took: {taken:?}"
    );

    let second = limiter.check_all(&checks).await;
    assert_eq!(proxy.take(), ["EVALSHA"]);
    assert!(!second.admitted);
    assert_eq!(second.refused_by(&checks), Some(2), "the route is spent");
    assert!(second.each[0].allowed() && second.each[1].allowed());
    let after = tats(&mut direct, &bucket_keys).await;
    assert_eq!(
        after[..3],
        taken[..3],
        "the refused request left the address, key and route buckets as they were"
    );
    assert!(
        after[3] > taken[3],
        "the shadow check took its token on its own: {after:?}"
    );

    // The route's denial is cached: the same request asks nothing.
    let third = limiter.check_all(&checks).await;
    assert_eq!(proxy.take(), Vec::<String>::new(), "no command at all");
    assert!(!third.admitted);
    assert_eq!(third.each[2].decided_by(), DecidedBy::DenyCache);
    for i in [0, 1, 3] {
        assert_eq!(third.each[i].decided_by(), DecidedBy::NotAsked, "check {i}");
    }
    assert_eq!(
        tats(&mut direct, &bucket_keys).await,
        after,
        "nothing moved"
    );

    // A lone check is the shorter script, still one command.
    assert!(limiter.check(&ip, "203.0.113.9", 1).await.allowed());
    assert_eq!(proxy.take(), ["EVALSHA"]);
    keys.cleanup().await;
}
