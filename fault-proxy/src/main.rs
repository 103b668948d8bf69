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
    eprintln!(
        "dynagate-fault-proxy: listening on {}, forwarding to {upstream}, {rules} rule(s), seed {}",
        proxy.url(),
        proxy.seed()
    );
    if let Err(error) = shutdown_signal().await {
        eprintln!("dynagate-fault-proxy: cannot wait for signals: {error}");
        return ExitCode::FAILURE;
    }
    let stats = proxy.stats();
    proxy.shutdown().await;
    println!("{stats}");
    ExitCode::SUCCESS
}

async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}
