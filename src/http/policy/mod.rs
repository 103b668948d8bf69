//! Rate-limit policies per route, per group of routes and per method: see
//! [`Policy`].

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use http::{Method, StatusCode};

use crate::error::ConfigError;
use crate::limiter::Limits;

type ExemptFn = dyn Fn(&Parts) -> bool + Send + Sync;
type ChargeFn = dyn Fn(StatusCode) -> bool + Send + Sync;

/// Whose buckets a policy takes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Per {
    /// The caller: its API key, or its address when it has none (default).
    #[default]
    Caller,
    /// The client address, whatever key it uses.
    Address,
}

/// One route a policy applies to: a method (or every method) and an axum
/// route pattern as registered (`/api/v1/users/{user_id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub(crate) method: Option<Method>,
    pub(crate) pattern: String,
}

impl RouteMatch {
    fn matches(&self, method: &Method, pattern: Option<&str>) -> bool {
        pattern == Some(self.pattern.as_str()) && self.method.as_ref().is_none_or(|m| m == method)
    }
}

/// A rate-limit policy per route, per group of routes and per method, the
/// way Flask-Limiter's `@limiter.limit`, `shared_limit`, `exempt_when` and
/// `deduct_when` and Envoy's per-route descriptors let a team state them.
///
/// A [`Policy`] is a set of [`Limits`] (its namespace names the policy and
/// its buckets) applied to the requests whose **matched route** (axum's
/// route pattern, e.g. `/api/v1/users/{user_id}`, never the raw path: one
/// bucket per route, not one per user id) and method it lists. Listing
/// several routes makes them share the policy's buckets: a group. Every
/// policy has its own cost per request, its own exemption, its own rule for
/// which outcomes are charged (a request refused by the service's own fault
/// is refunded, say, and a 404 is still charged, so that probing for ids
/// costs), and can run in shadow mode: decided and counted, never enforced.
///
/// Policies come on top of the layer's defaults (the key's limits, the
/// per-address ceiling, the anonymous limits), and are checked in the same
/// call to the limiter as them.
#[derive(Clone)]
pub struct Policy {
    pub(crate) limits: Arc<Limits>,
    pub(crate) routes: Vec<RouteMatch>,
    pub(crate) per: Per,
    pub(crate) cost: u64,
    pub(crate) shadow: bool,
    pub(crate) exempt: Option<Arc<ExemptFn>>,
    pub(crate) charge_when: Option<Arc<ChargeFn>>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("limits", &self.limits)
            .field("routes", &self.routes)
            .field("per", &self.per)
            .field("cost", &self.cost)
            .field("shadow", &self.shadow)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// A policy with `limits` (its namespace is the policy's name); add the
    /// routes it covers next.
    pub fn builder(limits: Limits) -> PolicyBuilder {
        PolicyBuilder {
            policy: Policy {
                limits: Arc::new(limits),
                routes: Vec::new(),
                per: Per::Caller,
                cost: 1,
                shadow: false,
                exempt: None,
                charge_when: None,
            },
        }
    }

    /// The policy's name: its limits' namespace.
    pub fn name(&self) -> &str {
        self.limits.namespace()
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether the policy only counts (shadow mode).
    pub fn is_shadow(&self) -> bool {
        self.shadow
    }

    /// Whether the policy covers a request to `pattern` (the matched route)
    /// with `method`, and it is not exempt.
    pub(crate) fn applies(&self, parts: &Parts, pattern: Option<&str>) -> bool {
        self.routes
            .iter()
            .any(|route| route.matches(&parts.method, pattern))
            && !self.exempt.as_ref().is_some_and(|exempt| exempt(parts))
    }

    /// Whether a request answered with `status` keeps its charge.
    pub(crate) fn charges(&self, status: StatusCode) -> bool {
        self.charge_when
            .as_ref()
            .is_none_or(|charge| charge(status))
    }
}

/// Builds a [`Policy`].
#[derive(Debug)]
pub struct PolicyBuilder {
    policy: Policy,
}

impl PolicyBuilder {
    /// Covers `method` requests to the route `pattern` (as registered with
    /// axum, e.g. `/api/v1/users/{user_id}`). Several routes share the
    /// policy's buckets.
    pub fn route(mut self, method: Method, pattern: impl Into<String>) -> Self {
        self.policy.routes.push(RouteMatch {
            method: Some(method),
            pattern: pattern.into(),
        });
        self
    }

    /// Covers every method of the route `pattern`.
    pub fn any_method(mut self, pattern: impl Into<String>) -> Self {
        self.policy.routes.push(RouteMatch {
            method: None,
            pattern: pattern.into(),
        });
        self
    }

    /// Whose buckets: the caller's (default) or the client address's.
    pub fn per(mut self, per: Per) -> Self {
        self.policy.per = per;
        self
    }

    /// Tokens one request takes (default 1).
    pub fn cost(mut self, cost: u64) -> Self {
        self.policy.cost = cost;
        self
    }

    /// Decides and counts, never denies (`decision="would_deny"` in the
    /// metrics): for rolling a policy out on live traffic.
    pub fn shadow(mut self) -> Self {
        self.policy.shadow = true;
        self
    }

    /// Requests the policy leaves alone, e.g. from an internal network.
    pub fn exempt_when(mut self, exempt: impl Fn(&Parts) -> bool + Send + Sync + 'static) -> Self {
        self.policy.exempt = Some(Arc::new(exempt));
        self
    }

    /// Which answers keep their charge (default: all); the others are
    /// refunded after the response. E.g. `|s| !s.is_server_error()`: the
    /// service's own failures cost the caller nothing, a 404 still costs.
    pub fn charge_when(
        mut self,
        charge: impl Fn(StatusCode) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.policy.charge_when = Some(Arc::new(charge));
        self
    }

    /// The policy. Fails without a route, or when a request's cost does not
    /// fit the limits' burst (it could never be admitted).
    pub fn build(self) -> Result<Policy, ConfigError> {
        let policy = self.policy;
        if policy.routes.is_empty() {
            return Err(ConfigError::invalid(
                "policy",
                format!(
                    "policy `{}` covers no route: add .route(method, pattern)",
                    policy.name()
                ),
            ));
        }
        if policy.cost == 0 {
            return Err(ConfigError::invalid(
                "policy",
                format!("policy `{}`: a request must cost at least 1", policy.name()),
            ));
        }
        crate::http::layer::check_fits("policy", &policy.limits, policy.cost)?;
        Ok(policy)
    }
}

mod file;

pub use self::file::{
    ChargeEntry, LimitEntry, PenaltyBoxEntry, PerEntry, PeriodEntry, PolicyEntry, PolicyFile,
};

#[cfg(test)]
mod tests;
