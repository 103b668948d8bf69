//! The tower `Service`: the request flow of the layer, from the client
//! address to the handler.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::ConnectInfo;
use http::request::Parts;
use http::{Request, Response};
use tower::Service;

use crate::http::auth::{AuthUnavailable, Caller, Observed, Refusal};
use crate::http::charge::{self, Reserved};
use crate::http::client_ip::subject;
use crate::http::layer::RateLimitConfig;
use crate::http::response::{
    add_headers, auth_unavailable, locked_out, suspended, too_many, unauthorized,
};
use crate::usage;

/// The service of a [`RateLimitLayer`](crate::http::RateLimitLayer).
#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    inner: S,
    config: Arc<RateLimitConfig>,
}

impl<S> RateLimit<S> {
    pub(crate) fn new(inner: S, config: Arc<RateLimitConfig>) -> RateLimit<S> {
        RateLimit { inner, config }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
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

/// One request through the layer. Cheap before expensive: the local lockout
/// look and the per-IP ceiling (one Redis call) come before the key lookup
/// (a cache or a DynamoDB read), and nothing reaches the handler before the
/// caller's own limits allowed it.
///
/// A request that passes with a valid key carries its [`Caller`] as a request
/// extension, so handlers can bind what they store (an `Idempotency-Key`, a
/// cursor) to the caller the layer authenticated; an anonymous request
/// carries none.
async fn gate<S, B>(
    config: Arc<RateLimitConfig>,
    mut inner: S,
    request: Request<B>,
) -> Result<Response<Body>, Infallible>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Infallible>,
{
    let (mut parts, body) = request.into_parts();
    if (config.exempt)(&parts) {
        return inner.call(Request::from_parts(parts, body)).await;
    }
    let ip = client_ip(&config, &parts);
    let ip_subject = format!("ip:{}", subject(ip, config.ipv6_prefix));
    let cost = (config.cost)(&parts).min(config.max_cost);

    let key = parts
        .headers
        .get(&config.key_header)
        .map(|v| v.to_str().unwrap_or(""));
    let (subject, limits) = match (key, &config.authenticator) {
        (Some(key), Some(authenticator)) => {
            // A locked-out address: only a key already known to be valid
            // passes; anything else is refused before it costs a lookup.
            let known = match config.lockouts.remaining(&ip_subject) {
                Some(wait) => match authenticator.cached(key) {
                    Some(caller) => Some(caller),
                    None => return Ok(locked_out(&config.failed_auth, wait)),
                },
                None => None,
            };
            if let Some(ceiling) = &config.ip_ceiling {
                let decision = config.limiter.check(ceiling, &ip_subject, cost).await;
                if !decision.allowed() {
                    return Ok(too_many(ceiling, &decision));
                }
            }
            let found = match known {
                Some(caller) => Ok(Ok(caller)),
                None => authenticator.authenticate(key).await,
            };
            match found {
                Ok(Ok(caller)) => {
                    authenticator.observe(&caller, Observed::Request { client: ip });
                    let limits = caller
                        .limits
                        .clone()
                        .unwrap_or_else(|| Arc::clone(&config.key_limits));
                    let subject = format!("key:{}", caller.id);
                    parts.extensions.insert(caller);
                    (subject, limits)
                }
                Ok(Err(refusal)) => {
                    return Ok(refused(&config, &ip_subject, Some(&refusal)).await);
                }
                Err(AuthUnavailable) => return Ok(auth_unavailable()),
            }
        }
        (None, _) | (Some(_), None) => match &config.anonymous {
            Some(limits) => {
                // Only the layer names the caller: whatever an outer layer
                // put there, an anonymous request reaches the handler without.
                parts.extensions.remove::<Caller>();
                (ip_subject.clone(), Arc::clone(limits))
            }
            None => return Ok(refused(&config, &ip_subject, None).await),
        },
    };

    let decision = config.limiter.check(&limits, &subject, cost).await;
    if !decision.allowed() {
        return Ok(too_many(&limits, &decision));
    }
    if config.charges.is_empty() {
        let mut response = inner.call(Request::from_parts(parts, body)).await?;
        add_headers(&mut response, &limits, &decision);
        return Ok(response);
    }

    // Capacity charges: reserve the most the request may consume, run it
    // metered, settle the difference.
    let mut taken = Vec::with_capacity(config.charges.len());
    let mut reserved = Reserved::default();
    for charge in &config.charges {
        let units = charge.reservation(&parts);
        let check = config.limiter.check(&charge.limits, &subject, units).await;
        if !check.allowed() {
            charge::refund(&config.limiter, &taken, &subject);
            return Ok(too_many(&charge.limits, &check));
        }
        reserved.set(charge.direction, units);
        taken.push((charge, units));
    }
    parts.extensions.insert(reserved);
    let (response, usage) = usage::metered(inner.call(Request::from_parts(parts, body))).await;
    let mut response = response?;
    for (charge, units) in taken {
        charge::settle(&config.limiter, charge, &subject, units, &usage);
    }
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

/// A missing or refused key: 401 (403 for a suspended key), or 429 once
/// this address failed too often.
async fn refused(
    config: &RateLimitConfig,
    ip_subject: &str,
    refusal: Option<&Refusal>,
) -> Response<Body> {
    let code = match refusal {
        None => "missing_api_key",
        Some(Refusal::Expired) => "expired_api_key",
        Some(Refusal::Revoked) => "revoked_api_key",
        Some(Refusal::Suspended { .. }) => "suspended_api_key",
        Some(_) => "invalid_api_key",
    };
    metrics::counter!("dynagate_http_auth_failures_total", "reason" => code.to_owned())
        .increment(1);
    let decision = config
        .limiter
        .check(&config.failed_auth, ip_subject, 1)
        .await;
    if !decision.allowed() {
        if let Some(wait) = decision.retry_after() {
            config.lockouts.lock(ip_subject, wait);
        }
        return too_many(&config.failed_auth, &decision);
    }
    let message = match refusal {
        Some(Refusal::Suspended { reason }) => return suspended(reason),
        None => "this API needs an API key in the X-API-Key header",
        Some(Refusal::Expired) => "the API key has expired; ask for a new key",
        Some(Refusal::Revoked) => "the API key was revoked; ask for a new key",
        Some(_) => "the API key is not valid",
    };
    unauthorized(code, message, &config.failed_auth, &decision)
}
