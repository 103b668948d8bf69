//! The users API: dynagate's sample service.
//!
//! ```text
//! ./dev.sh run                                  # stack, tables, a demo key, the service
//! cargo run -p users-api                        # serve
//! cargo run -p users-api -- issue-key --owner ada [--per-second 10 --burst 20 --per-day 100000]
//! ```
//!
//! Settings come from the environment; the README's table lists them all.

use std::process::ExitCode;

use users_api::config::env_or;
use users_api::{AppState, Config};

#[tokio::main]
async fn main() -> ExitCode {
    // Logs go to stderr: stdout carries what a command prints for scripts
    // (the key of `issue-key`), so `KEY=$(users-api issue-key ...)` is one line.
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match env_or("LOG_FORMAT", "text").as_str() {
        "json" => logs.json().init(),
        _ => logs.init(),
    }
    match run(std::env::args().skip(1).collect()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Vec<String>) -> Result<(), String> {
    let config = Config::from_env()?;
    users_api::check_rate_limit_config(&config)?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let (state, limits) = users_api::build(&config, &aws).await?;
    match args.first().map(String::as_str) {
        Some("issue-key") => issue_key(&args, &state, &config).await,
        None | Some("serve") => serve(state, limits, &config).await,
        Some(other) => Err(format!(
            "unknown command `{other}`: use `serve` or `issue-key --owner NAME`"
        )),
    }
}

/// Serves the API on `BIND_ADDR` and the operational endpoints on
/// `OPS_BIND_ADDR`, until SIGTERM or Ctrl-C.
async fn serve(
    state: AppState,
    limits: dynagate::http::RateLimitLayer,
    config: &Config,
) -> Result<(), String> {
    let bind = env_or("BIND_ADDR", "127.0.0.1:3000");
    let ops_bind = env_or("OPS_BIND_ADDR", "127.0.0.1:9090");
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .map_err(|e| format!("binding {bind}: {e}"))?;
    let ops_listener = tokio::net::TcpListener::bind(&ops_bind)
        .await
        .map_err(|e| format!("binding OPS_BIND_ADDR {ops_bind}: {e}"))?;
    tracing::info!("users API listening on http://{bind} (OpenAPI at /openapi.json)");
    tracing::info!("/metrics and /readyz on http://{ops_bind}");
    let shutdown = shutdown_signal().map_err(|e| format!("installing signal handlers: {e}"))?;
    // RATE_LIMITS=off drops the layer (and API keys): for measuring it only.
    let limits = (env_or("RATE_LIMITS", "on") != "off").then_some(limits);
    if limits.is_none() {
        tracing::warn!("RATE_LIMITS=off: no API keys, no rate limits (benchmarking only)");
    }
    let (stop_ops, ops_stopped) = tokio::sync::oneshot::channel::<()>();
    let ops = tokio::spawn(users_api::run(
        ops_listener,
        users_api::ops_app(state.clone()),
        config.connections.clone(),
        async {
            let _ = ops_stopped.await;
        },
    ));
    let served = users_api::run(
        listener,
        users_api::app(state, limits),
        config.connections.clone(),
        shutdown,
    )
    .await;
    let _ = stop_ops.send(());
    let _ = ops.await;
    served
}

/// `issue-key --owner NAME [--per-second N --burst N --per-day N]`: prints a
/// new key on stdout, where scripts capture it. A flag left out takes the
/// configured default (`KEY_PER_SECOND`, `KEY_BURST`, `KEY_PER_DAY`).
async fn issue_key(args: &[String], state: &AppState, config: &Config) -> Result<(), String> {
    let owner = flag(args, "--owner").ok_or("issue-key needs --owner NAME")?;
    let number = |name: &str, default: u64| -> Result<u64, String> {
        flag(args, name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| format!("{name} must be a whole number"))
        })
    };
    let key = state
        .keys
        .issue(
            &owner,
            number("--per-second", config.quotas.key_per_second)?,
            number("--burst", config.quotas.key_burst)?,
            number("--per-day", config.quotas.key_per_day)?,
        )
        .await?;
    // An audit line (never the key), on stderr with every other log line.
    tracing::info!(owner = %owner, "API key issued");
    println!("{key}");
    eprintln!(
        "API key for {owner}: shown once, stored only as its SHA-256 hash. Send it as X-API-Key."
    );
    Ok(())
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
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
