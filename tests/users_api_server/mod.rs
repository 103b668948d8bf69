//! A users API served on a real socket on port 0, on its own tables and
//! limiter prefix, with a client that speaks to it: what every
//! `tests/users_api_*.rs` starts from.
#![allow(dead_code)] // each test binary uses a part of it

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dynagate::http::TrustedProxies;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::common;

/// A running users API on its own tables and limiter prefix.
pub struct Api {
    addr: SocketAddr,
    /// Where `/metrics` and `/readyz` are served.
    ops_addr: SocketAddr,
    /// An API key issued for the test.
    pub key: String,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    stop: Option<oneshot::Sender<()>>,
    /// The users table (the tests read its name); dropped with the last
    /// instance on it.
    pub users: Arc<common::TestTable>,
    keys: users_api::keys::KeyStore,
    _keys: Arc<common::TestTable>,
    _redis_keys: Arc<common::KeySpace>,
    config: users_api::Config,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
}

impl Api {
    pub async fn start() -> Api {
        Self::start_with(None, (100, 100), TrustedProxies::none()).await
    }

    /// `endpoint`: serve DynamoDB calls through this URL instead (a fault
    /// proxy); `quota`: the test key's tokens per second and burst;
    /// `trusted`: the proxies whose forwarding headers count.
    pub async fn start_with(
        endpoint: Option<String>,
        quota: (u64, u64),
        trusted: TrustedProxies,
    ) -> Api {
        Self::start_configured(endpoint, quota, |config| config.trusted_proxies = trusted).await
    }

    /// [`start_with`](Api::start_with), `configure` changing the service's
    /// configuration last.
    pub async fn start_configured(
        endpoint: Option<String>,
        quota: (u64, u64),
        configure: impl FnOnce(&mut users_api::Config),
    ) -> Api {
        let users = users_table().await;
        let keys = common::TestTable::create_with_key("api-keys", "key_hash").await;
        let (_, redis_keys) = common::redis().await;
        let mut config = users_api::Config::new(users.name(), keys.name(), &common::redis_url());
        config.limiter_prefix = redis_keys.prefix().to_owned();
        config.capacity_prefix = redis_keys.key("capacity");
        config.dynamodb_deadline = Duration::from_millis(1500);
        config.limiter_deadline = Duration::from_millis(250);
        // The tests write more than a key's default write units allow; the
        // ones about that quota set it.
        config.quotas.key_write_units_per_second = 10_000;
        config.quotas.key_write_units_burst = 10_000;
        configure(&mut config);
        let mut aws = common::sdk_config().await;
        if let Some(endpoint) = endpoint {
            aws = aws.to_builder().endpoint_url(endpoint).build();
        }
        // Keys are issued directly against DynamoDB Local, not through a proxy.
        let (direct, _) = users_api::build(&config, &common::sdk_config().await)
            .await
            .unwrap();
        let key = direct
            .keys
            .issue("tests", quota.0, quota.1, 100_000)
            .await
            .unwrap();
        let key_store = direct.keys.clone();
        let (addr, ops_addr, stop) = serve(&config, &aws).await;
        Api {
            addr,
            ops_addr,
            key,
            client: Client::builder(TokioExecutor::new()).build_http(),
            stop: Some(stop),
            users: Arc::new(users),
            keys: key_store,
            _keys: Arc::new(keys),
            _redis_keys: Arc::new(redis_keys),
            config,
        }
    }

