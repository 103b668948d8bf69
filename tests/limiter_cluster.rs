//! The Redis limiter on the local 3-master Redis Cluster
//! (`REDIS_CLUSTER_URLS`): several limits of one caller in one call, no
//! `CROSSSLOT`, exact counts, and script recovery on every master.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use dynagate::limiter::{DecidedBy, Limits, Outcome, Quota, RateLimiter, RedisLimiter};
use redis::AsyncCommands;

fn limiter(connection: redis::cluster_async::ClusterConnection, prefix: &str) -> RedisLimiter {
    RedisLimiter::builder(connection)
        .prefix(prefix)
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap()
}

/// A burst of 3 that comes back slowly, and 5 a day.
fn per_caller() -> Limits {
    Limits::builder("api")
        .limit("burst", Quota::per_hour(1).burst(3).unwrap())
        .limit("day", Quota::per_day(5).burst(5).unwrap())
        .build()
        .unwrap()
}

/// Which masters hold keys under `prefix`.
async fn holders(nodes: &[String], prefix: &str) -> HashMap<String, Vec<String>> {
    let mut found = HashMap::new();
    for url in nodes {
        let mut node = common::redis_node(url).await;
        let keys: Vec<String> = node.keys(format!("{prefix}*")).await.unwrap();
        if !keys.is_empty() {
            found.insert(url.clone(), keys);
        }
    }
    found
}

#[tokio::test]
async fn several_limits_of_one_caller_are_checked_in_one_call_in_one_slot() {
    let (connection, keys) = common::redis_cluster().await;
    let limiter = limiter(connection, keys.prefix());
    let limits = per_caller();

    let mut outcomes = Vec::new();
    for _ in 0..4 {
        let d = limiter.try_check(&limits, "caller-1", 1).await.unwrap();
        outcomes.push((d.outcome(), d.remaining(), d.limit()));
    }
    assert_eq!(
        &outcomes[..3],
        [
            (Outcome::Allowed, 2, 0),
            (Outcome::Allowed, 1, 0),
            (Outcome::Allowed, 0, 0)
        ]
    );
    let (outcome, remaining, limit) = outcomes[3];
    assert!(matches!(outcome, Outcome::Denied { .. }), "{outcome:?}");
    assert_eq!((remaining, limit), (0, 0), "the burst limit denied");
    let d = limiter.try_check(&limits, "caller-1", 6).await.unwrap();
    assert_eq!(
        (d.outcome(), d.limit()),
        (Outcome::Never, 0),
        "6 > a burst of 3"
    );

    let held = holders(keys.nodes(), keys.prefix()).await;
    assert_eq!(held.len(), 1, "one master holds both buckets: {held:?}");
    let bucket_keys: Vec<&String> = held.values().flatten().collect();
    assert_eq!(bucket_keys.len(), 2, "{bucket_keys:?}");
    keys.cleanup().await;
}

#[tokio::test]
async fn counts_are_exact_for_many_callers_spread_over_every_master() {
    let (connection, keys) = common::redis_cluster().await;
    let limiter = limiter(connection, keys.prefix());
    let limits = per_caller();
    let callers: Vec<String> = (0..24).map(|i| format!("caller-{i}")).collect();
    let mut admitted: HashMap<&str, usize> = HashMap::new();
    for round in 0..6 {
        for caller in &callers {
            // Two tokens in the first round, then one: 2 + 1 fill the burst of 3.
            let cost = if round == 0 { 2 } else { 1 };
            let d = limiter.try_check(&limits, caller, cost).await.unwrap();
            if d.allowed() {
                *admitted.entry(caller).or_default() += cost as usize;
            }
        }
    }
    for caller in &callers {
        assert_eq!(admitted[caller.as_str()], 3, "{caller}");
    }
    let held = holders(keys.nodes(), keys.prefix()).await;
    assert_eq!(held.len(), 3, "24 callers land on every master: {held:?}");
    let total: usize = held.values().map(Vec::len).sum();
    assert_eq!(total, 48, "two buckets per caller");
    keys.cleanup().await;
}

