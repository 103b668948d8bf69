//! The tower `Service`: the request flow of the layer, from the client
//! address to the handler.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath};
use http::request::Parts;
use http::{Request, Response};
use tower::Service;

use crate::http::auth::{AuthUnavailable, Caller, Observed, Refusal};
use crate::http::charge::{self, Reserved};
use crate::http::checks::{Plan, Role, Subjects};
use crate::http::client_ip::subject;
use crate::http::layer::RateLimitConfig;
use crate::http::response::{
    add_headers, auth_unavailable, locked_out, penalty_boxed, suspended, too_many, unauthorized,
};
use crate::usage::{self, Usage};

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

/// One request through the layer. Cheap before expensive: local state first
/// (the address's lockout and penalty box), then, for a key this instance
/// knows, every limit of the request in one limiter call; only a key it does
/// not know costs the per-address ceiling first (one call) and a lookup (a
/// cache or a DynamoDB read) before its own limits are checked.
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
    if let Some(refused) = boxed(&config, &ip_subject) {
        return Ok(refused);
    }

    let key = parts
        .headers
        .get(&config.key_header)
        .map(|v| v.to_str().unwrap_or(""));
    let (subject, limits, caller, with_ceiling) = match (key, &config.authenticator) {
        (Some(key), Some(authenticator)) => {
            let known = authenticator.cached(key);
            // A locked-out address: only a key already known to be valid
            // passes; anything else is refused before it costs a lookup.
            if known.is_none()
                && let Some(wait) = config.lockouts.remaining(&ip_subject)
                && !config.shadow
            {
                return Ok(locked_out(&config.failed_auth, wait));
            }
            let was_known = known.is_some();
            let caller = match known {
                Some(caller) => caller,
                None => {
                    // Unknown to this instance: the ceiling protects the lookup.
                    if let Some(ceiling) = &config.ip_ceiling {
                        let mut first = Plan::default();
                        first.add(Role::Ceiling, ceiling, &ip_subject, cost, config.shadow);
                        let decisions = first.decide(&config.limiter).await;
                        if let Some((planned, decision)) = first.denial(&decisions) {
                            return Ok(too_many(planned.limits, decision));
                        }
                    }
                    match authenticator.authenticate(key).await {
                        Ok(Ok(caller)) => caller,
                        Ok(Err(refusal)) => {
                            return Ok(refused(&config, &ip_subject, Some(&refusal)).await);
                        }
                        Err(AuthUnavailable) => return Ok(auth_unavailable()),
                    }
                }
            };
            authenticator.observe(&caller, Observed::Request { client: ip });
            let limits = caller
                .limits
                .clone()
                .unwrap_or_else(|| Arc::clone(&config.key_limits));
            let subject = format!("key:{}", caller.id);
            parts.extensions.insert(caller.clone());
            // The ceiling was already decided for a key this instance did not know.
            (subject, limits, Some(caller), was_known)
        }
        (None, _) | (Some(_), None) => match &config.anonymous {
            Some(limits) => {
                // Only the layer names the caller: whatever an outer layer
                // put there, an anonymous request reaches the handler without.
                parts.extensions.remove::<Caller>();
                (ip_subject.clone(), Arc::clone(limits), None, false)
            }
            None => return Ok(refused(&config, &ip_subject, None).await),
        },
    };
    if let Some(refused) = boxed(&config, &subject) {
        return Ok(refused);
    }

    let mut plan = Plan::default();
    if with_ceiling && let Some(ceiling) = &config.ip_ceiling {
        plan.add(Role::Ceiling, ceiling, &ip_subject, cost, config.shadow);
    }
    let default_at = plan.checks.len();
    plan.add(Role::Default, &limits, &subject, cost, config.shadow);
    let pattern = parts
        .extensions
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let who = Subjects {
        caller: &subject,
        address: &ip_subject,
    };
    plan.add_route_and_charges(&config, &parts, pattern, &who);
    let decisions = plan.decide(&config.limiter).await;
    if let Some((planned, decision)) = plan.denial(&decisions) {
        if let Some(penalties) = &config.penalties
            && penalties.denied(planned.subject)
            && let (Some(caller), Some(authenticator)) = (&caller, &config.authenticator)
            && planned.subject == subject
        {
            authenticator.observe(caller, Observed::PenaltyBox);
        }
        return Ok(too_many(planned.limits, decision));
    }

    let mut reserved = Reserved::default();
    for charge in &config.charges {
        reserved.set(charge.direction, plan.reserved_from(charge));
    }
    let charged = !config.charges.is_empty();
    if charged {
        parts.extensions.insert(reserved);
    }
    let request = Request::from_parts(parts, body);
    let (response, usage) = if charged {
        usage::metered(inner.call(request)).await
    } else {
        (inner.call(request).await, Usage::default())
    };
    let mut response = response?;
    plan.refund_uncharged(&config.limiter, response.status());
    for charge in &config.charges {
        let reserved = plan.reserved_from(charge);
        charge::settle(&config.limiter, charge, &subject, reserved, &usage);
    }
    add_headers(&mut response, &limits, &decisions.each[default_at]);
    Ok(response)
}

/// A subject in the penalty box: 429 from local state (in shadow mode,
/// counted and let through).
fn boxed(config: &RateLimitConfig, subject: &str) -> Option<Response<Body>> {
    let wait = config.penalties.as_ref()?.remaining(subject)?;
    if config.shadow {
        metrics::counter!("dynagate_http_decisions_total", "policy" => "penalty_box", "decision" => "would_deny")
            .increment(1);
        return None;
    }
    Some(penalty_boxed(wait))
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
