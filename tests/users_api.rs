//! The users API over a real socket, against DynamoDB Local and Redis: every
//! route, every error status, the rate-limit layer, and DynamoDB throttling
//! through the fault proxy.
#![cfg(feature = "axum")]

mod common;
#[allow(dead_code, unreachable_pub)]
#[path = "../examples/users_api/service/mod.rs"]
mod service;

use std::net::SocketAddr;
use std::time::Duration;

use dynagate::http::TrustedProxies;
use dynagate::limiter::FailurePolicy;
use dynagate_fault_proxy::Rule;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// A running users API on its own tables and limiter prefix.
struct Api {
    addr: SocketAddr,
    key: String,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    stop: Option<oneshot::Sender<()>>,
    _users: common::TestTable,
    _keys: common::TestTable,
    _redis_keys: common::KeySpace,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

impl Api {
    async fn start() -> Api {
        Self::start_with(None, (100, 100), TrustedProxies::none()).await
    }

    /// `endpoint`: serve DynamoDB calls through this URL instead (a fault
    /// proxy); `quota`: the test key's tokens per second and burst;
    /// `trusted`: the proxies whose forwarding headers count.
    async fn start_with(
        endpoint: Option<String>,
        quota: (u64, u64),
        trusted: TrustedProxies,
    ) -> Api {
        Self::start_configured(endpoint, quota, |config| config.trusted_proxies = trusted).await
    }

