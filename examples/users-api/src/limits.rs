//! The API's rate limits: the configured quotas as token buckets in Redis,
//! in front of every `/api/` route.

use std::sync::Arc;

use dynagate::RedisConnection;
use dynagate::http::{CapacityCharge, PolicyFile, RateLimitLayer};
use dynagate::limiter::{Limits, Quota, RedisLimiter};
use http::Method;

use crate::config::Config;
use crate::keys::KeyStore;

/// The most a request costs: a write (a GET costs 1). Quotas must hold it.
pub(crate) const MAX_COST: u64 = 2;

/// The read units a list page reserves from its caller's read-unit quota,
/// and so the most it may read: its read budget.
pub const LIST_READ_UNITS: u64 = 16;

/// The write units a write without an `Idempotency-Key` reserves from its
/// caller's write-unit quota: the most a user's put consumes (an item under
/// 1 KB, 1 unit, and its `by_email` index entry, 2 when the e-mail changes).
pub const WRITE_UNITS: u64 = 3;

/// The write units a keyed write reserves: one transaction of the user and
/// its idempotency record (each under 1 KB: the record holds the user's
/// JSON, at most about 800 bytes), each item and the user's index entry at
/// twice their units. What it did not consume is given back after the
/// response.
pub const WRITE_UNITS_KEYED: u64 = 6;

/// The write units a request reserves: none for a read.
pub(crate) fn write_reservation(parts: &http::request::Parts) -> u64 {
    match parts.method {
        Method::POST | Method::PUT | Method::DELETE | Method::PATCH => {
            if parts.headers.contains_key("idempotency-key") {
                WRITE_UNITS_KEYED
            } else {
                WRITE_UNITS
            }
        }
        _ => 0,
    }
}

/// Whether a request lists users (`GET /api/v1/users`, with or without a query).
pub(crate) fn is_list(parts: &http::request::Parts) -> bool {
    parts.method == Method::GET && parts.uri.path() == "/api/v1/users"
}

/// The rate-limit layer: callers authenticated by `keys`, limited per key,
/// per address and per failed authentication, as `config.quotas` says.
pub(crate) fn rate_limit_layer(
    config: &Config,
    redis: RedisConnection,
    keys: KeyStore,
) -> Result<RateLimitLayer, String> {
    let builder = RedisLimiter::builder(redis)
        .prefix(config.limiter_prefix.clone())
        .deadline(config.limiter_deadline)
        .on_failure(config.failure_policy);
    let builder = match config.limiter_leases {
        Some(leases) => builder.leases(leases),
        None => builder,
    };
    let limiter = builder.build().map_err(|e| e.to_string())?;

    let q = config.quotas;
    let quota = |r: Result<Quota, _>| r.map_err(|e: dynagate::ConfigError| e.to_string());
    let default_key = Limits::builder("key")
        .limit(
            "second",
            quota(Quota::per_second(q.key_per_second).burst(q.key_burst))?,
        )
        .limit(
            "day",
            quota(Quota::per_day(q.key_per_day).burst(q.key_per_day))?,
        )
        .build()
        .map_err(|e| e.to_string())?;
    // Strict: a few failed authentications per address, then one more a minute.
    let failed_auth = single(
        "auth-fail",
        "minute",
        Quota::per_minute(1).burst(q.failed_auth_burst),
    )?;
    // One address cannot exceed this across all the keys it rotates through.
    let ip_ceiling = single(
        "ip",
        "second",
        Quota::per_second(q.ip_per_second).burst(q.ip_burst),
    )?;
    // What requests really read, per key: a list costs what it consumed.
    let read_units = single(
        "key-rcu",
        "second",
        Quota::per_second(q.key_read_units_per_second).burst(q.key_read_units_burst),
    )?;
    let charge = CapacityCharge::read_units(read_units).reserve(LIST_READ_UNITS, |parts| {
        if is_list(parts) { LIST_READ_UNITS } else { 1 }
    });
    // What requests really wrote, per key: the request quotas count a write
    // as one whatever it costs, and a keyed write (a transaction) costs the
    // table several times a plain one, replayed or not. Without this, the
    // abuse arena's few attacking keys (one Idempotency-Key replayed, users
    // created as fast as their request quotas allow) kept a small table's
    // writes near its capacity, and the fleet's gate shed everyone's.
    let write_units = single(
        "key-wcu",
        "second",
        Quota::per_second(q.key_write_units_per_second).burst(q.key_write_units_burst),
    )?;
    let write_charge =
        CapacityCharge::write_units(write_units).reserve(WRITE_UNITS_KEYED, write_reservation);
    let builder = RateLimitLayer::builder(Arc::new(limiter))
        .charge(charge)
        .charge(write_charge)
        .key_limits(default_key)
        .failed_auth(failed_auth)
        .authenticator(Arc::new(keys))
        .ip_ceiling(ip_ceiling)
        .trusted_proxies(config.trusted_proxies.clone())
        .cost(MAX_COST, |parts| {
            if parts.method == Method::GET {
                1
            } else {
                MAX_COST
            }
        })
        .exempt(|parts| !parts.uri.path().starts_with("/api/"));
    let builder = match &config.rate_limit_config {
        Some(path) => policy_file(path)?
            .apply(builder)
            .map_err(|e| format!("RATE_LIMIT_CONFIG {}: {e}", path.display()))?,
        None => builder,
    };
    builder.build().map_err(|e| e.to_string())
}

