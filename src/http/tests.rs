//! The layer's logic, hermetic: the in-memory limiter, a stub key store and
//! `oneshot` on a paused clock. The same flows over real sockets and a real
//! Redis are in the users API's tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use http::{Request, Response, StatusCode};
use tower::{Layer, ServiceExt};

use crate::http::{
    AuthFuture, Authenticate, Caller, ForwardedHeader, RateLimitLayer, RateLimitLayerBuilder,
    Refusal, TrustedProxies,
};
use crate::limiter::{Limits, MemoryLimiter, Quota};

/// Client addresses: the per-address ceiling, IPv6 prefixes, forwarded headers.
mod addresses;

/// Knows one key, `good`; counts every lookup, as each would cost a read.
#[derive(Debug, Default)]
struct Keys {
    lookups: AtomicU32,
    unavailable: bool,
    own_limits: Option<Arc<Limits>>,
}

impl Authenticate for Keys {
    /// A warm cache knows `good`; a store that is down has a cold one.
    fn cached(&self, api_key: &str) -> Option<Caller> {
        (api_key == "good" && !self.unavailable).then(|| Caller {
            id: "k1".into(),
            limits: self.own_limits.clone(),
        })
    }

    fn authenticate<'a>(&'a self, api_key: &'a str) -> AuthFuture<'a> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if self.unavailable {
                return Err(crate::http::AuthUnavailable);
            }
            match api_key {
                "good" => Ok(Ok(Caller {
                    id: "k1".into(),
                    limits: self.own_limits.clone(),
                })),
                "suspended" => Ok(Err(Refusal::Suspended {
                    reason: "used from too many addresses".into(),
                })),
                _ => Ok(Err(Refusal::Unknown)),
            }
        })
    }
}

fn limits(namespace: &str, burst: u64) -> Limits {
    Limits::builder(namespace)
        .limit("second", Quota::per_second(1).burst(burst).unwrap())
        .build()
        .unwrap()
}

fn builder(keys: &Arc<Keys>) -> RateLimitLayerBuilder {
    RateLimitLayer::builder(Arc::new(MemoryLimiter::new()))
        .key_limits(limits("key", 5))
        .failed_auth(limits("auth", 2))
        .authenticator(Arc::clone(keys) as Arc<dyn Authenticate>)
}

fn app(layer: RateLimitLayer) -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/healthz", get(|| async { "ok" }))
        .layer(layer)
}

async fn send(app: &Router, peer: &str, headers: &[(&str, &str)]) -> Response<Body> {
    let mut request = Request::get("/");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut request = request.body(Body::empty()).unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    app.clone().oneshot(request).await.unwrap()
}

fn header<'a>(response: &'a Response<Body>, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

const QUOTA_EXCEEDED: &str = "https://iana.org/assignments/http-problem-types#quota-exceeded";

/// The body of an error answer, checked to be a problem (RFC 9457) whose
/// `status` is the answer's and whose `message` is its `detail`.
async fn problem(response: Response<Body>) -> serde_json::Value {
    assert_eq!(
        header(&response, "content-type"),
        Some("application/problem+json")
    );
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert_eq!(body["detail"], body["message"], "{body}");
    body
}

#[tokio::test(start_paused = true)]
async fn a_valid_key_passes_with_its_own_limits_named() {
    let keys = Arc::new(Keys::default());
    let app = app(builder(&keys).build().unwrap());
    let response = send(&app, "203.0.113.9:1", &[("x-api-key", "good")]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, "ratelimit"),
        Some("\"key.second\";r=4;t=1")
    );
    assert_eq!(
        header(&response, "ratelimit-policy"),
        Some("\"key.second\";q=5;w=5")
    );
}

/// Issue 14, point 2: a locked-out address sent random keys, and each one
/// cost a DynamoDB read.
#[tokio::test(start_paused = true)]
async fn a_locked_out_address_costs_no_lookup() {
    let keys = Arc::new(Keys::default());
    let app = app(builder(&keys).build().unwrap());
    let guess = |n: u32| format!("guess-{n}");
    for n in 0..2 {
        let response = send(&app, "203.0.113.9:1", &[("x-api-key", &guess(n))]).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body = problem(response).await;
        assert_eq!(body["type"], "about:blank");
        assert_eq!(body["title"], "Unauthorized");
        assert_eq!(body["error"], "invalid_api_key");
    }
    let response = send(&app, "203.0.113.9:1", &[("x-api-key", &guess(2))]).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let body = problem(response).await;
    assert_eq!(body["type"], QUOTA_EXCEEDED);
    assert_eq!(
        body["violated-policies"],
        serde_json::json!(["auth.second"])
    );
    assert_eq!(keys.lookups.load(Ordering::SeqCst), 3);
    for n in 3..60 {
        let response = send(&app, "203.0.113.9:1", &[("x-api-key", &guess(n))]).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&response, "retry-after"), Some("1"));
        let body = problem(response).await;
        assert_eq!(body["type"], QUOTA_EXCEEDED);
        assert_eq!(body["error"], "rate_limited");
        assert_eq!(
            body["violated-policies"],
            serde_json::json!(["auth.second"])
        );
    }
    assert_eq!(
        keys.lookups.load(Ordering::SeqCst),
        3,
        "no lookup once locked out"
    );
    // Another address is not affected; the lockout ends with the bucket's wait.
    let other = send(&app, "198.51.100.7:1", &[("x-api-key", "good")]).await;
    assert_eq!(other.status(), StatusCode::OK);
    tokio::time::advance(std::time::Duration::from_secs(1)).await;
    let response = send(&app, "203.0.113.9:1", &[("x-api-key", "guess-99")]).await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "looked up again"
    );
}

