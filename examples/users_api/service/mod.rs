//! The users API: `app(state, limits)` builds the router, `run` serves it.
//! `main.rs` wires it from the environment; the tests wire it to their own
//! tables and serve it on a real socket on port 0.

pub mod errors;
pub mod keys;
pub mod model;
pub mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use dynagate::capacity::{CapacityGate, TableCapacity};
use dynagate::error::CapacityError;
use dynagate::http::{RateLimitLayer, TrustedProxies, error_response};
use dynagate::limiter::{FailurePolicy, Limits, Quota, RedisConnection, RedisLimiter};
use dynagate::repository::{KeySchema, KeyType, Repository};
use dynagate::{ResilientClient, RetryPolicy};
use http::header::CONTENT_TYPE;
use http::{Method, StatusCode};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;
use utoipa::OpenApi;

use self::keys::{ApiKeyRecord, KeyStore};
use self::model::User;

/// Request bodies above this are refused with 413.
pub const BODY_LIMIT: usize = 16 * 1024;

/// Settings, from the environment in `main.rs` (see the README's table).
#[derive(Debug, Clone)]
pub struct Config {
    pub users_table: String,
    pub keys_table: String,
    pub redis_url: String,
    /// Redis Cluster nodes; when set, the limiter uses the cluster instead of `redis_url`.
    pub redis_cluster_urls: Vec<String>,
    /// Key prefix of the limiter's buckets in Redis.
    pub limiter_prefix: String,
    /// What the limiter answers when Redis cannot.
    pub failure_policy: FailurePolicy,
    pub trusted_proxies: TrustedProxies,
    /// Deadline of one DynamoDB operation inside a request.
    pub dynamodb_deadline: Duration,
    /// Deadline of one Redis call of the limiter. The library's default is
    /// 5 ms; on a loaded 2-core machine that sends many decisions to the
    /// failure policy, so the example allows more.
    pub limiter_deadline: Duration,
    pub quotas: Quotas,
    /// The capacity the fleet keeps the users table under.
    pub table_capacity: TableCapacitySetting,
    /// Key prefix of the capacity gate's buckets in Redis.
    pub capacity_prefix: String,
}

/// Where the capacity gate of the users table gets the table's capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TableCapacitySetting {
    /// From `DescribeTable`; an on-demand table without a maximum goes ungated.
    Describe,
    /// These read and write units per second (a ceiling for on-demand tables).
    Units { read: f64, write: f64 },
    /// No gate.
    Off,
}

impl TableCapacitySetting {
    /// `describe`, `off`, or `READ,WRITE` units per second.
    pub fn parse(text: &str) -> Result<TableCapacitySetting, String> {
        match text.trim() {
            "" | "describe" => Ok(TableCapacitySetting::Describe),
            "off" => Ok(TableCapacitySetting::Off),
            units => {
                let parsed = units.split_once(',').and_then(|(r, w)| {
                    Some((r.trim().parse::<f64>().ok()?, w.trim().parse::<f64>().ok()?))
                });
                match parsed {
                    Some((read, write)) if read > 0.0 && write > 0.0 => {
                        Ok(TableCapacitySetting::Units { read, write })
                    }
                    _ => Err(format!(
                        "TABLE_CAPACITY must be describe, off, or READ,WRITE units per second above zero, got `{units}`"
                    )),
                }
            }
        }
    }
}

/// The rate limits of the API.
#[derive(Debug, Clone, Copy)]
pub struct Quotas {
    /// Per API key without a quota of its own: tokens per second, burst, per day.
    pub key_per_second: u64,
    pub key_burst: u64,
    pub key_per_day: u64,
    /// Failed authentications per client IP before 429; one more per minute.
    pub failed_auth_burst: u64,
    /// Per client IP across all keys: tokens per second and burst.
    pub ip_per_second: u64,
    pub ip_burst: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            key_per_second: 10,
            key_burst: 20,
            key_per_day: 100_000,
            failed_auth_burst: 10,
            ip_per_second: 50,
            ip_burst: 100,
        }
    }
}

impl Config {
    /// The defaults, on these tables and this Redis.
    pub fn new(users_table: &str, keys_table: &str, redis_url: &str) -> Config {
        Config {
            users_table: users_table.to_owned(),
            keys_table: keys_table.to_owned(),
            redis_url: redis_url.to_owned(),
            redis_cluster_urls: Vec::new(),
            limiter_prefix: "dynagate:rl:".to_owned(),
            failure_policy: FailurePolicy::fallback(1).expect("one instance"),
            trusted_proxies: TrustedProxies::none(),
            dynamodb_deadline: Duration::from_secs(2),
            limiter_deadline: Duration::from_millis(50),
            quotas: Quotas::default(),
            table_capacity: TableCapacitySetting::Describe,
            capacity_prefix: "dynagate:capacity".to_owned(),
        }
    }
}

