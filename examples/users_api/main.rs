//! The users API: dynagate's sample service.
//!
//! ```text
//! ./dev.sh run                                   # stack, tables, a demo key, the service
//! cargo run --features axum --example users_api                       # serve
//! cargo run --features axum --example users_api -- issue-key --owner ada [--per-second 10 --burst 20 --per-day 100000]
//! ```
//!
//! Settings (environment): `BIND_ADDR` (127.0.0.1:3000), `USERS_TABLE` (users),
//! `API_KEYS_TABLE` (api_keys), `REDIS_URL` (redis://127.0.0.1:6379),
//! `TRUSTED_PROXIES` (comma-separated CIDRs, none by default), `INSTANCES`
//! (instances sharing the quotas, 1), `DYNAMODB_DEADLINE_MS` (2000),
//! `LIMITER_DEADLINE_MS` (50), the AWS
//! chain (`AWS_ENDPOINT_URL`, `AWS_REGION`, credentials) and `RUST_LOG`.

mod service;

use std::process::ExitCode;
use std::time::Duration;

use dynagate::http::TrustedProxies;

fn env(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn config() -> Result<service::Config, String> {
    let number = |name: &str, default: &str| -> Result<u64, String> {
        env(name, default)
            .parse()
            .map_err(|_| format!("{name} must be a whole number"))
    };
    Ok(service::Config {
        users_table: env("USERS_TABLE", "users"),
        keys_table: env("API_KEYS_TABLE", "api_keys"),
        redis_url: env("REDIS_URL", "redis://127.0.0.1:6379"),
        limiter_prefix: env("LIMITER_PREFIX", "dynagate:rl:"),
        trusted_proxies: TrustedProxies::parse(&env("TRUSTED_PROXIES", ""))
            .map_err(|e| e.to_string())?,
        instances: u32::try_from(number("INSTANCES", "1")?)
            .map_err(|_| "INSTANCES is too large".to_owned())?,
        dynamodb_deadline: Duration::from_millis(number("DYNAMODB_DEADLINE_MS", "2000")?),
        limiter_deadline: Duration::from_millis(number("LIMITER_DEADLINE_MS", "50")?),
    })
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
            let shutdown = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            service::run(listener, service::app(state, limits), shutdown)
                .await
                .map_err(|e| e.to_string())
        }
        Some(other) => Err(format!(
            "unknown command `{other}`: use `serve` or `issue-key --owner NAME`"
        )),
    }
}
