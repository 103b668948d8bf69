//! Policies, shadow mode and the penalty box as a file states them: see
//! [`PolicyFile`].

use std::time::Duration;

use http::Method;
use serde::Deserialize;

use crate::error::ConfigError;
use crate::http::layer::RateLimitLayerBuilder;
use crate::http::penalty::PenaltyBox;
use crate::http::policy::{Per, Policy};
use crate::limiter::{Limits, Quota};

/// Policies, shadow mode and the penalty box as a file states them: the
/// serde form of the builders, for a service that reads its rate limits
/// from configuration (the users API reads TOML from `RATE_LIMIT_CONFIG`).
///
/// ```toml
/// shadow = false                      # the whole layer only counts
///
/// [penalty_box]
/// denials = 20
/// within_secs = 60
/// hold_secs = 300
///
/// [[policy]]
/// name = "writes"                     # the buckets' namespace
/// routes = ["POST /api/v1/users", "PUT /api/v1/users/{user_id}"]
/// per = "caller"                      # or "address"
/// cost = 1
/// charge = "except-server-errors"     # or "always"
/// shadow = false
/// limits = [{ name = "minute", rate = 30, per = "minute", burst = 10 }]
/// ```
///
/// Every problem is refused with the key that holds it named
/// (`policy[0].limits[0].burst: ...`), so a bad file stops the service at
/// start, not under load.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Shadow mode for the whole layer.
    #[serde(default)]
    pub shadow: bool,
    /// The penalty box, if any.
    pub penalty_box: Option<PenaltyBoxEntry>,
    /// The policies.
    #[serde(default, rename = "policy")]
    pub policies: Vec<PolicyEntry>,
}

/// `[penalty_box]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PenaltyBoxEntry {
    /// Denials of one subject...
    pub denials: u32,
    /// ...within this many seconds...
    pub within_secs: u64,
    /// ...box it for this many seconds.
    pub hold_secs: u64,
}

/// `[[policy]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyEntry {
    /// The policy's name: its buckets' namespace.
    pub name: String,
    /// `"METHOD /pattern"`, or `"/pattern"` for every method.
    pub routes: Vec<String>,
    /// `"caller"` (default) or `"address"`.
    #[serde(default)]
    pub per: PerEntry,
    /// Tokens per request (default 1).
    #[serde(default = "one")]
    pub cost: u64,
    /// Which answers are charged: `"always"` (default) or `"except-server-errors"`.
    #[serde(default)]
    pub charge: ChargeEntry,
    /// Only count, never deny.
    #[serde(default)]
    pub shadow: bool,
    /// The limits.
    pub limits: Vec<LimitEntry>,
}

fn one() -> u64 {
    1
}

/// `per = "caller" | "address"`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PerEntry {
    /// The API key, or the address without one.
    #[default]
    Caller,
    /// The client address.
    Address,
}

/// `charge = "always" | "except-server-errors"`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChargeEntry {
    /// Every answer keeps its charge.
    #[default]
    Always,
    /// 5xx answers (the service's own failures) are refunded.
    ExceptServerErrors,
}

/// `{ name, rate, per, burst }`: `rate` tokens per `per`, holding `burst`
/// (default `rate`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitEntry {
    /// The limit's name (the last part of its bucket's key).
    pub name: String,
    /// Tokens per period.
    pub rate: u64,
    /// `"second"`, `"minute"`, `"hour"` or `"day"`.
    pub per: PeriodEntry,
    /// The bucket's size (default: `rate`).
    pub burst: Option<u64>,
}

/// The period of a [`LimitEntry`].
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeriodEntry {
    /// Per second.
    Second,
    /// Per minute.
    Minute,
    /// Per hour.
    Hour,
    /// Per day.
    Day,
}

const STANDARD_METHODS: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
];

/// A problem at `key`.
fn at(key: &str, problem: impl std::fmt::Display) -> ConfigError {
    ConfigError::invalid("rate limit policy file", format!("`{key}`: {problem}"))
}