/// The users table's capacity gate, as `config.table_capacity` says.
async fn capacity_gate(
    config: &Config,
    dynamodb: &ResilientClient,
    redis: RedisConnection,
) -> Result<Option<CapacityGate>, String> {
    let table = &config.users_table;
    let capacity = match config.table_capacity {
        TableCapacitySetting::Off => return Ok(None),
        TableCapacitySetting::Units { read, write } => {
            TableCapacity::provisioned(table.as_str(), read, write)
        }
        TableCapacitySetting::Describe => {
            match TableCapacity::describe(dynamodb.sdk(), table).await {
                Ok(capacity) => capacity,
                Err(CapacityError::OnDemand { .. }) => {
                    tracing::info!(
                        table = %table,
                        "the users table bills on demand without a maximum: no capacity gate \
                         (set TABLE_CAPACITY=READ,WRITE for a ceiling)"
                    );
                    return Ok(None);
                }
                Err(e) => return Err(DisplayErrorContext(&e).to_string()),
            }
        }
    };
    let throughput = capacity.throughput();
    tracing::info!(table = %table, read = throughput.read, write = throughput.write, "capacity gate on");
    CapacityGate::builder(redis)
        .prefix(config.capacity_prefix.clone())
        .table(capacity)
        .build()
        .map(Some)
        .map_err(|e| e.to_string())
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub users: Repository<User>,
    pub keys: KeyStore,
    pub dynamodb: ResilientClient,
    pub users_table: String,
    pub redis: RedisConnection,
    pub metrics: PrometheusHandle,
}

/// The Prometheus recorder, installed once per process.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test harness): then
            // this handle renders nothing, which /metrics tests would catch.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Connects to DynamoDB and Redis and builds the state and the rate-limit layer.
pub async fn build(config: &Config, aws: &SdkConfig) -> Result<(AppState, RateLimitLayer), String> {
    let policy = RetryPolicy::builder()
        .deadline(config.dynamodb_deadline)
        .build()
        .map_err(|e| e.to_string())?;
    let redis: RedisConnection = if config.redis_cluster_urls.is_empty() {
        redis::Client::open(config.redis_url.as_str())
            .map_err(|e| format!("REDIS_URL {}: {e}", config.redis_url))?
            .get_connection_manager()
            .await
            .map_err(|e| format!("Redis at {}: {e}", config.redis_url))?
            .into()
    } else {
        redis::cluster::ClusterClient::new(config.redis_cluster_urls.clone())
            .map_err(|e| format!("REDIS_CLUSTER_URLS: {e}"))?
            .get_async_connection()
            .await
            .map_err(|e| format!("Redis Cluster at {:?}: {e}", config.redis_cluster_urls))?
            .into()
    };
    let mut dynamodb = ResilientClient::new(aws, policy);
    if let Some(gate) = capacity_gate(config, &dynamodb, redis.clone()).await? {
        dynamodb = dynamodb.with_gate(gate);
    }
    let users = Repository::new(
        dynamodb.clone(),
        &config.users_table,
        KeySchema::partition("user_id", KeyType::String),
    );
    let key_records: Repository<ApiKeyRecord> = Repository::new(
        dynamodb.clone(),
        &config.keys_table,
        KeySchema::partition("key_hash", KeyType::String),
    );
    let keys = KeyStore::new(key_records);

    let limiter = RedisLimiter::builder(redis.clone())
        .prefix(config.limiter_prefix.clone())
        .deadline(config.limiter_deadline)
        .on_failure(config.failure_policy)
        .build()
        .map_err(|e| e.to_string())?;

    let q = config.quotas;
    let quota = |r: Result<Quota, _>| r.map_err(|e: dynagate::ConfigError| e.to_string());
    let default_key = Limits::builder("key")
        .limit(
            "second",
            quota(Quota::per_second(q.key_burst, q.key_per_second))?,
        )
        .limit("day", quota(Quota::per_day(q.key_per_day, q.key_per_day))?)
        .build()
        .map_err(|e| e.to_string())?;
    // Strict: a few failed authentications per address, then one more a minute.
    let failed_auth = Limits::builder("auth-fail")
        .limit("minute", quota(Quota::per_minute(q.failed_auth_burst, 1))?)
        .build()
        .map_err(|e| e.to_string())?;
    // One address cannot exceed this across all the keys it rotates through.
    let ip_ceiling = Limits::builder("ip")
        .limit(
            "second",
            quota(Quota::per_second(q.ip_burst, q.ip_per_second))?,
        )
        .build()
        .map_err(|e| e.to_string())?;
    let layer = RateLimitLayer::builder(Arc::new(limiter), default_key, failed_auth)
        .authenticator(Arc::new(keys.clone()))
        .ip_ceiling(ip_ceiling)
        .trusted_proxies(config.trusted_proxies.clone())
        .cost(|parts| if parts.method == Method::GET { 1 } else { 2 })
        .exempt(|parts| !parts.uri.path().starts_with("/api/"))
        .build()
        .map_err(|e| e.to_string())?;

    let state = AppState {
        users,
        keys,
        dynamodb,
        users_table: config.users_table.clone(),
        redis,
        metrics: metrics_handle(),
    };
    Ok((state, layer))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "dynagate users API",
        description = "The sample service of dynagate: users in DynamoDB, callers gated by Redis token buckets."
    ),
    paths(
        routes::create_user,
        routes::get_user,
        routes::update_user,
        routes::delete_user
    ),
    components(schemas(model::NewUser, model::UserChange, model::User, model::ErrorBody))
)]
pub struct ApiDoc;

