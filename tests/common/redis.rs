//! Redis for the tests: connections to the shared single server and cluster,
//! and a key prefix of each test's own.

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;

use super::env::{cluster_urls, redis_url, require_reachable, unique_name};

/// A Redis connection manager on `REDIS_URL` and a key prefix of this test's own.
pub async fn redis() -> (ConnectionManager, KeySpace) {
    let url = redis_url();
    require_reachable("Redis", &url, 6379);
    let client = redis::Client::open(url.as_str())
        .unwrap_or_else(|e| panic!("REDIS_URL={url} is not a Redis URL: {e}"));
    let manager = ConnectionManager::new(client)
        .await
        .unwrap_or_else(|e| panic!("connecting to Redis at {url}: {e}"));
    (manager, KeySpace::new("single", vec![url]))
}

/// A blocking connection to `REDIS_URL`, for the property tests whose
/// runner takes a plain closure (it cannot await).
pub fn blocking_redis() -> redis::Connection {
    let url = redis_url();
    redis::Client::open(url.as_str())
        .and_then(|client| client.get_connection())
        .unwrap_or_else(|e| panic!("connecting to Redis at {url}: {e}"))
}

/// An async Redis Cluster connection on `REDIS_CLUSTER_URLS` and a key prefix.
pub async fn redis_cluster() -> (ClusterConnection, KeySpace) {
    let urls = cluster_urls();
    for url in &urls {
        require_reachable("Redis Cluster node", url, 6379);
    }
    let client = redis::cluster::ClusterClient::new(urls.clone())
        .unwrap_or_else(|e| panic!("REDIS_CLUSTER_URLS={urls:?}: {e}"));
    let connection = client
        .get_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connecting to the Redis Cluster at {urls:?}: {e}"));
    (connection, KeySpace::new("cluster", urls))
}

/// A plain (non-cluster) connection to one node, to see what that node holds.
pub async fn redis_node(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .unwrap_or_else(|e| panic!("{url} is not a Redis URL: {e}"))
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connecting to Redis node {url}: {e}"))
}

/// The keys of one test: every key starts with a prefix no other test uses.
/// `cleanup` deletes whatever the test left under it; a test that panics
/// before calling it is cleaned up when the key space is dropped.
#[derive(Debug)]
pub struct KeySpace {
    prefix: String,
    /// One URL for a single Redis, every master's URL for a cluster: SCAN only
    /// sees the keys of the node it runs on.
    nodes: Vec<String>,
    cleaned: bool,
}

impl KeySpace {
    fn new(kind: &str, nodes: Vec<String>) -> KeySpace {
        KeySpace {
            prefix: format!("{}:", unique_name(&format!("dynagate-test:{kind}"))),
            nodes,
            cleaned: false,
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// Deletes every key under the prefix; returns how many there were.
    pub async fn cleanup(mut self) -> usize {
        self.cleaned = true;
        delete_prefixed(&self.prefix, &self.nodes).await
    }
}

impl Drop for KeySpace {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let prefix = std::mem::take(&mut self.prefix);
        let nodes = std::mem::take(&mut self.nodes);
        let cleanup = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime")
                .block_on(delete_prefixed(&prefix, &nodes))
        });
        let _ = cleanup.join();
    }
}

async fn delete_prefixed(prefix: &str, nodes: &[String]) -> usize {
    let mut deleted = 0;
    for url in nodes {
        let mut node = redis_node(url).await;
        let keys: Vec<String> = {
            let mut iter = node
                .scan_match::<_, String>(format!("{prefix}*"))
                .await
                .expect("SCAN");
            let mut keys = Vec::new();
            while let Some(key) = iter.next_item().await {
                keys.push(key.expect("SCAN item"));
            }
            keys
        };
        for key in keys {
            // One DEL per key: in a cluster, a multi-key DEL must stay in one slot.
            let removed: usize = node.del(&key).await.expect("DEL");
            deleted += removed;
        }
    }
    deleted
}
