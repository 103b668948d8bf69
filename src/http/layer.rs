//! The tower `Layer`: its configuration and builder.

use std::fmt;
use std::sync::Arc;

use http::header::HeaderName;
use http::request::Parts;
use tower::Layer;

use crate::error::ConfigError;
use crate::http::auth::Authenticate;
use crate::http::client_ip::TrustedProxies;
use crate::http::service::RateLimit;
use crate::limiter::{Limits, RateLimiter};

type CostFn = dyn Fn(&Parts) -> u64 + Send + Sync;
type ExemptFn = dyn Fn(&Parts) -> bool + Send + Sync;

/// The configuration of a [`RateLimitLayer`]; see [`RateLimitLayer::builder`].
pub struct RateLimitConfig {
    pub(crate) limiter: Arc<dyn RateLimiter>,
    pub(crate) authenticator: Option<Arc<dyn Authenticate>>,
    pub(crate) key_header: HeaderName,
    pub(crate) key_limits: Arc<Limits>,
    pub(crate) anonymous: Option<Arc<Limits>>,
    pub(crate) failed_auth: Arc<Limits>,
    pub(crate) ip_ceiling: Option<Arc<Limits>>,
    pub(crate) trusted_proxies: TrustedProxies,
    pub(crate) cost: Arc<CostFn>,
    pub(crate) exempt: Arc<ExemptFn>,
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
pub struct RateLimitLayerBuilder {
    limiter: Arc<dyn RateLimiter>,
    authenticator: Option<Arc<dyn Authenticate>>,
    key_header: HeaderName,
    key_limits: Option<Limits>,
    anonymous: Option<Arc<Limits>>,
    failed_auth: Option<Limits>,
    ip_ceiling: Option<Arc<Limits>>,
    trusted_proxies: TrustedProxies,
    cost: Arc<CostFn>,
    exempt: Arc<ExemptFn>,
}

impl fmt::Debug for RateLimitLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayerBuilder")
            .field("limiter", &self.limiter)
            .field("key_limits", &self.key_limits)
            .field("failed_auth", &self.failed_auth)
            .finish_non_exhaustive()
    }
}

impl RateLimitLayerBuilder {
    /// The limits of every valid key that has none of its own (required).
    pub fn key_limits(mut self, limits: Limits) -> Self {
        self.key_limits = Some(limits);
        self
    }

    /// The limits on failed authentications (a missing or invalid key) per
    /// client IP (required): key guessing stops here.
    pub fn failed_auth(mut self, limits: Limits) -> Self {
        self.failed_auth = Some(limits);
        self
    }

    /// Checks API keys with `authenticator` (read from `X-API-Key` unless
    /// [`key_header`](Self::key_header) says otherwise).
    pub fn authenticator(mut self, authenticator: Arc<dyn Authenticate>) -> Self {
        self.authenticator = Some(authenticator);
        self
    }

    /// The header carrying the API key (default `x-api-key`). Keys are never
    /// read from the query string: URLs end up in logs.
    pub fn key_header(mut self, name: HeaderName) -> Self {
        self.key_header = name;
        self
    }

    /// Lets requests without a key through, limited per client IP by `limits`.
    /// Without it a key is required (401).
    pub fn anonymous(mut self, limits: Limits) -> Self {
        self.anonymous = Some(Arc::new(limits));
        self
    }

    /// A ceiling per client IP across all keys (against key rotation from one
    /// address).
    pub fn ip_ceiling(mut self, limits: Limits) -> Self {
        self.ip_ceiling = Some(Arc::new(limits));
        self
    }

    /// The proxies whose `X-Forwarded-For` / `Forwarded` are believed.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// The tokens a request costs (default 1), e.g. more for writes.
    pub fn cost(mut self, cost: impl Fn(&Parts) -> u64 + Send + Sync + 'static) -> Self {
        self.cost = Arc::new(cost);
        self
    }

    /// Requests that pass without a check (e.g. health probes).
    pub fn exempt(mut self, exempt: impl Fn(&Parts) -> bool + Send + Sync + 'static) -> Self {
        self.exempt = Arc::new(exempt);
        self
    }

    /// The layer. Fails when the key or failed-auth limits are missing, or
    /// keys are accepted without an authenticator.
    pub fn build(self) -> Result<RateLimitLayer, ConfigError> {
        if self.authenticator.is_none() && self.anonymous.is_none() {
            return Err(ConfigError::invalid(
                "authenticator",
                "without one every request is anonymous: set an authenticator or anonymous limits",
            ));
        }
        let key_limits = self.key_limits.ok_or_else(|| {
            ConfigError::invalid("key_limits", "set the limits of keys without their own")
        })?;
        let failed_auth = self.failed_auth.ok_or_else(|| {
            ConfigError::invalid(
                "failed_auth",
                "set the limits on failed authentications per client IP",
            )
        })?;
        Ok(RateLimitLayer {
            config: Arc::new(RateLimitConfig {
                limiter: self.limiter,
                authenticator: self.authenticator,
                key_header: self.key_header,
                key_limits: Arc::new(key_limits),
                anonymous: self.anonymous,
                failed_auth: Arc::new(failed_auth),
                ip_ceiling: self.ip_ceiling,
                trusted_proxies: self.trusted_proxies,
                cost: self.cost,
                exempt: self.exempt,
            }),
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
    /// Starts a layer whose decisions `limiter` makes; name the key limits
    /// and the failed-auth limits next (both required).
    pub fn builder(limiter: Arc<dyn RateLimiter>) -> RateLimitLayerBuilder {
        RateLimitLayerBuilder {
            limiter,
            authenticator: None,
            key_header: HeaderName::from_static("x-api-key"),
            key_limits: None,
            anonymous: None,
            failed_auth: None,
            ip_ceiling: None,
            trusted_proxies: TrustedProxies::none(),
            cost: Arc::new(|_| 1),
            exempt: Arc::new(|_| false),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit::new(inner, Arc::clone(&self.config))
    }
}