/// One named quota in `namespace`, its errors as the messages start-up prints.
fn single(
    namespace: &str,
    name: &str,
    quota: Result<Quota, dynagate::ConfigError>,
) -> Result<Limits, String> {
    Limits::single(namespace, name, quota.map_err(|e| e.to_string())?).map_err(|e| e.to_string())
}

/// Refuses a bad `RATE_LIMIT_CONFIG` at start, before anything connects:
/// the file is read and its policies built onto a layer of their own.
pub fn check_rate_limit_config(config: &Config) -> Result<(), String> {
    let Some(path) = &config.rate_limit_config else {
        return Ok(());
    };
    let one = Limits::single(
        "check",
        "second",
        Quota::per_second(1)
            .burst(MAX_COST)
            .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let builder = RateLimitLayer::builder(Arc::new(dynagate::limiter::MemoryLimiter::new()))
        .key_limits(one.clone())
        .failed_auth(one.clone())
        .anonymous(one);
    policy_file(path)?
        .apply(builder)
        .and_then(|b| b.build())
        .map(|_| ())
        .map_err(|e| format!("RATE_LIMIT_CONFIG {}: {e}", path.display()))
}

/// Reads a policy file; the error names the file, and the line and the key
/// that are wrong.
fn policy_file(path: &std::path::Path) -> Result<PolicyFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("RATE_LIMIT_CONFIG {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("RATE_LIMIT_CONFIG {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(toml: &str) -> Result<(), String> {
        let path = std::env::temp_dir().join(format!(
            "users-api-limits-{}-{}.toml",
            std::process::id(),
            toml.len()
        ));
        std::fs::write(&path, toml).unwrap();
        let mut config = Config::new("u", "k", "redis://127.0.0.1:1");
        config.rate_limit_config = Some(path.clone());
        let result = check_rate_limit_config(&config);
        let _ = std::fs::remove_file(path);
        result
    }

    fn parts(method: Method, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut request = http::Request::builder().method(method).uri("/api/v1/users");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn writes_reserve_write_units_and_keyed_writes_a_transactions_worth() {
        assert_eq!(write_reservation(&parts(Method::GET, &[])), 0);
        assert_eq!(write_reservation(&parts(Method::POST, &[])), WRITE_UNITS);
        assert_eq!(write_reservation(&parts(Method::DELETE, &[])), WRITE_UNITS);
        let keyed = [("idempotency-key", "k")];
        assert_eq!(
            write_reservation(&parts(Method::PUT, &keyed)),
            WRITE_UNITS_KEYED
        );
        // The default quota holds two keyed writes back to back.
        let q = crate::config::Quotas::default();
        assert!(q.key_write_units_burst >= 2 * WRITE_UNITS_KEYED);
    }

    #[test]
    fn the_shipped_policy_file_is_valid() {
        checked(include_str!("../rate-limits.toml")).unwrap();
    }

    #[test]
    fn a_bad_policy_file_is_refused_with_the_key_named() {
        let bad_burst = "[[policy]]\nname = \"w\"\nroutes = [\"POST /x\"]\nlimits = [{ name = \"m\", rate = 5, per = \"minute\", burst = 0 }]\n";
        let error = checked(bad_burst).unwrap_err();
        assert!(error.contains("`policy[0].limits[0].burst`"), "{error}");
        let typo = "[[policy]]\nname = \"w\"\nroute = [\"POST /x\"]\nlimits = []\n";
        let error = checked(typo).unwrap_err();
        assert!(error.contains("unknown field `route`"), "{error}");
        let bad_period = "[[policy]]\nname = \"w\"\nroutes = [\"/x\"]\nlimits = [{ name = \"m\", rate = 5, per = \"fortnight\" }]\n";
        let error = checked(bad_period).unwrap_err();
        assert!(
            error.contains("fortnight") && error.contains("line 4"),
            "{error}"
        );
    }
}
