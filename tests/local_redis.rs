//! The local Redis and Redis Cluster answer through the clients dynagate uses.

mod common;

use std::collections::BTreeSet;

use redis::AsyncCommands;

#[tokio::test]
async fn connection_manager_round_trips_values_counters_and_expiry() {
    let (mut redis, keys) = common::redis().await;
    let greeting = keys.key("greeting");
    let counter = keys.key("counter");

    let _: () = redis.set_ex(&greeting, "hello", 60).await.expect("SET EX");
    let stored: Option<String> = redis.get(&greeting).await.expect("GET");
    assert_eq!(stored.as_deref(), Some("hello"));
    let ttl: i64 = redis.ttl(&greeting).await.expect("TTL");
    assert!((1..=60).contains(&ttl), "ttl {ttl}");

    for expected in 1..=5 {
        let n: i64 = redis.incr(&counter, 1).await.expect("INCR");
        assert_eq!(n, expected);
    }

    let missing: Option<String> = redis.get(keys.key("never-written")).await.expect("GET");
    assert_eq!(missing, None);

    assert_eq!(
        keys.cleanup().await,
        2,
        "cleanup removes exactly the two keys written"
    );
    let left: bool = redis.exists(&greeting).await.expect("EXISTS");
    assert!(!left);
}

/// The master that owns `key`: a plain connection to any other master answers MOVED.
async fn owner_of(key: &str, nodes: &[String]) -> String {
    let mut owners = Vec::new();
    for url in nodes {
        let mut node = common::redis_node(url).await;
        match node.get::<_, Option<String>>(key).await {
            Ok(_) => owners.push(url.clone()),
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Moved) => {}
            Err(e) => panic!("GET {key} on {url}: {e}"),
        }
    }
    assert_eq!(owners.len(), 1, "exactly one master owns {key}: {owners:?}");
    owners.remove(0)
}

#[tokio::test]
async fn cluster_routes_keys_of_different_slots_to_their_masters() {
    let (mut cluster, keys) = common::redis_cluster().await;
    let nodes = keys.nodes().to_vec();
    assert_eq!(
        nodes.len(),
        3,
        "the local cluster has three masters: {nodes:?}"
    );

    // One key per master, found by asking the masters themselves. Bounded: with
    // three equal slot ranges a handful of names covers all three.
    let mut chosen: Vec<(String, String)> = Vec::new();
    for i in 0..200 {
        let key = keys.key(&format!("k{i}"));
        let owner = owner_of(&key, &nodes).await;
        if chosen.iter().all(|(_, o)| *o != owner) {
            chosen.push((key, owner));
        }
        if chosen.len() == nodes.len() {
            break;
        }
    }
    assert_eq!(chosen.len(), 3, "keys on every master: {chosen:?}");

    let mut slots = BTreeSet::new();
    for (key, _) in &chosen {
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut cluster)
            .await
            .expect("CLUSTER KEYSLOT");
        slots.insert(slot);
    }
    assert_eq!(slots.len(), 3, "three different slots: {slots:?}");

    for (i, (key, _)) in chosen.iter().enumerate() {
        let _: () = cluster
            .set_ex(key, format!("value-{i}"), 60)
            .await
            .expect("SET through the cluster");
    }
    for (i, (key, owner)) in chosen.iter().enumerate() {
        let through_cluster: Option<String> =
            cluster.get(key).await.expect("GET through the cluster");
        assert_eq!(through_cluster, Some(format!("value-{i}")));
        // The value sits on the master that owns the slot, not anywhere else.
        let on_owner: Option<String> = common::redis_node(owner)
            .await
            .get(key)
            .await
            .expect("GET on owner");
        assert_eq!(on_owner, Some(format!("value-{i}")));
    }

    assert_eq!(
        keys.cleanup().await,
        3,
        "cleanup finds the keys on every master"
    );
    for (key, _) in &chosen {
        let left: bool = cluster.exists(key).await.expect("EXISTS");
        assert!(!left, "{key} was cleaned up");
    }
}