impl PolicyFile {
    /// Adds the file's policies, shadow mode and penalty box to `builder`.
    pub fn apply(
        self,
        mut builder: RateLimitLayerBuilder,
    ) -> Result<RateLimitLayerBuilder, ConfigError> {
        builder = builder.shadow(self.shadow);
        if let Some(rule) = self.penalty_box {
            let rule = PenaltyBox::after_denials(rule.denials)
                .within(Duration::from_secs(rule.within_secs))
                .hold_for(Duration::from_secs(rule.hold_secs))
                .map_err(|e| at("penalty_box", reason(&e)))?;
            builder = builder.penalty_box(rule);
        }
        let mut names = std::collections::HashSet::new();
        for (i, entry) in self.policies.into_iter().enumerate() {
            let key = format!("policy[{i}]");
            if !names.insert(entry.name.clone()) {
                return Err(at(
                    &format!("{key}.name"),
                    format!(
                        "`{}` is used twice; each policy needs its own name (its buckets' namespace)",
                        entry.name
                    ),
                ));
            }
            builder = builder.policy(entry.into_policy(&key)?);
        }
        Ok(builder)
    }
}

fn reason(error: &ConfigError) -> String {
    match error {
        ConfigError::Invalid { reason, .. } => reason.clone(),
    }
}

impl PolicyEntry {
    fn into_policy(self, key: &str) -> Result<Policy, ConfigError> {
        if self.limits.is_empty() {
            return Err(at(
                &format!("{key}.limits"),
                "a policy needs at least one limit",
            ));
        }
        let mut limits = Limits::builder(&self.name);
        for (j, limit) in self.limits.iter().enumerate() {
            let lkey = format!("{key}.limits[{j}]");
            if limit.rate == 0 {
                return Err(at(&format!("{lkey}.rate"), "must be at least 1"));
            }
            let rate = match limit.per {
                PeriodEntry::Second => Quota::per_second(limit.rate),
                PeriodEntry::Minute => Quota::per_minute(limit.rate),
                PeriodEntry::Hour => Quota::per_hour(limit.rate),
                PeriodEntry::Day => Quota::per_day(limit.rate),
            };
            let quota = rate
                .burst(limit.burst.unwrap_or(limit.rate))
                .map_err(|e| at(&format!("{lkey}.burst"), reason(&e)))?;
            limits = limits.limit(&limit.name, quota);
        }
        let limits = limits
            .build()
            .map_err(|e| at(&format!("{key}.name or .limits"), reason(&e)))?;
        let mut policy = Policy::builder(limits).cost(self.cost);
        if self.routes.is_empty() {
            return Err(at(
                &format!("{key}.routes"),
                "a policy needs at least one route, e.g. \"GET /api/v1/users\"",
            ));
        }
        for (j, route) in self.routes.iter().enumerate() {
            let rkey = format!("{key}.routes[{j}]");
            policy = match route.split_once(' ') {
                None if route.starts_with('/') => policy.any_method(route.as_str()),
                Some((method, pattern)) if pattern.starts_with('/') => {
                    // Only the standard methods: a typo (`GTE`) is a valid
                    // extension method that would silently match nothing.
                    let method = STANDARD_METHODS
                        .iter()
                        .find(|m| m.as_str() == method)
                        .cloned()
                        .ok_or_else(|| {
                            at(
                                &rkey,
                                format!(
                                    "`{method}` is not one of GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS"
                                ),
                            )
                        })?;
                    policy.route(method, pattern)
                }
                _ => {
                    return Err(at(
                        &rkey,
                        format!("`{route}` is not \"METHOD /pattern\" or \"/pattern\""),
                    ));
                }
            };
        }
        policy = policy.per(match self.per {
            PerEntry::Caller => Per::Caller,
            PerEntry::Address => Per::Address,
        });
        if self.shadow {
            policy = policy.shadow();
        }
        if let ChargeEntry::ExceptServerErrors = self.charge {
            policy = policy.charge_when(|status| !status.is_server_error());
        }
        policy.build().map_err(|e| at(key, reason(&e)))
    }
}