/// Issue 14, point 7: a key with a burst below a request's cost got 429
/// without `Retry-After`, forever.
#[tokio::test(start_paused = true)]
async fn a_request_costing_more_than_the_burst_is_refused_as_such() {
    let keys = Arc::new(Keys {
        own_limits: Some(Arc::new(limits("key", 1))),
        ..Keys::default()
    });
    let app = app(builder(&keys).cost(2, |_| 2).build().unwrap());
    let response = send(&app, "203.0.113.9:1", &[("x-api-key", "good")]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&response, "retry-after"), None);
    let body = problem(response).await;
    assert_eq!(body["error"], "cost_exceeds_quota");
    assert_eq!(body["type"], QUOTA_EXCEEDED);
    assert_eq!(body["violated-policies"], serde_json::json!(["key.second"]));

    let small = builder(&keys).key_limits(limits("key", 1)).cost(2, |_| 2);
    let error = small.build().unwrap_err().to_string();
    assert!(
        error.contains("key_limits") && error.contains("second"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unavailable_key_store_is_a_503_and_exempt_paths_pass() {
    let keys = Arc::new(Keys {
        unavailable: true,
        ..Keys::default()
    });
    let layer = builder(&keys)
        .exempt(|parts| parts.uri.path() == "/healthz")
        .build()
        .unwrap();
    let app = app(layer.clone());
    let response = send(&app, "203.0.113.9:1", &[("x-api-key", "good")]).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&response, "retry-after"), Some("1"));
    let body = problem(response).await;
    assert_eq!(
        body["type"],
        "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity"
    );
    assert_eq!(body["error"], "unavailable");
    let mut request = Request::get("/healthz").body(Body::empty()).unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo("203.0.113.9:1".parse::<SocketAddr>().unwrap()));
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // tower's accessors on the service.
    let mut service = layer.layer(7_u8);
    assert_eq!(*service.get_ref(), 7);
    *service.get_mut() = 8;
    assert_eq!(service.into_inner(), 8);
}

#[test]
fn the_required_limits_are_required() {
    let keys = Arc::new(Keys::default());
    let no_key_limits = RateLimitLayer::builder(Arc::new(MemoryLimiter::new()))
        .failed_auth(limits("auth", 2))
        .authenticator(Arc::clone(&keys) as Arc<dyn Authenticate>);
    assert!(
        no_key_limits
            .build()
            .unwrap_err()
            .to_string()
            .contains("key_limits")
    );
    let no_failed_auth = RateLimitLayer::builder(Arc::new(MemoryLimiter::new()))
        .key_limits(limits("key", 2))
        .authenticator(keys as Arc<dyn Authenticate>);
    assert!(
        no_failed_auth
            .build()
            .unwrap_err()
            .to_string()
            .contains("failed_auth")
    );
}

/// Issue 14, point 9: the handler could not see who the layer authenticated,
/// so an `Idempotency-Key` could not be bound to its caller.
#[tokio::test(start_paused = true)]
async fn the_handler_sees_the_authenticated_caller_and_only_that() {
    let keys = Arc::new(Keys::default());
    let layer = builder(&keys).anonymous(limits("anon", 5)).build().unwrap();
    let caller_id = |request: Request<Body>| async move {
        request
            .extensions()
            .get::<Caller>()
            .map_or_else(|| "none".to_owned(), |c| c.id.clone())
    };
    // An outer layer's `Caller` must not pass for one the layer checked.
    let planted = Caller {
        id: "planted".into(),
        limits: None,
    };
    let app = Router::new()
        .route("/", get(caller_id))
        .layer(layer)
        .layer(axum::Extension(planted));
    let body = |response: Response<Body>| async move {
        let bytes = axum::body::to_bytes(response.into_body(), 64)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    };
    let keyed = send(&app, "203.0.113.9:1", &[("x-api-key", "good")]).await;
    assert_eq!(keyed.status(), StatusCode::OK);
    assert_eq!(body(keyed).await, "k1");
    let anonymous = send(&app, "203.0.113.9:1", &[]).await;
    assert_eq!(anonymous.status(), StatusCode::OK);
    assert_eq!(body(anonymous).await, "none");
}

#[tokio::test(start_paused = true)]
async fn a_suspended_key_is_403_with_the_reason_and_counts_as_a_failure() {
    let keys = Arc::new(Keys::default());
    let app = app(builder(&keys).build().unwrap());
    let response = send(&app, "203.0.113.9:1", &[("x-api-key", "suspended")]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body = problem(response).await;
    assert_eq!(body["error"], "suspended_api_key");
    assert_eq!(
        body["type"],
        "https://iana.org/assignments/http-problem-types#abnormal-usage-detected"
    );
    assert_eq!(body["title"], "Abnormal Usage Detected");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("used from too many addresses")
    );
    // The failed-auth limit (burst 2) counts it: the third try is 429.
    send(&app, "203.0.113.9:1", &[("x-api-key", "suspended")]).await;
    let third = send(&app, "203.0.113.9:1", &[("x-api-key", "suspended")]).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
}
