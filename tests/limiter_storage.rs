//! The limiter's storage contract on the shared Redis (`REDIS_URL`) and
//! Cluster (`REDIS_CLUSTER_URLS`): one integer key per bucket, written only on
//! admission or settle, expiring when full, clamped after a backward clock
//! step; the deny cache; settles of several limits in one slot.

mod common;

use std::time::Duration;

use dynagate::limiter::{DecidedBy, Limits, Outcome, Quota, RateLimiter, RedisLimiter};
use redis::AsyncCommands;

fn per_day(capacity: u64) -> Limits {
    Limits::single(
        "test",
        "day",
        Quota::per_day(capacity).burst(capacity).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_bucket_is_one_small_integer_key_written_only_on_admission() {
    let (mut manager, keys) = common::redis().await;
    let limiter = RedisLimiter::builder(manager.clone())
        .prefix(keys.prefix())
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let limits = per_day(10);
    let key = limiter.keys(&limits, "ada").remove(0);
    assert_eq!(key, format!("{}test:{{ada}}:day", keys.prefix()));

    let never = limiter.try_check(&limits, "ada", 11).await.unwrap();
    assert_eq!(never.outcome(), Outcome::Never);
    assert_eq!(never.retry_after(), None);
    assert_eq!(never.remaining(), 10);
    let exists: bool = manager.exists(&key).await.unwrap();
    assert!(!exists, "a never-answer writes nothing");

    let allowed = limiter.try_check(&limits, "ada", 3).await.unwrap();
    assert!(allowed.allowed());
    assert_eq!(allowed.remaining(), 7);
    assert_eq!(allowed.reset_after(), Duration::from_secs(3 * 8640));
    let stored: String = manager.get(&key).await.unwrap();
    assert!(stored.parse::<u64>().is_ok(), "an integer TAT: {stored}");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut manager)
        .await
        .unwrap();
    let full_in_ms = 3 * 8_640_000;
    assert!(
        pttl <= full_in_ms && pttl > full_in_ms - 60_000,
        "expires when full again: PTTL {pttl} ms, full in {full_in_ms} ms"
    );
    let usage: i64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(&key)
        .query_async(&mut manager)
        .await
        .unwrap();
    println!(
        "MEMORY USAGE of a bucket key ({} bytes long): {usage} bytes",
        key.len()
    );
    assert!(usage < 200, "{usage} bytes");

    let denied = limiter.try_check(&limits, "ada", 8).await.unwrap();
    let Outcome::Denied { retry_after } = denied.outcome() else {
        panic!("{denied:?}");
    };
    assert!(
        retry_after <= Duration::from_secs(8640) && retry_after > Duration::from_secs(8580),
        "one token's wait, less the time since the admission: {retry_after:?}"
    );
    let after: String = manager.get(&key).await.unwrap();
    assert_eq!(after, stored, "a denial writes nothing");
    keys.cleanup().await;
}

#[tokio::test]
async fn a_tat_left_by_a_clock_that_stepped_back_is_clamped_to_one_refill() {
    let (mut manager, keys) = common::redis().await;
    let limiter = RedisLimiter::builder(manager.clone())
        .prefix(keys.prefix())
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let limits = Limits::single("test", "s", Quota::per_second(1).burst(2).unwrap()).unwrap();
    let key = limiter.keys(&limits, "clock").remove(0);
    let (seconds, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut manager).await.unwrap();
    let an_hour_ahead = (seconds + 3600) * 1_000_000 + micros;
    let _: () = manager.set(&key, an_hour_ahead).await.unwrap();
    let d = limiter.try_check(&limits, "clock", 1).await.unwrap();
    let Outcome::Denied { retry_after } = d.outcome() else {
        panic!("{d:?}");
    };
    assert!(
        retry_after <= Duration::from_secs(1),
        "at most one token's wait, not an hour: {retry_after:?}"
    );
    assert!(d.reset_after() <= Duration::from_secs(2));
    let stored: u64 = manager.get(&key).await.unwrap();
    assert!(stored < an_hour_ahead, "the clamp is stored");
    keys.cleanup().await;
}

#[tokio::test]
async fn a_denied_subject_is_answered_locally_until_its_retry_after() {
    let (manager, keys) = common::redis().await;
    let limiter = RedisLimiter::builder(manager)
        .prefix(keys.prefix())
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let limits = per_day(2);
    assert!(limiter.check(&limits, "eve", 2).await.allowed());
    let first = limiter.check(&limits, "eve", 1).await;
    assert_eq!(first.decided_by(), DecidedBy::Redis);
    assert!(!first.allowed());
    let again = limiter.check(&limits, "eve", 1).await;
    assert_eq!(again.decided_by(), DecidedBy::DenyCache);
    assert!(!again.allowed());
    let look = limiter.check(&limits, "eve", 0).await;
    assert_eq!(
        look.decided_by(),
        DecidedBy::Redis,
        "a smaller cost asks Redis"
    );
    assert!(look.allowed());
    keys.cleanup().await;
}

/// A reservation, a refund of what was not used, a debit beyond what is
/// left: on the cluster, both buckets of one caller move in one call.
#[tokio::test]
async fn settles_of_several_limits_run_in_one_cluster_slot() {
    let (mut connection, keys) = common::redis_cluster().await;
    let limiter = RedisLimiter::builder(connection.clone())
        .prefix(keys.prefix())
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let limits = Limits::builder("settle")
        .limit("burst", Quota::per_hour(1).burst(10).unwrap())
        .limit("day", Quota::per_day(20).burst(20).unwrap())
        .build()
        .unwrap();
    assert!(
        limiter
            .try_check(&limits, "bob", 8)
            .await
            .unwrap()
            .allowed()
    );
    limiter.try_settle(&limits, "bob", -5).await.unwrap();
    let d = limiter.try_check(&limits, "bob", 0).await.unwrap();
    assert_eq!(
        (d.remaining(), d.limit()),
        (7, 0),
        "3 used: 7 of 10, 17 of 20"
    );
    limiter.try_settle(&limits, "bob", 12).await.unwrap();
    let d = limiter.try_check(&limits, "bob", 1).await.unwrap();
    assert_eq!(d.limit(), 0, "the burst is empty, not 5 in debt");
    assert!(!d.allowed());
    assert!(
        d.retry_after().unwrap() <= Duration::from_secs(3600),
        "one token's wait: {d:?}"
    );
    // The same day bucket, looked at alone.
    let day = Limits::single("settle", "day", limits.as_slice()[1].quota()).unwrap();
    let d = limiter.try_check(&day, "bob", 0).await.unwrap();
    assert_eq!(
        d.remaining(),
        5,
        "the day limit took the 12 too: 20 - 3 - 12"
    );
    limiter.try_settle(&limits, "bob", i64::MIN).await.unwrap();
    for key in limiter.keys(&limits, "bob") {
        let exists: bool = connection.exists(&key).await.unwrap();
        assert!(!exists, "refunded to full: {key} deleted");
    }
    keys.cleanup().await;
}

#[tokio::test]
async fn a_refund_ends_a_cached_denial() {
    let (manager, keys) = common::redis().await;
    let limiter = RedisLimiter::builder(manager)
        .prefix(keys.prefix())
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let limits = per_day(4);
    assert!(limiter.check(&limits, "kim", 4).await.allowed());
    assert!(!limiter.check(&limits, "kim", 2).await.allowed());
    let cached = limiter.check(&limits, "kim", 2).await;
    assert_eq!(cached.decided_by(), DecidedBy::DenyCache);
    limiter.settle(&limits, "kim", -3).await;
    let d = limiter.check(&limits, "kim", 2).await;
    assert_eq!((d.allowed(), d.decided_by()), (true, DecidedBy::Redis));
    assert_eq!(d.remaining(), 1, "4 reserved, 3 refunded, 2 taken");
    keys.cleanup().await;
}
