//! The one harness for dynagate's integration tests.
//!
//! Endpoints come from the environment, with defaults that match the native
//! local stack (`stack/stack.sh start`):
//!
//! | variable             | default                                                        |
//! |----------------------|----------------------------------------------------------------|
//! | `AWS_ENDPOINT_URL`   | `http://127.0.0.1:8000` (DynamoDB Local)                        |
//! | `REDIS_URL`          | `redis://127.0.0.1:6379`                                        |
//! | `REDIS_CLUSTER_URLS` | `redis://127.0.0.1:7000,redis://127.0.0.1:7001,redis://127.0.0.1:7002` |
//!
//! Against a loopback endpoint the harness signs with static dummy credentials
//! and `AWS_REGION` (default `us-east-1`); against anything else it uses the
//! standard AWS credential chain. Every test gets its own table or key prefix,
//! so tests run in parallel against one server, and cleans up after itself.
//!
//! A server that does not answer fails the test with a message naming the
//! command that starts it: nothing is skipped.
#![allow(dead_code, unreachable_pub)] // each test binary uses a part of the harness

pub mod wire;

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;

/// The command that starts every server the tests need.
pub const START_COMMAND: &str = "stack/stack.sh start";
/// The command that starts the stack and runs the whole suite.
pub const TEST_COMMAND: &str = "./dev.sh test";

const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8000";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
const DEFAULT_CLUSTER_URLS: &str =
    "redis://127.0.0.1:7000,redis://127.0.0.1:7001,redis://127.0.0.1:7002";
const REACH_TIMEOUT: Duration = Duration::from_secs(2);

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

pub fn dynamodb_endpoint() -> String {
    env_or("AWS_ENDPOINT_URL", DEFAULT_ENDPOINT)
}

pub fn redis_url() -> String {
    env_or("REDIS_URL", DEFAULT_REDIS_URL)
}

pub fn cluster_urls() -> Vec<String> {
    env_or("REDIS_CLUSTER_URLS", DEFAULT_CLUSTER_URLS)
        .split(',')
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect()
}

/// A name no other test, process or earlier run uses: `<prefix>-<pid>-<time>-<n>`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros();
    format!(
        "{prefix}-{}-{micros}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

// ------------------------------------------------------------ reachability --

/// `host:port` of a URL such as `http://127.0.0.1:8000` or `redis://h:6379/0`.
pub fn host_port(url: &str, default_port: u16) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:{default_port}")
    }
}

/// Ok when something accepts TCP connections at `url`; otherwise the message a
/// failing test shows: what is missing, where, and which command starts it.
pub fn check_reachable(what: &str, url: &str, default_port: u16) -> Result<(), String> {
    let address = host_port(url, default_port);
    let addrs: Vec<SocketAddr> = address
        .to_socket_addrs()
        .map_err(|e| format!("{what}: cannot resolve {address} from {url}: {e}"))?
        .collect();
    let mut last_error = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, REACH_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(e) => last_error = Some(e),
        }
    }
    Err(format!(
        "{what} is not reachable at {url} ({}). Start the local stack with `{START_COMMAND}` \
         (or run the whole suite with `{TEST_COMMAND}`), or point the tests elsewhere with the \
         environment variables in tests/common/mod.rs.",
        last_error.map_or_else(|| "no address".to_owned(), |e| e.to_string())
    ))
}

fn require_reachable(what: &str, url: &str, default_port: u16) {
    if let Err(message) = check_reachable(what, url, default_port) {
        panic!("{message}");
    }
}

