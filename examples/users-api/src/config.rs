//! The service's settings: what `Config::from_env` reads from the environment
//! (the README's table lists every variable), and the defaults the tests
//! start from with `Config::new`.

use std::time::Duration;

use dynagate::http::{ForwardedHeader, ServeConfig, TrustedProxies};
use dynagate::limiter::{FailurePolicy, Leases};

use crate::suspension::AbuseLimits;

/// Settings: `Config::from_env` reads them (see the README's table).
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
    /// Local leases of busy subjects' tokens (`LIMITER_LEASE_TOKENS`, off
    /// when 0 or unset): fewer Redis round trips, never more admitted.
    pub limiter_leases: Option<Leases>,
    pub quotas: Quotas,
    /// The capacity the fleet keeps the users table under.
    pub table_capacity: TableCapacitySetting,
    /// The capacity the fleet keeps the API keys table under (key lookups).
    pub keys_table_capacity: TableCapacitySetting,
    /// Key prefix of the capacity gate's buckets in Redis.
    pub capacity_prefix: String,
    /// The API listener's connection limits.
    pub connections: ServeConfig,
    /// Secrets that seal list cursors, the first signing (`CURSOR_SECRETS`,
    /// comma-separated, each at least 32 characters). Empty: a random secret
    /// per process, so a cursor only works on the instance that issued it.
    pub cursor_secrets: Vec<String>,
    /// `KEY_TAG_SECRETS`: secrets that tag issued keys, so that a key this
    /// service never issued is refused before any lookup (see
    /// [`KeyTags`](crate::key_tags::KeyTags)); empty, keys carry no tag.
    pub key_tag_secrets: Vec<String>,
    /// A TOML file of rate-limit policies, shadow mode and the penalty box
    /// (`RATE_LIMIT_CONFIG`; see `rate-limits.toml`).
    pub rate_limit_config: Option<std::path::PathBuf>,
    /// When a key is suspended for abuse (`KEY_MAX_ADDRESSES`,
    /// `KEY_ADDRESS_WINDOW_SECS`, `KEY_MAX_PENALTIES`, `KEY_SUSPENSION_SECS`).
    pub key_abuse: AbuseLimits,
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
    /// Per API key, in the read capacity units its requests consumed: units
    /// per second and burst. A list page reserves `LIST_READ_UNITS` of it.
    pub key_read_units_per_second: u64,
    pub key_read_units_burst: u64,
    /// Per API key, in the write capacity units its requests consumed
    /// (index writes and writes whose condition failed included): units per
    /// second and burst. A write reserves up to `WRITE_UNITS_KEYED` of it.
    pub key_write_units_per_second: u64,
    pub key_write_units_burst: u64,
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
            key_read_units_per_second: 20,
            key_read_units_burst: 100,
            // About one small write a second (a user and its index entry),
            // and two keyed writes back to back: a few keys cannot take a
            // small table's write capacity from everyone else.
            key_write_units_per_second: 2,
            key_write_units_burst: 12,
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
            limiter_leases: None,
            quotas: Quotas::default(),
            table_capacity: TableCapacitySetting::Describe,
            keys_table_capacity: TableCapacitySetting::Describe,
            capacity_prefix: "dynagate:capacity".to_owned(),
            connections: ServeConfig::default(),
            cursor_secrets: Vec::new(),
            key_tag_secrets: Vec::new(),
            rate_limit_config: None,
            key_abuse: AbuseLimits::default(),
        }
    }

    /// The settings from the environment; the error names the variable that
    /// is wrong.
    pub fn from_env() -> Result<Config, String> {
        let number = |name: &str, default: u64| -> Result<u64, String> {
            match std::env::var(name).ok().filter(|v| !v.trim().is_empty()) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| format!("{name} must be a whole number, got `{v}`")),
            }
        };
        let mut config = Config::new(
            &env_or("USERS_TABLE", "users"),
            &env_or("API_KEYS_TABLE", "api_keys"),
            &env_or("REDIS_URL", "redis://127.0.0.1:6379"),
        );
        config.redis_cluster_urls = env_or("REDIS_CLUSTER_URLS", "")
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        config.limiter_prefix = env_or("LIMITER_PREFIX", "dynagate:rl:");
        let instances =
            u32::try_from(number("INSTANCES", 1)?).map_err(|_| "INSTANCES is too large")?;
        config.failure_policy = match env_or("LIMITER_FAILURE_POLICY", "fallback").as_str() {
            "fallback" => FailurePolicy::fallback(instances).map_err(|e| e.to_string())?,
            "fail-open" => FailurePolicy::FailOpen,
            "fail-closed" => FailurePolicy::FailClosed,
            other => {
                return Err(format!(
                    "LIMITER_FAILURE_POLICY must be fallback, fail-open or fail-closed, got `{other}`"
                ));
            }
        };
        let header: ForwardedHeader = env_or("TRUSTED_PROXY_HEADER", "x-forwarded-for")
            .parse()
            .map_err(|e| format!("TRUSTED_PROXY_HEADER: {e}"))?;
        config.trusted_proxies = TrustedProxies::parse(&env_or("TRUSTED_PROXIES", ""))
            .map_err(|e| format!("TRUSTED_PROXIES: {e}"))?
            .header(header);
        let seconds = |name: &str, default: u64| -> Result<Duration, String> {
            let value = number(name, default)?;
            if value == 0 {
                return Err(format!("{name} must be at least 1 second"));
            }
            Ok(Duration::from_secs(value))
        };
        let count = |name: &str, default: u64| -> Result<usize, String> {
            usize::try_from(number(name, default)?)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name} must be at least 1"))
        };
        config.connections = ServeConfig::default()
            .header_timeout(seconds("HEADER_TIMEOUT_SECS", 5)?)
            .idle_timeout(seconds("IDLE_TIMEOUT_SECS", 30)?)
            .body_timeout(seconds("BODY_TIMEOUT_SECS", 10)?)
            .max_connections(count("MAX_CONNECTIONS", 1000)?)
            .max_per_address(count("MAX_CONNECTIONS_PER_ADDRESS", 64)?)
            .trusted_proxies(config.trusted_proxies.clone());
        config.dynamodb_deadline = Duration::from_millis(number("DYNAMODB_DEADLINE_MS", 2000)?);
        config.limiter_deadline = Duration::from_millis(number("LIMITER_DEADLINE_MS", 50)?);
        let lease_lifetime = Duration::from_millis(number("LIMITER_LEASE_MS", 1000)?);
        config.limiter_leases = match number("LIMITER_LEASE_TOKENS", 0)? {
            0 => None,
            tokens => Some(
                Leases::up_to(tokens)
                    .and_then(|l| l.lasting(lease_lifetime))
                    .map_err(|e| format!("LIMITER_LEASE_TOKENS, LIMITER_LEASE_MS: {e}"))?,
            ),
        };
        config.table_capacity = TableCapacitySetting::parse(&env_or("TABLE_CAPACITY", "describe"))?;
        config.keys_table_capacity =
            TableCapacitySetting::parse(&env_or("API_KEYS_TABLE_CAPACITY", "describe"))
                .map_err(|e| e.replace("TABLE_CAPACITY", "API_KEYS_TABLE_CAPACITY"))?;
        config.capacity_prefix = env_or("CAPACITY_PREFIX", "dynagate:capacity");
        let d = Quotas::default();
        config.quotas = Quotas {
            key_per_second: number("KEY_PER_SECOND", d.key_per_second)?,
            key_burst: number("KEY_BURST", d.key_burst)?,
            key_per_day: number("KEY_PER_DAY", d.key_per_day)?,
            failed_auth_burst: number("FAILED_AUTH_BURST", d.failed_auth_burst)?,
            ip_per_second: number("IP_PER_SECOND", d.ip_per_second)?,
            ip_burst: number("IP_BURST", d.ip_burst)?,
            key_read_units_per_second: number(
                "KEY_READ_UNITS_PER_SECOND",
                d.key_read_units_per_second,
            )?,
            key_read_units_burst: number("KEY_READ_UNITS_BURST", d.key_read_units_burst)?,
            key_write_units_per_second: number(
                "KEY_WRITE_UNITS_PER_SECOND",
                d.key_write_units_per_second,
            )?,
            key_write_units_burst: number("KEY_WRITE_UNITS_BURST", d.key_write_units_burst)?,
        };
        config.rate_limit_config = std::env::var_os("RATE_LIMIT_CONFIG")
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from);
        config.cursor_secrets = env_or("CURSOR_SECRETS", "")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        config.key_tag_secrets = env_or("KEY_TAG_SECRETS", "")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let abuse = AbuseLimits::default();
        config.key_abuse = AbuseLimits {
            max_addresses: count("KEY_MAX_ADDRESSES", abuse.max_addresses as u64)?,
            window: seconds("KEY_ADDRESS_WINDOW_SECS", abuse.window.as_secs())?,
            max_penalties: count("KEY_MAX_PENALTIES", abuse.max_penalties as u64)?,
            suspension: seconds("KEY_SUSPENSION_SECS", abuse.suspension.as_secs())?,
        };
        Ok(config)
    }
}

/// The variable `name`, or `default` when it is unset or blank.
pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}
