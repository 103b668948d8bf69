//! The users API: dynagate's sample service.
//!
//! ```text
//! ./dev.sh run                                   # stack, tables, a demo key, the service
//! cargo run --features axum --example users_api                       # serve
//! cargo run --features axum --example users_api -- issue-key --owner ada [--per-second 10 --burst 20 --per-day 100000]
//! ```
//!
//! Settings come from the environment; the README's table lists them all.

mod service;

use std::process::ExitCode;
use std::time::Duration;

use dynagate::http::TrustedProxies;
use dynagate::limiter::FailurePolicy;

fn env(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn config() -> Result<service::Config, String> {
    let number = |name: &str, default: u64| -> Result<u64, String> {
        match std::env::var(name).ok().filter(|v| !v.trim().is_empty()) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| format!("{name} must be a whole number, got `{v}`")),
        }
    };
    let mut config = service::Config::new(
        &env("USERS_TABLE", "users"),
        &env("API_KEYS_TABLE", "api_keys"),
        &env("REDIS_URL", "redis://127.0.0.1:6379"),
    );
    config.redis_cluster_urls = env("REDIS_CLUSTER_URLS", "")
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    config.limiter_prefix = env("LIMITER_PREFIX", "dynagate:rl:");
    let instances = u32::try_from(number("INSTANCES", 1)?).map_err(|_| "INSTANCES is too large")?;
    config.failure_policy = match env("LIMITER_FAILURE_POLICY", "fallback").as_str() {
        "fallback" => FailurePolicy::fallback(instances).map_err(|e| e.to_string())?,
        "fail-open" => FailurePolicy::FailOpen,
        "fail-closed" => FailurePolicy::FailClosed,
        other => {
            return Err(format!(
                "LIMITER_FAILURE_POLICY must be fallback, fail-open or fail-closed, got `{other}`"
            ));
        }
    };
    config.trusted_proxies =
        TrustedProxies::parse(&env("TRUSTED_PROXIES", "")).map_err(|e| e.to_string())?;
    config.dynamodb_deadline = Duration::from_millis(number("DYNAMODB_DEADLINE_MS", 2000)?);
    config.limiter_deadline = Duration::from_millis(number("LIMITER_DEADLINE_MS", 50)?);
    config.table_capacity =
        service::TableCapacitySetting::parse(&env("TABLE_CAPACITY", "describe"))?;
    config.capacity_prefix = env("CAPACITY_PREFIX", "dynagate:capacity");
    let d = service::Quotas::default();
    config.quotas = service::Quotas {
        key_per_second: number("KEY_PER_SECOND", d.key_per_second)?,
        key_burst: number("KEY_BURST", d.key_burst)?,
        key_per_day: number("KEY_PER_DAY", d.key_per_day)?,
        failed_auth_burst: number("FAILED_AUTH_BURST", d.failed_auth_burst)?,
        ip_per_second: number("IP_PER_SECOND", d.ip_per_second)?,
        ip_burst: number("IP_BURST", d.ip_burst)?,
    };
    Ok(config)
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(std::env::args().skip(1).collect()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Vec<String>) -> Result<(), String> {
    let config = config()?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let (state, limits) = service::build(&config, &aws).await?;
    match args.first().map(String::as_str) {
        Some("issue-key") => {
            let owner = flag(&args, "--owner").ok_or("issue-key needs --owner NAME")?;
            let number = |name: &str, default: u64| -> Result<u64, String> {
                flag(&args, name).map_or(Ok(default), |v| {
                    v.parse()
                        .map_err(|_| format!("{name} must be a whole number"))
                })
            };
            let key = state
                .keys
                .issue(
                    &owner,
                    number("--per-second", 10)?,
                    number("--burst", 20)?,
                    number("--per-day", 100_000)?,
                )
                .await?;
            println!("{key}");
            eprintln!(
                "API key for {owner}: shown once, stored only as its SHA-256 hash. Send it as X-API-Key."
            );
            Ok(())
        }
        None | Some("serve") => {
            let bind = env("BIND_ADDR", "127.0.0.1:3000");
            let listener = tokio::net::TcpListener::bind(&bind)
                .await
                .map_err(|e| format!("binding {bind}: {e}"))?;
            tracing::info!("users API listening on http://{bind} (OpenAPI at /openapi.json)");
            let shutdown =
                shutdown_signal().map_err(|e| format!("installing signal handlers: {e}"))?;
            // RATE_LIMITS=off drops the layer (and API keys): for measuring it only.
            let limits = (env("RATE_LIMITS", "on") != "off").then_some(limits);
            if limits.is_none() {
                tracing::warn!("RATE_LIMITS=off: no API keys, no rate limits (benchmarking only)");
            }
            service::run(listener, service::app(state, limits), shutdown)
                .await
                .map_err(|e| e.to_string())
        }
        Some(other) => Err(format!(
            "unknown command `{other}`: use `serve` or `issue-key --owner NAME`"
        )),
    }
}

/// Completes on SIGTERM or Ctrl-C: the server then stops accepting and lets
/// the requests in flight finish.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = interrupt.recv() => tracing::info!("Ctrl-C: shutting down"),
        }
    })
}