/// The router: the users API behind the rate-limit layer, and the
/// operational endpoints.
///
/// `limits: None` serves without the rate-limit layer (and so without API
/// keys): only for measuring what the layer costs.
pub fn app(state: AppState, limits: Option<RateLimitLayer>) -> Router {
    let api = Router::new()
        .route("/api/v1/users", axum::routing::post(routes::create_user))
        .route(
            "/api/v1/users/{user_id}",
            get(routes::get_user)
                .put(routes::update_user)
                .delete(routes::delete_user),
        )
        .layer(DefaultBodyLimit::max(BODY_LIMIT));
    let router = Router::new()
        .merge(api)
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(ready))
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move { s.metrics.render() }),
        )
        .route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
        .fallback(|| async { error_response(StatusCode::NOT_FOUND, "not_found", "no such route") });
    let router = match limits {
        Some(limits) => router.layer(limits),
        None => router,
    };
    router
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(observe))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn run(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// DynamoDB and Redis reachable within a second each.
async fn ready(State(state): State<AppState>) -> Response {
    let dynamodb = tokio::time::timeout(
        Duration::from_secs(1),
        state
            .dynamodb
            .sdk()
            .describe_table()
            .table_name(&state.users_table)
            .send(),
    )
    .await
    .map(|r| r.is_ok())
    .unwrap_or(false);
    let mut redis = state.redis.clone();
    let redis_ok = tokio::time::timeout(
        Duration::from_secs(1),
        redis::cmd("PING").query_async::<String>(&mut redis),
    )
    .await
    .map(|r| r.is_ok())
    .unwrap_or(false);
    let label = |ok| if ok { "ok" } else { "unreachable" };
    let status = if dynamodb && redis_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({ "dynamodb": label(dynamodb), "redis": label(redis_ok) })),
    )
        .into_response()
}

/// Error responses that axum or tower produced as plain text (a body over
/// the limit, a wrong method) become the API's JSON error shape.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_FOUND => "not_found",
        s if s.is_server_error() => "internal_error",
        _ => "invalid_request",
    };
    let message = status
        .canonical_reason()
        .unwrap_or("request failed")
        .to_lowercase();
    let (mut parts, _) = response.into_parts();
    let rebuilt = error_response(status, code, &message);
    parts.headers.remove(CONTENT_TYPE);
    parts.headers.extend(rebuilt.headers().clone());
    Response::from_parts(parts, rebuilt.into_body())
}

/// A request id (the caller's `X-Request-Id` if it is sane, else a new one)
/// on the response and on every log line of the request; one structured log
/// line per request; request counts and latencies by method, route and status.
async fn observe(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(|| format!("{:016x}", rand::random::<u64>()), str::to_owned);
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let span = tracing::info_span!("request", id = %id, method = %method, route = %route);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "served"
        );
    });
    if let Ok(value) = http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    metrics::counter!(
        "http_requests_total",
        "method" => method.clone(),
        "route" => route.clone(),
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(elapsed.as_secs_f64());
    response
}
