//! `dynagate-fault-proxy`: runs the fault proxy until SIGINT or SIGTERM, then
//! prints its counters and exits 0. See `--help`.

use std::process::ExitCode;

use dynagate_fault_proxy::FaultProxy;
use dynagate_fault_proxy::cli::{self, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match cli::parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(config)) => *config,
        Ok(_) => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("dynagate-fault-proxy: {error}");
            return ExitCode::from(2);
        }
    };
    let rules = config.rules.rules().len();
    let upstream = config.upstream.clone();
    let proxy = match FaultProxy::start(config).await {
        Ok(proxy) => proxy,
        Err(error) => {
            eprintln!("dynagate-fault-proxy: {error}");
            return ExitCode::FAILURE;
        }
    };
    // The handlers are installed before the banner: whoever waits for the
    // banner to send SIGTERM must find them in place.
    let shutdown = match shutdown_signal() {
        Ok(shutdown) => shutdown,
        Err(error) => {
            eprintln!("dynagate-fault-proxy: cannot wait for signals: {error}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "dynagate-fault-proxy: listening on {}, forwarding to {upstream}, {rules} rule(s), seed {}",
        proxy.url(),
        proxy.seed()
    );
    shutdown.await;
    let stats = proxy.stats();
    proxy.shutdown().await;
    println!("{stats}");
    ExitCode::SUCCESS
}

/// Registers for SIGTERM and SIGINT now; the future completes on either.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
