//! The users API: dynagate's sample service.
//!
//! ```text
//! ./dev.sh run                                  # stack, tables, a demo key, the service
//! cargo run -p users-api                        # serve
//! cargo run -p users-api -- issue-key --owner ada [--per-second 10 --burst 20 --per-day 100000] [--expires-in 30d]
//! cargo run -p users-api -- revoke-key --key-id ID
//! cargo run -p users-api -- rotate-key --key-id ID [--grace 24h] [--expires-in 90d]
//! cargo run -p users-api -- suspend-key --key-id ID [--for 1h] [--reason TEXT]
//! cargo run -p users-api -- unsuspend-key --key-id ID
//! ```
//!
//! A key's id is the first 16 hex digits of its SHA-256 hash: not secret,
//! printed by `issue-key` and shown in logs.
//!
//! Settings come from the environment; the README's table lists them all.

use std::process::ExitCode;
use std::time::Duration;

use users_api::config::env_or;
use users_api::key_admin::{parse_duration, valid_key_id};
use users_api::keys::{REFUSALS_CACHED_FOR, REVALIDATE_AFTER, key_id_of};
use users_api::{AppState, Config};

/// mimalloc instead of glibc's allocator: a request allocates many small,
/// short-lived buffers across the runtime's worker threads, and under load
/// `perf` found much of the service's CPU in glibc's malloc, free and arena
/// consolidation (`benches/compare/users_api_wrk.sh` measures the service's
/// CPU per request).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    // Flags are checked before connecting anywhere: a typo fails at once.
    let command = Command::parse(&args)?;
    let config = Config::from_env()?;
    users_api::check_rate_limit_config(&config)?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let (state, limits) = users_api::build(&config, &aws).await?;
    let keys = &state.keys;
    match command {
        Command::Serve => serve(state, limits, &config).await,
        Command::IssueKey(flags) => issue_key(&flags, &state, &config).await,
        Command::RevokeKey(flags) => {
            let record = keys.revoke(&flags.key_id()?).await?;
            tracing::info!(key_id = %record.key_id(), owner = %record.owner, "API key revoked");
            eprintln!(
                "API key {} of {} revoked: every instance refuses it within {} s.",
                record.key_id(),
                record.owner,
                REVALIDATE_AFTER.as_secs()
            );
            Ok(())
        }
        Command::RotateKey(flags) => {
            let grace = flags.duration("--grace")?.unwrap_or(DEFAULT_GRACE);
            let expires_in = flags.duration("--expires-in")?;
            let (key, old) = keys.rotate(&flags.key_id()?, grace, expires_in).await?;
            tracing::info!(key_id = %old.key_id(), new_key_id = %key_id_of(&key),
                owner = %old.owner, "API key rotated");
            println!("{key}");
            eprintln!(
                "New API key for {} (id {}): shown once. The old key {} stays valid for {} s.",
                old.owner,
                key_id_of(&key),
                old.key_id(),
                grace.as_secs()
            );
            Ok(())
        }
        Command::SuspendKey(flags) => {
            let duration = flags
                .duration("--for")?
                .unwrap_or(config.key_abuse.suspension);
            let reason = flags
                .get("--reason")
                .unwrap_or_else(|| "suspended by an operator".to_owned());
            let record = keys.suspend(&flags.key_id()?, duration, &reason).await?;
            tracing::warn!(key_id = %record.key_id(), reason = %reason,
                "API key suspended by an operator");
            eprintln!(
                "API key {} suspended for {} s: every instance refuses it within {} s.",
                record.key_id(),
                duration.as_secs(),
                REVALIDATE_AFTER.as_secs()
            );
            Ok(())
        }
        Command::UnsuspendKey(flags) => {
            let record = keys.unsuspend(&flags.key_id()?).await?;
            tracing::info!(key_id = %record.key_id(), "API key suspension lifted");
            eprintln!(
                "API key {} usable again: on every instance within {} s.",
                record.key_id(),
                REFUSALS_CACHED_FOR.as_secs()
            );
            Ok(())
        }
    }
}

/// How long a rotated key keeps working when `--grace` is not given.
const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);

const USAGE: &str = "use `serve`, `issue-key --owner NAME [--expires-in 30d]`, \
    `revoke-key --key-id ID`, `rotate-key --key-id ID [--grace 24h]`, \
    `suspend-key --key-id ID [--for 1h --reason TEXT]` or `unsuspend-key --key-id ID`";

/// A subcommand and its flags.
#[derive(Debug, PartialEq)]
enum Command {
    Serve,
    IssueKey(Flags),
    RevokeKey(Flags),
    RotateKey(Flags),
    SuspendKey(Flags),
    UnsuspendKey(Flags),
}

impl Command {
    fn parse(args: &[String]) -> Result<Command, String> {
        let rest = args.get(1..).unwrap_or_default();
        let command = args.first().map_or("serve", String::as_str);
        let flags = |allowed: &[&str]| Flags::parse(command, rest, allowed);
        Ok(match command {
            "serve" => {
                flags(&[])?;
                Command::Serve
            }
            "issue-key" => Command::IssueKey(flags(&[
                "--owner",
                "--per-second",
                "--burst",
                "--per-day",
                "--expires-in",
            ])?),
            "revoke-key" => Command::RevokeKey(flags(&["--key-id"])?),
            "rotate-key" => Command::RotateKey(flags(&["--key-id", "--grace", "--expires-in"])?),
            "suspend-key" => Command::SuspendKey(flags(&["--key-id", "--for", "--reason"])?),
            "unsuspend-key" => Command::UnsuspendKey(flags(&["--key-id"])?),
            other => return Err(format!("unknown command `{other}`: {USAGE}")),
        })
    }
}