#[tokio::test]
async fn script_flush_on_every_master_is_invisible_to_callers() {
    let (mut connection, keys) = common::redis_cluster().await;
    let limiter = limiter(connection.clone(), keys.prefix());
    let limits = Limits::single("api", "day", Quota::per_day(100).burst(100).unwrap()).unwrap();
    let callers: Vec<String> = (0..12).map(|i| format!("flush-{i}")).collect();
    for round in 0..3 {
        // SCRIPT FLUSH goes to every master through the cluster connection.
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut connection)
            .await
            .unwrap();
        for caller in &callers {
            let d = limiter.check(&limits, caller, 1).await;
            assert_eq!(d.decided_by(), DecidedBy::Redis, "round {round}, {caller}");
            assert_eq!(d.remaining(), 99 - round, "round {round}, {caller}");
        }
    }
    keys.cleanup().await;
}

/// A request's checks whose subjects hash to different slots: one call per
/// slot, all admitted and taken; when one refuses, the others are refunded
/// exactly, and a shadow check keeps what it took.
#[tokio::test]
async fn checks_in_different_slots_are_refunded_when_one_refuses() {
    use dynagate::limiter::Check;
    use redis::cluster_routing::Slot;

    let (mut connection, keys) = common::redis_cluster().await;
    let limiter = limiter(connection.clone(), keys.prefix());
    let hourly = |namespace: &str, burst: u64| {
        Limits::single(namespace, "hour", Quota::per_hour(1).burst(burst).unwrap()).unwrap()
    };
    let (ip, key, route, shadow) = (
        hourly("ip", 10),
        hourly("key", 5),
        hourly("route", 1),
        hourly("shadow", 10),
    );
    let checks = [
        Check::new(&ip, "198.51.100.7", 1),
        Check::new(&key, "key-7", 2),
        Check::new(&route, "POST /users", 1),
        Check::new(&shadow, "shadow-7", 1).independent(),
    ];
    let bucket_keys: Vec<String> = checks
        .iter()
        .map(|c| limiter.keys(c.limits, c.subject).remove(0))
        .collect();
    let slots: Vec<Slot> = bucket_keys.iter().map(Slot::for_key).collect();
    for (i, slot) in slots.iter().enumerate() {
        assert!(
            !slots[..i].contains(slot),
            "subjects in four slots: {bucket_keys:?}"
        );
    }
    async fn tats(
        connection: &mut redis::cluster_async::ClusterConnection,
        keys: &[String],
    ) -> Vec<Option<u64>> {
        let mut tats = Vec::new();
        for key in keys {
            tats.push(connection.get(key).await.unwrap());
        }
        tats
    }

    let first = limiter.check_all(&checks).await;
    assert!(first.admitted, "{first:?}");
    assert_eq!(
        first.each.iter().map(|d| d.remaining()).collect::<Vec<_>>(),
        [9, 3, 0, 9]
    );
    let taken = tats(&mut connection, &bucket_keys).await;
    assert!(
        taken.iter().all(Option::is_some),
        "every slot took: {taken:?}"
    );

    let second = limiter.check_all(&checks).await;
    assert!(!second.admitted);
    assert_eq!(second.refused_by(&checks), Some(2));
    assert!(second.each[0].allowed() && second.each[1].allowed() && second.each[3].allowed());
    let after = tats(&mut connection, &bucket_keys).await;
    assert_eq!(
        after[..3],
        taken[..3],
        "the address and key buckets took in their slots and were refunded exactly"
    );
    assert!(after[3] > taken[3], "the shadow check is never refunded");
    let look = limiter.check(&key, "key-7", 0).await;
    assert_eq!(
        look.remaining(),
        3,
        "2 of 5 taken, by the admitted request only"
    );

    // A request the cache knows is refused costs no slot anything.
    let third = limiter.check_all(&checks).await;
    assert_eq!(third.each[2].decided_by(), DecidedBy::DenyCache);
    assert_eq!(tats(&mut connection, &bucket_keys).await, after);
    keys.cleanup().await;
}
