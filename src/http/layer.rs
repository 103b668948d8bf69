//! The tower `Layer` + `Service` that gates inbound requests.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::ConnectInfo;
use http::header::{HeaderName, RETRY_AFTER};
use http::{HeaderValue, Request, Response, StatusCode, request::Parts};
use tower::{Layer, Service};

use super::client_ip::TrustedProxies;
use super::error_response;
use super::headers::{rate_limit, rate_limit_policy, retry_after};
use crate::error::ConfigError;
use crate::limiter::{Decision, Limits, Outcome, RateLimiter};

/// A caller identified by its API key.
#[derive(Debug, Clone)]
pub struct Caller {
    /// A stable, non-secret identifier of the key (never the key itself): the
    /// rate-limit subject and what logs may show.
    pub id: String,
    /// This key's own limits; `None` uses the layer's default key limits.
    pub limits: Option<Arc<Limits>>,
}

/// The key store could not answer (e.g. DynamoDB unavailable); the layer
/// answers 503, never 500, and never lets the request through unchecked.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the API key store is unavailable")]
pub struct AuthUnavailable;

/// The future an [`Authenticate`] returns.
pub type AuthFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Caller>, AuthUnavailable>> + Send + 'a>>;

/// Checks an API key: `Some(caller)` for a valid key, `None` for an invalid
/// one. Implementations validate the key's format first and compare secrets in
/// constant time; they must never log the key.
pub trait Authenticate: Send + Sync + fmt::Debug {
    /// Looks the key up.
    fn authenticate<'a>(&'a self, api_key: &'a str) -> AuthFuture<'a>;
}

type CostFn = dyn Fn(&Parts) -> u64 + Send + Sync;
type ExemptFn = dyn Fn(&Parts) -> bool + Send + Sync;

/// The configuration of a [`RateLimitLayer`]; see [`RateLimitLayer::builder`].
pub struct RateLimitConfig {
    limiter: Arc<dyn RateLimiter>,
    authenticator: Option<Arc<dyn Authenticate>>,
    key_header: HeaderName,
    key_limits: Arc<Limits>,
    anonymous: Option<Arc<Limits>>,
    failed_auth: Arc<Limits>,
    ip_ceiling: Option<Arc<Limits>>,
    trusted_proxies: TrustedProxies,
    cost: Arc<CostFn>,
    exempt: Arc<ExemptFn>,
}