    /// Another instance of the service on the same tables and Redis prefix
    /// (its own key cache and abuse watch), served on its own port, with
    /// the same test key.
    pub async fn second_instance(&self) -> Api {
        let (addr, ops_addr, stop) = serve(&self.config, &common::sdk_config().await).await;
        Api {
            addr,
            ops_addr,
            key: self.key.clone(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            stop: Some(stop),
            users: self.users.clone(),
            keys: self.keys.clone(),
            _keys: self._keys.clone(),
            _redis_keys: self._redis_keys.clone(),
            config: self.config.clone(),
        }
    }

    /// The service's configuration (its table names among it).
    pub fn config(&self) -> &users_api::Config {
        &self.config
    }

    /// A key store on the test's keys table (not the served instance's:
    /// its cache is its own), for issuing and changing keys.
    pub fn key_store(&self) -> &users_api::keys::KeyStore {
        &self.keys
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        self.send_to(self.addr, method, path, headers, body).await
    }

    /// The API's address, for raw socket tests.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A GET on the operational listener (`/metrics`, `/readyz`).
    pub async fn ops(&self, path: &str) -> Reply {
        self.send_to(self.ops_addr, Method::GET, path, &[], "")
            .await
    }

    async fn send_to(
        &self,
        addr: SocketAddr,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"));
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

    /// Another API key (another caller), with the test key's default quota.
    pub async fn issue_key(&self, owner: &str) -> String {
        self.keys.issue(owner, 100, 100, 100_000).await.unwrap()
    }

    /// An authenticated JSON request.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        extra: &[(&str, &str)],
        body: &str,
    ) -> Reply {
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

/// Builds the service on `config` and serves it and its operational
/// endpoints on ports of their own, until the sender is dropped or fires.
async fn serve(
    config: &users_api::Config,
    aws: &aws_config::SdkConfig,
) -> (SocketAddr, SocketAddr, oneshot::Sender<()>) {
    let (state, limits) = users_api::build(config, aws).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ops_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops_addr = ops_listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let (stop_ops, ops_stopped) = oneshot::channel::<()>();
    tokio::spawn(users_api::run(
        ops_listener,
        users_api::ops_app(state.clone()),
        config.connections.clone(),
        async {
            let _ = ops_stopped.await;
        },
    ));
    tokio::spawn(users_api::run(
        listener,
        users_api::app(state, Some(limits)),
        config.connections.clone(),
        async move {
            let _ = stopped.await;
            let _ = stop_ops.send(());
        },
    ));
    (addr, ops_addr, stop)
}

/// A users table as stack/tables/users.json declares it: `user_id`, and the
/// global index `by_email`.
async fn users_table() -> common::TestTable {
    use aws_sdk_dynamodb::types::{GlobalSecondaryIndex, KeyType, Projection, ProjectionType};
    common::TestTable::create_shaped("api-users", |request| {
        request
            .attribute_definitions(common::string_attribute("user_id"))
            .attribute_definitions(common::string_attribute("email"))
            .key_schema(common::key("user_id", KeyType::Hash))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(users_api::EMAIL_INDEX)
                    .key_schema(common::key("email", KeyType::Hash))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .expect("index"),
            )
    })
    .await
}

pub fn user(id: &str) -> String {
    json!({ "user_id": id, "email": format!("{id}@example.com"), "name": "Ada Lovelace" })
        .to_string()
}

/// An error answer: RFC 9457 problem details with the API's `error` code,
/// its `message` (the same text as `detail`) and a `type` that fits the
/// status (the RateLimit draft's for 429 and 503, `about:blank` otherwise).
pub fn assert_error(reply: &Reply, status: StatusCode, code: &str) {
    let json = &reply.json;
    assert_eq!(reply.status, status, "{json:?}");
    assert_eq!(json["error"], code, "{json:?}");
    assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(json["detail"], json["message"], "{json:?}");
    assert_eq!(json["status"], status.as_u16(), "{json:?}");
    assert!(json["title"].as_str().is_some_and(|t| !t.is_empty()));
    let problem_types = "https://iana.org/assignments/http-problem-types#";
    let expected_type = match status {
        _ if code == "suspended_api_key" => format!("{problem_types}abnormal-usage-detected"),
        StatusCode::TOO_MANY_REQUESTS => format!("{problem_types}quota-exceeded"),
        StatusCode::SERVICE_UNAVAILABLE => format!("{problem_types}temporary-reduced-capacity"),
        _ => "about:blank".to_owned(),
    };
    assert_eq!(json["type"], expected_type.as_str(), "{json:?}");
    if status == StatusCode::TOO_MANY_REQUESTS {
        let policies = json["violated-policies"]
            .as_array()
            .expect("violated-policies");
        assert!(!policies.is_empty(), "{json:?}");
    }
    assert_eq!(reply.headers["content-type"], "application/problem+json");
}
