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
    let config = Config::from_env()?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let (state, limits) = users_api::build(&config, &aws).await?;
    match args.first().map(String::as_str) {
        Some("issue-key") => issue_key(&args, &state).await,
        None | Some("serve") => {
            let bind = env_or("BIND_ADDR", "127.0.0.1:3000");
            let listener = tokio::net::TcpListener::bind(&bind)
                .await
                .map_err(|e| format!("binding {bind}: {e}"))?;
            tracing::info!("users API listening on http://{bind} (OpenAPI at /openapi.json)");
            let shutdown =
                shutdown_signal().map_err(|e| format!("installing signal handlers: {e}"))?;
            // RATE_LIMITS=off drops the layer (and API keys): for measuring it only.
            let limits = (env_or("RATE_LIMITS", "on") != "off").then_some(limits);
            if limits.is_none() {
                tracing::warn!("RATE_LIMITS=off: no API keys, no rate limits (benchmarking only)");
            }
            users_api::run(listener, users_api::app(state, limits), shutdown)
                .await
                .map_err(|e| e.to_string())
        }
        Some(other) => Err(format!(
            "unknown command `{other}`: use `serve` or `issue-key --owner NAME`"
        )),
    }
}

/// `issue-key --owner NAME [--per-second N --burst N --per-day N]`: prints a
/// new key on stdout, where scripts capture it.
async fn issue_key(args: &[String], state: &AppState) -> Result<(), String> {
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