/// The `--name value` pairs of one subcommand.
#[derive(Debug, PartialEq)]
struct Flags {
    command: String,
    values: Vec<(String, String)>,
}

impl Flags {
    fn parse(command: &str, args: &[String], allowed: &[&str]) -> Result<Flags, String> {
        let mut values = Vec::new();
        let mut args = args.iter();
        while let Some(name) = args.next() {
            if !allowed.contains(&name.as_str()) {
                let takes = if allowed.is_empty() {
                    "no flags".to_owned()
                } else {
                    allowed.join(", ")
                };
                return Err(format!(
                    "{command} does not take `{name}`: it takes {takes}"
                ));
            }
            match args.next() {
                Some(value) if !value.starts_with("--") => {
                    values.push((name.clone(), value.clone()));
                }
                _ => return Err(format!("{command}: {name} needs a value")),
            }
        }
        Ok(Flags {
            command: command.to_owned(),
            values,
        })
    }

    /// The flag's value (the last one when given twice).
    fn get(&self, name: &str) -> Option<String> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    fn key_id(&self) -> Result<String, String> {
        let id = self
            .get("--key-id")
            .ok_or_else(|| format!("{} needs --key-id ID", self.command))?;
        valid_key_id(&id)?;
        Ok(id)
    }

    fn duration(&self, name: &str) -> Result<Option<Duration>, String> {
        self.get(name)
            .map(|v| parse_duration(&v).map_err(|e| format!("{name}: {e}")))
            .transpose()
    }
}

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

/// `issue-key --owner NAME [--per-second N --burst N --per-day N]
/// [--expires-in DURATION]`: prints a new key on stdout, where scripts
/// capture it. A quota flag left out takes the configured default
/// (`KEY_PER_SECOND`, `KEY_BURST`, `KEY_PER_DAY`).
async fn issue_key(flags: &Flags, state: &AppState, config: &Config) -> Result<(), String> {
    let owner = flags.get("--owner").ok_or("issue-key needs --owner NAME")?;
    let number = |name: &str, default: u64| -> Result<u64, String> {
        flags.get(name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| format!("{name} must be a whole number, got `{v}`"))
        })
    };
    let expires_in = flags.duration("--expires-in")?;
    let key = state
        .keys
        .issue_expiring(
            &owner,
            number("--per-second", config.quotas.key_per_second)?,
            number("--burst", config.quotas.key_burst)?,
            number("--per-day", config.quotas.key_per_day)?,
            expires_in,
        )
        .await?;
    let key_id = key_id_of(&key);
    // An audit line (never the key), on stderr with every other log line.
    tracing::info!(owner = %owner, key_id = %key_id, "API key issued");
    println!("{key}");
    let expiry = expires_in.map_or(String::new(), |d| format!(", expires in {} s", d.as_secs()));
    eprintln!(
        "API key for {owner} (id {key_id}{expiry}): shown once, stored only as its SHA-256 \
         hash. Send it as X-API-Key."
    );
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn subcommands_take_their_flags_and_errors_name_the_flag() {
        assert_eq!(Command::parse(&[]), Ok(Command::Serve));
        let Ok(Command::RotateKey(flags)) =
            Command::parse(&args("rotate-key --key-id 0123456789abcdef --grace 2h"))
        else {
            panic!("rotate-key parses");
        };
        assert_eq!(flags.key_id().as_deref(), Ok("0123456789abcdef"));
        assert_eq!(
            flags.duration("--grace"),
            Ok(Some(Duration::from_secs(7200)))
        );
        assert_eq!(flags.duration("--expires-in"), Ok(None));

        let err = Command::parse(&args("revoke-key --key 0123456789abcdef")).unwrap_err();
        assert!(
            err.contains("does not take `--key`") && err.contains("--key-id"),
            "{err}"
        );
        let err = Command::parse(&args("revoke-key --key-id")).unwrap_err();
        assert!(err.contains("--key-id needs a value"), "{err}");
        let err = Command::parse(&args("delete-key")).unwrap_err();
        assert!(err.contains("unknown command `delete-key`"), "{err}");

        let Ok(Command::RevokeKey(flags)) = Command::parse(&args("revoke-key --key-id ABC")) else {
            panic!("parses; the id is checked when used");
        };
        assert!(flags.key_id().unwrap_err().contains("--key-id must be 16"));
        let Ok(Command::UnsuspendKey(flags)) = Command::parse(&args("unsuspend-key")) else {
            panic!("parses; the missing id is named when used");
        };
        assert!(flags.key_id().unwrap_err().contains("needs --key-id"));
        let Ok(Command::IssueKey(flags)) =
            Command::parse(&args("issue-key --owner ada --expires-in 30x"))
        else {
            panic!("issue-key parses");
        };
        let err = flags.duration("--expires-in").unwrap_err();
        assert!(
            err.starts_with("--expires-in: `30x` is not a duration"),
            "{err}"
        );
    }
}
