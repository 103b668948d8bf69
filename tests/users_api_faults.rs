//! The users API when what it depends on fails: DynamoDB throttling through
//! the fault proxy, the table's capacity gate, and a dead Redis.
#![cfg(feature = "axum")]

mod common;
mod users_api_server;

use std::time::Duration;

use dynagate::http::TrustedProxies;
use dynagate::limiter::FailurePolicy;
use dynagate_fault_proxy::Rule;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use users_api_server::{Api, assert_error, user};

#[tokio::test]
async fn dynamodb_throttling_that_outlasts_the_deadline_is_503_with_retry_after() {
    // Every PutItem throttled: the create backs off until the 1.5 s deadline.
    let throttle_puts = Rule::new("*", "PutItem").with_error(
        dynagate_fault_proxy::ErrorKind::ProvisionedThroughputExceeded,
        1.0,
    );
    let proxy = common::fault_proxy(vec![throttle_puts], 4).await;
    let api = Api::start_with(Some(proxy.url()), (100, 100), TrustedProxies::none()).await;
    let reply = api
        .call(Method::POST, "/api/v1/users", &[], &user("t"))
        .await;
    assert_error(&reply, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    let retry_after: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert!(
        !reply.json["message"]
            .as_str()
            .unwrap()
            .contains("Exception"),
        "no internals"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn over_the_tables_capacity_a_write_is_503_with_retry_after_and_never_sent() {
    // The users table may take 1 write a second: the fleet's gate gives the
    // first create its turn and refuses the next ones at once.
    let proxy = common::fault_proxy(Vec::new(), 6).await;
    let api = Api::start_configured(Some(proxy.url()), (100, 100), |config| {
        config.table_capacity = users_api::TableCapacitySetting::Units {
            read: 100.0,
            write: 1.0,
        };
        config.dynamodb_deadline = Duration::from_millis(300);
    })
    .await;
    let first = api
        .call(Method::POST, "/api/v1/users", &[], &user("first"))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.json);
    let mut refused = 0;
    for i in 0..3 {
        let reply = api
            .call(Method::POST, "/api/v1/users", &[], &user(&format!("u{i}")))
            .await;
        assert_error(&reply, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        let retry_after: u64 = reply.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry_after >= 1, "{retry_after}");
        refused += 1;
    }
    let puts = proxy.stats().operation(api.users.name(), "PutItem");
    assert_eq!(
        puts.requests, 1,
        "only the admitted create reached DynamoDB: {puts:?}"
    );
    assert_eq!(refused, 3);
    proxy.shutdown().await;
}

/// The users API served on loopback with `redis` (the fallback policy, a
/// 250 ms limiter deadline).
struct Served {
    addr: std::net::SocketAddr,
    ops_addr: std::net::SocketAddr,
    key: String,
    /// Deleted when the test ends, not before: the service uses them.
    _tables: [common::TestTable; 2],
}

async fn serve_on(redis: &common::ThrowawayRedis, prefix: &str) -> Served {
    let users = common::TestTable::create_with_key("api-users", "user_id").await;
    let keys = common::TestTable::create_with_key("api-keys", "key_hash").await;
    let mut config = users_api::Config::new(users.name(), keys.name(), &redis.url);
    config.limiter_prefix = prefix.to_owned();
    config.failure_policy = FailurePolicy::fallback(2).unwrap();
    config.dynamodb_deadline = Duration::from_millis(1500);
    config.limiter_deadline = LIMITER_DEADLINE;
    let (state, limits) = users_api::build(&config, &common::sdk_config().await)
        .await
        .unwrap();
    let key = state.keys.issue("tests", 100, 100, 100_000).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ops_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops_addr = ops_listener.local_addr().unwrap();
    tokio::spawn(users_api::run(
        ops_listener,
        users_api::ops_app(state.clone()),
        config.connections.clone(),
        std::future::pending(),
    ));
    tokio::spawn(users_api::run(
        listener,
        users_api::app(state, Some(limits)),
        config.connections.clone(),
        std::future::pending(),
    ));
    Served {
        addr,
        ops_addr,
        key,
        _tables: [users, keys],
    }
}

const LIMITER_DEADLINE: Duration = Duration::from_millis(250);

fn get_nobody(addr: std::net::SocketAddr, key: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .uri(format!("http://{addr}/api/v1/users/nobody"))
        .header("x-api-key", key)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn with_redis_dead_requests_follow_the_failure_policy_not_500() {
    let mut redis = common::ThrowawayRedis::start().await;
    let served = serve_on(&redis, "dynagate-test:dead-redis:").await;
    let (addr, ops_addr, key) = (served.addr, served.ops_addr, &served.key);

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let readyz = || {
        client.request(
            Request::builder()
                .uri(format!("http://{ops_addr}/readyz"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
    };
    assert_eq!(readyz().await.unwrap().status(), StatusCode::OK);

    redis.kill();
    // Issue 14, point 10: readiness is cached for a second, so a flood of
    // probes is not a flood of DescribeTable calls and PINGs.
    assert_eq!(
        readyz().await.unwrap().status(),
        StatusCode::OK,
        "answered from the cache"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            client
                .request(get_nobody(addr, key))
                .await
                .unwrap()
                .status(),
        );
    }
    // The in-memory fallback decides (half the quota each, 2 instances): the
    // requests are served, none fails with a server error.
    assert!(
        statuses.iter().all(|s| *s == StatusCode::NOT_FOUND),
        "{statuses:?}"
    );
    let ready = readyz().await.unwrap();
    assert_eq!(
        ready.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "readiness reports the dead Redis"
    );
}

/// A Redis that accepts and never answers (frozen with SIGSTOP): every
/// request is still decided, by the failure policy, within the limiter's
/// deadline. The service's Redis client has no response timeout of its own
/// (each call has its own deadline), so this is what bounds the wait.
#[tokio::test]
async fn with_redis_stalled_requests_are_decided_within_the_limiter_deadline() {
    let mut redis = common::ThrowawayRedis::start().await;
    let served = serve_on(&redis, "dynagate-test:stalled-redis:").await;
    let (addr, key) = (served.addr, &served.key);
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let served = client.request(get_nobody(addr, key)).await.unwrap();
    assert_eq!(served.status(), StatusCode::NOT_FOUND, "Redis answers");

    redis.pause();
    // Bounded: the deadline, plus the lookup's DynamoDB read and a loaded
    // machine's scheduling; a client without any timeout would wait forever.
    let bound = LIMITER_DEADLINE + Duration::from_secs(3);
    for _ in 0..3 {
        let answer = tokio::time::timeout(bound, client.request(get_nobody(addr, key)))
            .await
            .expect("a stalled Redis holds a request no longer than the limiter's deadline")
            .unwrap();
        assert_eq!(
            answer.status(),
            StatusCode::NOT_FOUND,
            "the fallback decided"
        );
    }
    redis.resume();
}
