//! The tower `Layer`: its configuration and builder.

use std::fmt;
use std::sync::Arc;

use http::header::HeaderName;
use http::request::Parts;
use tower::Layer;

use crate::error::ConfigError;
use crate::http::auth::Authenticate;
use crate::http::charge::CapacityCharge;
use crate::http::client_ip::TrustedProxies;
use crate::http::lockout::Lockouts;
use crate::http::penalty::{Penalties, PenaltyBox};
use crate::http::policy::Policy;
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
    pub(crate) max_cost: u64,
    pub(crate) ipv6_prefix: u8,
    pub(crate) lockouts: Lockouts,
    pub(crate) charges: Vec<CapacityCharge>,
    pub(crate) policies: Vec<Policy>,
    pub(crate) shadow: bool,
    pub(crate) penalties: Option<Penalties>,
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
    max_cost: u64,
    exempt: Arc<ExemptFn>,
    ipv6_prefix: u8,
    lockouts: usize,
    charges: Vec<CapacityCharge>,
    policies: Vec<Policy>,
    shadow: bool,
    penalty_box: Option<PenaltyBox>,
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

    /// The tokens a request costs (default: every request 1), e.g. more for
    /// writes, and the most any request costs. [`build`](Self::build) refuses
    /// limits whose burst cannot hold `max` (such a request could never be
    /// admitted); a cost above `max` is charged as `max`.
    pub fn cost(mut self, max: u64, cost: impl Fn(&Parts) -> u64 + Send + Sync + 'static) -> Self {
        self.cost = Arc::new(cost);
        self.max_cost = max;
        self
    }

    /// The prefix length that groups IPv6 clients into one subject (default
    /// 64: one end site's allocation; at most 128).
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits;
        self
    }

    /// How many locked-out addresses this process remembers (default
    /// 100,000; 0 turns the local lockout off).
    pub fn lockouts(mut self, max_addresses: usize) -> Self {
        self.lockouts = max_addresses;
        self
    }

    /// Charges every caller (key or anonymous address) in the capacity units
    /// its requests consumed, reads or writes, beside the request counts: see
    /// [`CapacityCharge`]. One charge per direction (a second replaces the
    /// first).
    pub fn charge(mut self, charge: CapacityCharge) -> Self {
        self.charges.retain(|c| c.direction != charge.direction);
        self.charges.push(charge);
        self
    }

    /// Limits per route, per group of routes and per method, on top of the
    /// defaults: see [`Policy`]. Policies are checked in the same limiter
    /// call as the defaults.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policies.push(policy);
        self
    }

    /// Shadow mode for the whole layer: every decision is made and counted
    /// (`decision="would_deny"`), no request is denied for a limit, a
    /// lockout or the penalty box (a missing or invalid key is still 401).
    /// For rolling limits out on live traffic.
    pub fn shadow(mut self, shadow: bool) -> Self {
        self.shadow = shadow;
        self
    }

    /// Refuses a subject that keeps being denied from local state for a
    /// while: see [`PenaltyBox`].
    pub fn penalty_box(mut self, rule: PenaltyBox) -> Self {
        self.penalty_box = Some(rule);
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
        if self.ipv6_prefix > 128 {
            return Err(ConfigError::invalid(
                "ipv6_prefix",
                format!("{} bits is longer than an IPv6 address", self.ipv6_prefix),
            ));
        }
        if self.max_cost == 0 {
            return Err(ConfigError::invalid(
                "cost",
                "the maximum cost must be at least 1",
            ));
        }
        let mut all = vec![("key_limits", &key_limits)];
        all.extend(self.anonymous.as_deref().map(|l| ("anonymous", l)));
        all.extend(self.ip_ceiling.as_deref().map(|l| ("ip_ceiling", l)));
        for (setting, limits) in all {
            check_fits(setting, limits, self.max_cost)?;
        }
        for charge in &self.charges {
            if charge.max_reserve == 0 {
                return Err(ConfigError::invalid(
                    "charge",
                    "the most a request reserves must be at least 1 unit",
                ));
            }
            check_fits("charge", &charge.limits, charge.max_reserve)?;
        }
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
                max_cost: self.max_cost,
                ipv6_prefix: self.ipv6_prefix,
                lockouts: Lockouts::new(self.lockouts),
                charges: self.charges,
                policies: self.policies,
                shadow: self.shadow,
                penalties: self
                    .penalty_box
                    .map(|rule| Penalties::new(rule, self.lockouts.max(1))),
            }),
        })
    }
}

/// Refuses limits a request of `max_cost` could never pass.
pub(crate) fn check_fits(
    setting: &'static str,
    limits: &Limits,
    max_cost: u64,
) -> Result<(), ConfigError> {
    match limits.iter().find(|l| l.quota().capacity() < max_cost) {
        Some(limit) => Err(ConfigError::invalid(
            setting,
            format!(
                "limit `{}` holds {} tokens, less than the {max_cost} the costliest request \
                 takes: such a request could never be admitted; raise its burst",
                limit.name(),
                limit.quota().capacity()
            ),
        )),
        None => Ok(()),
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
            max_cost: 1,
            exempt: Arc::new(|_| false),
            ipv6_prefix: 64,
            lockouts: 100_000,
            charges: Vec::new(),
            policies: Vec::new(),
            shadow: false,
            penalty_box: None,
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit::new(inner, Arc::clone(&self.config))
    }
}