impl fmt::Debug for RateLimitConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitConfig")
            .field("limiter", &self.limiter)
            .field("authenticator", &self.authenticator)
            .field("key_header", &self.key_header)
            .field("key_limits", &self.key_limits)
            .field("anonymous", &self.anonymous)
            .field("failed_auth", &self.failed_auth)
            .field("ip_ceiling", &self.ip_ceiling)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RateLimitLayer`].
#[derive(Debug)]
pub struct RateLimitLayerBuilder {
    config: RateLimitConfig,
}

impl RateLimitLayerBuilder {
    /// Checks API keys with `authenticator` (read from `X-API-Key` unless
    /// [`key_header`](Self::key_header) says otherwise).
    pub fn authenticator(mut self, authenticator: Arc<dyn Authenticate>) -> Self {
        self.config.authenticator = Some(authenticator);
        self
    }

    /// The header carrying the API key (default `x-api-key`). Keys are never
    /// read from the query string: URLs end up in logs.
    pub fn key_header(mut self, name: HeaderName) -> Self {
        self.config.key_header = name;
        self
    }

    /// Lets requests without a key through, limited per client IP by `limits`.
    /// Without it a key is required (401).
    pub fn anonymous(mut self, limits: Limits) -> Self {
        self.config.anonymous = Some(Arc::new(limits));
        self
    }

    /// A ceiling per client IP across all keys (against key rotation from one
    /// address).
    pub fn ip_ceiling(mut self, limits: Limits) -> Self {
        self.config.ip_ceiling = Some(Arc::new(limits));
        self
    }

    /// The proxies whose `X-Forwarded-For` / `Forwarded` are believed.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.config.trusted_proxies = proxies;
        self
    }

    /// The tokens a request costs (default 1), e.g. more for writes.
    pub fn cost(mut self, cost: impl Fn(&Parts) -> u64 + Send + Sync + 'static) -> Self {
        self.config.cost = Arc::new(cost);
        self
    }

    /// Requests that pass without a check (e.g. health probes).
    pub fn exempt(mut self, exempt: impl Fn(&Parts) -> bool + Send + Sync + 'static) -> Self {
        self.config.exempt = Arc::new(exempt);
        self
    }

    /// The layer. Fails when keys are accepted without an authenticator.
    pub fn build(self) -> Result<RateLimitLayer, ConfigError> {
        if self.config.authenticator.is_none() && self.config.anonymous.is_none() {
            return Err(ConfigError::invalid(
                "authenticator",
                "without one every request is anonymous: set an authenticator or anonymous limits",
            ));
        }
        Ok(RateLimitLayer {
            config: Arc::new(self.config),
        })
    }
}

/// Gates requests with Redis token buckets: per API key, per client IP for
/// anonymous callers, and a strict per-IP limit on failed authentications, so
/// key guessing and key rotation from one address stop quickly.
///
/// Allowed responses carry `RateLimit` and `RateLimit-Policy`; denied requests
/// get 429 with `Retry-After`. What happens when Redis fails is the limiter's
/// failure policy; the layer never turns it into a 500. Serve the router with
/// `into_make_service_with_connect_info::<SocketAddr>()` so the peer address
/// is known.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    config: Arc<RateLimitConfig>,
}

impl RateLimitLayer {
    /// Starts a layer: `limiter` decides, `key_limits` apply to every valid
    /// key without limits of its own, `failed_auth` limits failed
    /// authentications per client IP.
    pub fn builder(
        limiter: Arc<dyn RateLimiter>,
        key_limits: Limits,
        failed_auth: Limits,
    ) -> RateLimitLayerBuilder {
        RateLimitLayerBuilder {
            config: RateLimitConfig {
                limiter,
                authenticator: None,
                key_header: HeaderName::from_static("x-api-key"),
                key_limits: Arc::new(key_limits),
                anonymous: None,
                failed_auth: Arc::new(failed_auth),
                ip_ceiling: None,
                trusted_proxies: TrustedProxies::none(),
                cost: Arc::new(|_| 1),
                exempt: Arc::new(|_| false),
            },
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service of a [`RateLimitLayer`].
#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    inner: S,
    config: Arc<RateLimitConfig>,
}

impl<S, B> Service<Request<B>> for RateLimit<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The clone that was polled ready serves this request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        Box::pin(gate(config, inner, request))
    }
}

async fn gate<S, B>(
    config: Arc<RateLimitConfig>,
    mut inner: S,
    request: Request<B>,
) -> Result<Response<Body>, Infallible>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Infallible>,
{
    let (parts, body) = request.into_parts();
    if (config.exempt)(&parts) {
        return inner.call(Request::from_parts(parts, body)).await;
    }
    let ip = client_ip(&config, &parts);
    let ip_subject = format!("ip:{ip}");
    let cost = (config.cost)(&parts);

    let key = parts
        .headers
        .get(&config.key_header)
        .map(|v| v.to_str().unwrap_or(""));
    let (subject, limits) = match (key, &config.authenticator) {
        (Some(key), Some(authenticator)) => match authenticator.authenticate(key).await {
            Ok(Some(caller)) => {
                let limits = caller
                    .limits
                    .unwrap_or_else(|| Arc::clone(&config.key_limits));
                (format!("key:{}", caller.id), limits)
            }
            Ok(None) => return Ok(failed_auth(&config, &ip_subject, "invalid_api_key").await),
            Err(AuthUnavailable) => {
                let mut response = error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the API key cannot be checked right now; retry shortly",
                );
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(1));
                return Ok(response);
            }
        },
        (None, _) | (Some(_), None) => match &config.anonymous {
            Some(limits) => (ip_subject.clone(), Arc::clone(limits)),
            None => return Ok(failed_auth(&config, &ip_subject, "missing_api_key").await),
        },
    };

    if subject != ip_subject
        && let Some(ceiling) = &config.ip_ceiling
    {
        let decision = config.limiter.check(ceiling, &ip_subject, cost).await;
        if !decision.allowed() {
            return Ok(too_many(ceiling, &decision));
        }
    }
    let decision = config.limiter.check(&limits, &subject, cost).await;
    if !decision.allowed() {
        return Ok(too_many(&limits, &decision));
    }
    let mut response = inner.call(Request::from_parts(parts, body)).await?;
    add_headers(&mut response, &limits, &decision);
    Ok(response)
}

fn client_ip(config: &RateLimitConfig, parts: &Parts) -> IpAddr {
    match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(peer)) => config.trusted_proxies.client_ip(peer.ip(), &parts.headers),
        None => {
            // Without the peer every caller shares one bucket: strict, not open.
            tracing::warn!(
                "no ConnectInfo<SocketAddr>: serve with into_make_service_with_connect_info"
            );
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        }
    }
}

/// A missing or invalid key: 401, or 429 once this address failed too often.
async fn failed_auth(config: &RateLimitConfig, ip_subject: &str, code: &str) -> Response<Body> {
    metrics::counter!("dynagate_http_auth_failures_total", "reason" => code.to_owned())
        .increment(1);
    let decision = config
        .limiter
        .check(&config.failed_auth, ip_subject, 1)
        .await;
    if !decision.allowed() {
        return too_many(&config.failed_auth, &decision);
    }
    let message = if code == "missing_api_key" {
        "this API needs an API key in the X-API-Key header"
    } else {
        "the API key is not valid"
    };
    let mut response = error_response(StatusCode::UNAUTHORIZED, code, message);
    add_headers(&mut response, &config.failed_auth, &decision);
    response
}

fn too_many(limits: &Limits, decision: &Decision) -> Response<Body> {
    let (message, wait) = match decision.outcome() {
        Outcome::Never => ("this request costs more than the quota holds", None),
        Outcome::Denied { retry_after } => (
            "too many requests; retry after the Retry-After delay",
            Some(retry_after),
        ),
        Outcome::Allowed => ("too many requests", None),
    };
    let mut response = error_response(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
    if let Some(wait) = wait {
        response
            .headers_mut()
            .insert(RETRY_AFTER, retry_after(wait));
    }
    add_headers(&mut response, limits, decision);
    response
}

fn add_headers(response: &mut Response<Body>, limits: &Limits, decision: &Decision) {
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("ratelimit-policy"),
        rate_limit_policy(limits),
    );
    headers.insert(
        HeaderName::from_static("ratelimit"),
        rate_limit(limits, decision),
    );
}