    /// [`start_with`](Api::start_with), `configure` changing the service's
    /// configuration last.
    async fn start_configured(
        endpoint: Option<String>,
        quota: (u64, u64),
        configure: impl FnOnce(&mut service::Config),
    ) -> Api {
        let users = common::TestTable::create_with_key("api-users", "user_id").await;
        let keys = common::TestTable::create_with_key("api-keys", "key_hash").await;
        let (_, redis_keys) = common::redis().await;
        let mut config = service::Config::new(users.name(), keys.name(), &common::redis_url());
        config.limiter_prefix = redis_keys.prefix().to_owned();
        config.capacity_prefix = redis_keys.key("capacity");
        config.dynamodb_deadline = Duration::from_millis(1500);
        config.limiter_deadline = Duration::from_millis(250);
        configure(&mut config);
        let mut aws = common::sdk_config().await;
        if let Some(endpoint) = endpoint {
            aws = aws.to_builder().endpoint_url(endpoint).build();
        }
        // Keys are issued directly against DynamoDB Local, not through a proxy.
        let (direct, _) = service::build(&config, &common::sdk_config().await)
            .await
            .unwrap();
        let key = direct
            .keys
            .issue("tests", quota.0, quota.1, 100_000)
            .await
            .unwrap();
        let (state, limits) = service::build(&config, &aws).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(service::run(
            listener,
            service::app(state, Some(limits)),
            async {
                let _ = stopped.await;
            },
        ));
        Api {
            addr,
            key,
            client: Client::builder(TokioExecutor::new()).build_http(),
            stop: Some(stop),
            _users: users,
            _keys: keys,
            _redis_keys: redis_keys,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .client
            .request(
                request
                    .body(Full::new(Bytes::from(body.to_owned())))
                    .unwrap(),
            )
            .await
            .expect("the API answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            headers,
            json,
        }
    }

    /// An authenticated JSON request.
    async fn call(&self, method: Method, path: &str, extra: &[(&str, &str)], body: &str) -> Reply {
        let mut headers = vec![
            ("x-api-key", self.key.as_str()),
            ("content-type", "application/json"),
        ];
        headers.extend_from_slice(extra);
        self.send(method, path, &headers, body).await
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn user(id: &str) -> String {
    json!({ "user_id": id, "email": format!("{id}@example.com"), "name": "Ada Lovelace" })
        .to_string()
}

fn assert_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{:?}", reply.json);
    assert_eq!(reply.json["error"], code, "{:?}", reply.json);
    assert!(
        reply.json["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(reply.headers["content-type"], "application/json");
}

#[tokio::test]
async fn create_read_update_delete() {
    let api = Api::start().await;
    let created = api
        .call(Method::POST, "/api/v1/users", &[], &user("ada"))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.json);
    assert_eq!(created.headers["location"], "/api/v1/users/ada");
    assert_eq!(created.headers["etag"], "\"1\"");
    assert_eq!(created.json["version"], 1);

    let read = api.call(Method::GET, "/api/v1/users/ada", &[], "").await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json["email"], "ada@example.com");
    assert_eq!(read.headers["etag"], "\"1\"");
    assert!(
        read.headers.contains_key("ratelimit") && read.headers.contains_key("ratelimit-policy")
    );

    let change = json!({ "email": "countess@example.com", "name": "Ada King" }).to_string();
    let updated = api
        .call(
            Method::PUT,
            "/api/v1/users/ada",
            &[("if-match", "\"1\"")],
            &change,
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.json);
    assert_eq!(updated.headers["etag"], "\"2\"");
    let stale = api
        .call(
            Method::PUT,
            "/api/v1/users/ada",
            &[("if-match", "\"1\"")],
            &change,
        )
        .await;
    assert_error(&stale, StatusCode::PRECONDITION_FAILED, "version_mismatch");
    let unconditional = api
        .call(Method::PUT, "/api/v1/users/ada", &[], &change)
        .await;
    assert_error(
        &unconditional,
        StatusCode::PRECONDITION_REQUIRED,
        "precondition_required",
    );

    let deleted = api
        .call(
            Method::DELETE,
            "/api/v1/users/ada",
            &[("if-match", "\"2\"")],
            "",
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = api.call(Method::GET, "/api/v1/users/ada", &[], "").await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");
    let again = api.call(Method::DELETE, "/api/v1/users/ada", &[], "").await;
    assert_error(&again, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn conflicts_and_idempotency_keys() {
    let api = Api::start().await;
    let key = [("idempotency-key", "req-123")];
    let first = api
        .call(Method::POST, "/api/v1/users", &key, &user("bob"))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let replay = api
        .call(Method::POST, "/api/v1/users", &key, &user("bob"))
        .await;
    assert_eq!(
        replay.status,
        StatusCode::CREATED,
        "the same key and body replay the first result"
    );
    assert_eq!(replay.json, first.json);
    let other_body =
        json!({ "user_id": "bob", "email": "other@example.com", "name": "Bob" }).to_string();
    let reused = api
        .call(Method::POST, "/api/v1/users", &key, &other_body)
        .await;
    assert_error(
        &reused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    let conflict = api
        .call(Method::POST, "/api/v1/users", &[], &user("bob"))
        .await;
    assert_error(&conflict, StatusCode::CONFLICT, "conflict");
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_never_a_500() {
    let api = Api::start().await;
    let post = |body: &'static str| api.call(Method::POST, "/api/v1/users", &[], body);
    let malformed = post("{\"user_id\": \"x\",").await;
    assert_error(&malformed, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        malformed.json["message"]
            .as_str()
            .unwrap()
            .contains("line 1"),
        "{:?}",
        malformed.json
    );
    let unknown = post(r#"{"user_id":"x","email":"x@example.com","name":"X","admin":true}"#).await;
    assert_error(&unknown, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(unknown.json["message"].as_str().unwrap().contains("admin"));
    let missing = post(r#"{"user_id":"x","name":"X"}"#).await;
    assert!(missing.json["message"].as_str().unwrap().contains("email"));
    for (body, field) in [
        (
            r#"{"user_id":"a b","email":"x@example.com","name":"X"}"#,
            "user_id",
        ),
        (
            r#"{"user_id":"x","email":"not-an-address","name":"X"}"#,
            "email",
        ),
        (
            r#"{"user_id":"x","email":"x@example.com","name":"   "}"#,
            "name",
        ),
    ] {
        let reply = post(body).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_input");
        assert!(
            reply.json["message"].as_str().unwrap().contains(field),
            "{:?}",
            reply.json
        );
    }
    let text = api
        .send(
            Method::POST,
            "/api/v1/users",
            &[("x-api-key", &api.key), ("content-type", "text/plain")],
            &user("t"),
        )
        .await;
    assert_error(
        &text,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let huge = format!(
        r#"{{"user_id":"h","email":"h@example.com","name":"{}"}}"#,
        "x".repeat(64 * 1024)
    );
    let too_large = api.call(Method::POST, "/api/v1/users", &[], &huge).await;
    assert_error(&too_large, StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    let bad_id = api
        .call(Method::GET, "/api/v1/users/bad%20id", &[], "")
        .await;
    assert_error(&bad_id, StatusCode::BAD_REQUEST, "invalid_input");
    let bad_etag = api
        .call(
            Method::PUT,
            "/api/v1/users/x",
            &[("if-match", "soon")],
            &user("x"),
        )
        .await;
    assert_error(&bad_etag, StatusCode::BAD_REQUEST, "invalid_input");
    let no_route = api.call(Method::GET, "/api/v2/nothing", &[], "").await;
    assert_error(&no_route, StatusCode::NOT_FOUND, "not_found");
    let wrong_method = api.call(Method::PATCH, "/api/v1/users/x", &[], "").await;
    assert_error(
        &wrong_method,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

#[tokio::test]
async fn keys_are_required_and_guessing_them_is_limited_per_address() {
    let api = Api::start().await;
    let missing = api.send(Method::GET, "/api/v1/users/x", &[], "").await;
    assert_error(&missing, StatusCode::UNAUTHORIZED, "missing_api_key");
    let query_string = api
        .send(
            Method::GET,
            &format!("/api/v1/users/x?api_key={}", api.key),
            &[],
            "",
        )
        .await;
    assert_eq!(
        query_string.status,
        StatusCode::UNAUTHORIZED,
        "keys are read from the header only"
    );

    // Ten failed authentications per address (two of them above), then 429.
    let mut statuses = Vec::new();
    for i in 0..12 {
        let guess = format!("dg_{:064x}", i);
        statuses.push(
            api.send(Method::GET, "/api/v1/users/x", &[("x-api-key", &guess)], "")
                .await,
        );
    }
    let unauthorized = statuses
        .iter()
        .filter(|r| r.status == StatusCode::UNAUTHORIZED)
        .count();
    let limited: Vec<&Reply> = statuses
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(unauthorized, 8, "eight more guesses are answered 401");
    assert_eq!(limited.len(), 4);
    assert!(limited[0].headers.contains_key("retry-after"));
    // A forged X-Forwarded-For from an untrusted peer does not buy a new bucket.
    let forged = api
        .send(
            Method::GET,
            "/api/v1/users/x",
            &[
                ("x-api-key", "dg_nope"),
                ("x-forwarded-for", "203.0.113.77"),
            ],
            "",
        )
        .await;
    assert_error(&forged, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // The valid key still works from this address: failed guesses limit guessing only.
    let ok = api.call(Method::GET, "/api/v1/users/x", &[], "").await;
    assert_error(&ok, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_key_over_its_quota_gets_429_with_retry_after() {
    let api = Api::start_with(None, (1, 5), TrustedProxies::none()).await;
    // The test key holds a burst of 5 tokens and regains one a second; a GET costs 1.
    let mut replies = Vec::new();
    for _ in 0..8 {
        replies.push(api.call(Method::GET, "/api/v1/users/nobody", &[], "").await);
    }
    let allowed = replies
        .iter()
        .filter(|r| r.status == StatusCode::NOT_FOUND)
        .count();
    assert!(
        (5..=6).contains(&allowed),
        "burst of 5 (+1 refilled at most): {allowed}"
    );
    let denied = replies
        .iter()
        .find(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .expect("a 429");
    assert_error(denied, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry_after: u64 = denied.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert!(
        denied.headers["ratelimit"]
            .to_str()
            .unwrap()
            .contains("r=0")
    );
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi() {
    let api = Api::start().await;
    let health = api.send(Method::GET, "/healthz", &[], "").await;
    assert_eq!(
        (health.status, &health.json["status"]),
        (StatusCode::OK, &json!("ok"))
    );
    let ready = api.send(Method::GET, "/readyz", &[], "").await;
    assert_eq!(ready.status, StatusCode::OK, "{:?}", ready.json);
    assert_eq!(ready.json, json!({ "dynamodb": "ok", "redis": "ok" }));

    api.call(Method::POST, "/api/v1/users", &[], &user("m"))
        .await;
    let metrics = api.send(Method::GET, "/metrics", &[], "").await;
    let text = metrics.json.as_str().expect("Prometheus text");
    for name in [
        "http_requests_total",
        "http_request_duration_seconds",
        "dynagate_limiter_decisions_total",
        "dynagate_dynamodb_attempts_total",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    let openapi = api.send(Method::GET, "/openapi.json", &[], "").await;
    let paths = openapi.json["paths"].as_object().expect("paths");
    assert!(paths.contains_key("/api/v1/users") && paths.contains_key("/api/v1/users/{user_id}"));
    let item = &openapi.json["paths"]["/api/v1/users/{user_id}"];
    for method in ["get", "put", "delete"] {
        assert!(item.get(method).is_some(), "{method} documented");
    }
}

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
        config.table_capacity = service::TableCapacitySetting::Units {
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
    let puts = proxy.stats().operation(api._users.name(), "PutItem");
    assert_eq!(
        puts.requests, 1,
        "only the admitted create reached DynamoDB: {puts:?}"
    );
    assert_eq!(refused, 3);
    proxy.shutdown().await;
}

#[tokio::test]
async fn with_redis_dead_requests_follow_the_failure_policy_not_500() {
    let mut redis = common::ThrowawayRedis::start().await;
    let users = common::TestTable::create_with_key("api-users", "user_id").await;
    let keys = common::TestTable::create_with_key("api-keys", "key_hash").await;
    let mut config = service::Config::new(users.name(), keys.name(), &redis.url);
    config.limiter_prefix = "dynagate-test:dead-redis:".to_owned();
    config.failure_policy = FailurePolicy::fallback(2).unwrap();
    config.dynamodb_deadline = Duration::from_millis(1500);
    config.limiter_deadline = Duration::from_millis(250);
    let (state, limits) = service::build(&config, &common::sdk_config().await)
        .await
        .unwrap();
    let key = state.keys.issue("tests", 100, 100, 100_000).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(service::run(
        listener,
        service::app(state, Some(limits)),
        std::future::pending(),
    ));

    redis.kill();

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let request = Request::builder()
            .uri(format!("http://{addr}/api/v1/users/nobody"))
            .header("x-api-key", &key)
            .body(Full::new(Bytes::new()))
            .unwrap();
        statuses.push(client.request(request).await.unwrap().status());
    }
    // The in-memory fallback decides (half the quota each, 2 instances): the
    // requests are served, none fails with a server error.
    assert!(
        statuses.iter().all(|s| *s == StatusCode::NOT_FOUND),
        "{statuses:?}"
    );
    let ready = client
        .request(
            Request::builder()
                .uri(format!("http://{addr}/readyz"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "readiness reports the dead Redis"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_a_key_is_limited_across_client_addresses() {
    // The test client is the "proxy" on 127.0.0.1 and names the clients in
    // X-Forwarded-For.
    let trusted = TrustedProxies::parse("127.0.0.1").unwrap();
    let api = Api::start_with(None, (1, 6), trusted).await;
    let mut statuses = Vec::new();
    for i in 0..9 {
        let client = format!("203.0.113.{}", i % 3 + 1);
        let reply = api
            .call(
                Method::GET,
                "/api/v1/users/nobody",
                &[("x-forwarded-for", &client)],
                "",
            )
            .await;
        statuses.push(reply.status);
    }
    let served = statuses
        .iter()
        .filter(|s| **s == StatusCode::NOT_FOUND)
        .count();
    assert!(
        (6..=7).contains(&served),
        "one key, one bucket, whatever the address: {statuses:?}"
    );
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS));

    // Failed authentications are counted per client address behind the proxy:
    // one address cut off does not cut off another.
    for _ in 0..11 {
        api.send(
            Method::GET,
            "/api/v1/users/x",
            &[("x-api-key", "dg_bad"), ("x-forwarded-for", "198.51.100.1")],
            "",
        )
        .await;
    }
    let cut_off = api
        .send(
            Method::GET,
            "/api/v1/users/x",
            &[("x-api-key", "dg_bad"), ("x-forwarded-for", "198.51.100.1")],
            "",
        )
        .await;
    assert_error(&cut_off, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let other = api
        .send(
            Method::GET,
            "/api/v1/users/x",
            &[("x-api-key", "dg_bad"), ("x-forwarded-for", "198.51.100.2")],
            "",
        )
        .await;
    assert_error(&other, StatusCode::UNAUTHORIZED, "invalid_api_key");
}