fn is_loopback(url: &str) -> bool {
    let address = host_port(url, 0);
    let host = address
        .rsplit_once(':')
        .map_or(address.as_str(), |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

// ---------------------------------------------------------------- DynamoDB --

/// The shared AWS configuration the tests use: the standard chain, with static
/// dummy credentials and a default region when the endpoint is local.
pub async fn sdk_config() -> SdkConfig {
    let endpoint = dynamodb_endpoint();
    require_reachable("DynamoDB", &endpoint, 80);
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).endpoint_url(&endpoint);
    if is_loopback(&endpoint) {
        loader = loader
            .credentials_provider(Credentials::new(
                "dynagatelocal",
                "dynagatelocal",
                None,
                None,
                "dynagate-tests",
            ))
            .region(Region::new(env_or("AWS_REGION", "us-east-1")));
    }
    loader.load().await
}

/// The tests' AWS configuration pointed at `endpoint` instead (a fault proxy).
pub async fn sdk_config_via(endpoint: &str) -> SdkConfig {
    sdk_config()
        .await
        .to_builder()
        .endpoint_url(endpoint)
        .build()
}

/// A fault proxy on a free loopback port in front of the tests' DynamoDB,
/// applying `rules`, its randomness seeded with `seed`.
pub async fn fault_proxy(
    rules: Vec<dynagate_fault_proxy::Rule>,
    seed: u64,
) -> dynagate_fault_proxy::RunningProxy {
    use dynagate_fault_proxy::{FaultProxy, ProxyConfig, RuleSet, Upstream};
    let upstream = Upstream::parse(&dynamodb_endpoint())
        .expect("the fault proxy forwards to a plain http:// DynamoDB endpoint");
    let config = ProxyConfig::default()
        .with_listen("127.0.0.1:0".parse().expect("loopback address"))
        .with_upstream(upstream)
        .with_seed(seed)
        .with_rules(RuleSet::new(rules).expect("valid rules"));
    FaultProxy::start(config)
        .await
        .expect("the fault proxy starts")
}

/// A DynamoDB client built the way dynagate builds it (SDK retries disabled).
pub async fn dynamodb() -> Client {
    dynagate::sdk_client(&sdk_config().await)
}

/// A table of its own for one test, deleted when the test ends, pass or fail.
///
/// Its key is a string partition key `pk` and, when asked for, a string sort
/// key `sk`; billing is on demand.
#[derive(Debug)]
pub struct TestTable {
    client: Client,
    name: String,
    deleted: bool,
}

impl TestTable {
    pub async fn create(test: &str) -> TestTable {
        Self::create_with(test, false).await
    }

    pub async fn create_with_sort_key(test: &str) -> TestTable {
        Self::create_with(test, true).await
    }

    /// A table whose string partition key is named `partition_key`.
    pub async fn create_with_key(test: &str, partition_key: &str) -> TestTable {
        Self::create_table(test, partition_key, false).await
    }

    async fn create_with(test: &str, sort_key: bool) -> TestTable {
        Self::create_table(test, "pk", sort_key).await
    }

    async fn create_table(test: &str, partition_key: &str, sort_key: bool) -> TestTable {
        // The table's own client sets up and checks what is stored; it is
        // never the client under test. It retries (SDK standard mode, 10
        // attempts) so that a check survives a server injecting throttles:
        // LocalStack's DYNAMODB_ERROR_PROBABILITY throttles Scan too, and a
        // single-attempt verification Scan failed the ledger test there.
        // Against DynamoDB Local nothing throttles it, so nothing changes.
        let config = aws_sdk_dynamodb::config::Builder::from(&sdk_config().await)
            .retry_config(
                aws_sdk_dynamodb::config::retry::RetryConfig::standard().with_max_attempts(10),
            )
            .build();
        let client = Client::from_conf(config);
        let name = unique_name(&format!("dg-{test}"));
        let mut request = client
            .create_table()
            .table_name(&name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(string_attribute(partition_key))
            .key_schema(key(partition_key, KeyType::Hash));
        if sort_key {
            request = request
                .attribute_definitions(string_attribute("sk"))
                .key_schema(key("sk", KeyType::Range));
        }
        request
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating test table {name}: {e:?}"));
        TestTable {
            client,
            name,
            deleted: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Deletes the table now and fails the test if that does not work.
    pub async fn delete(mut self) {
        self.deleted = true;
        self.client
            .delete_table()
            .table_name(&self.name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("deleting test table {}: {e:?}", self.name));
    }
}

impl Drop for TestTable {
    /// A test that panics never reaches `delete`; the table still goes. The SDK
    /// client belongs to the test's runtime, which may be unwinding, so the
    /// deletion runs on a runtime and client of its own.
    fn drop(&mut self) {
        if self.deleted {
            return;
        }
        let name = std::mem::take(&mut self.name);
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async {
                let client = dynamodb().await;
                if let Err(e) = client.delete_table().table_name(&name).send().await {
                    eprintln!("cleanup: could not delete test table {name}: {e:?}");
                }
            });
        });
        let _ = cleanup.join();
    }
}

fn string_attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("attribute definition")
}

fn key(name: &str, key_type: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .expect("key schema element")
}

// ------------------------------------------------------------------- Redis --

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

/// A redis-server of the test's own on a free loopback port, killed on drop.
pub struct ThrowawayRedis {
    child: std::process::Child,
    pub url: String,
}

impl ThrowawayRedis {
    pub async fn start() -> ThrowawayRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed by stack/stack.sh");
        let url = format!("redis://127.0.0.1:{port}");
        for _ in 0..100 {
            if check_reachable("throwaway Redis", &url, port).is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ThrowawayRedis { child, url }
    }

    /// Kills the server now (SIGKILL): its clients see a dead Redis.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

// --------------------------------------------------------- worker processes --

/// Runs this test binary again as worker processes, one per `specs` entry:
/// each runs the single test `test`, with its spec in the environment
/// variable `env`, and prints `<marker> <count>`. Waits for all of them and
/// returns the sum of their counts; a worker that fails fails the test.
pub fn run_test_workers(test: &str, env: &str, specs: &[String], marker: &str) -> u64 {
    let exe = std::env::current_exe().expect("the test binary's path");
    let children: Vec<_> = specs
        .iter()
        .map(|spec| {
            std::process::Command::new(&exe)
                .args([test, "--exact", "--nocapture", "--test-threads", "1"])
                .env(env, spec)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn a worker process")
        })
        .collect();
    let mut total = 0;
    for child in children {
        let output = child.wait_with_output().expect("a worker's output");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "worker failed: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // libtest prints "test <name> ... " on the same line, before the count.
        let count: String = stdout
            .split_once(&format!("{marker} "))
            .unwrap_or_else(|| panic!("no {marker} count from worker: {stdout}"))
            .1
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        total += count.parse::<u64>().expect("a count");
    }
    total
}
