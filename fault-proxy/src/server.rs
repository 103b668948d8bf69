//! Starting, running and stopping the proxy.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::capacity::CapacityModel;
use crate::config::ProxyConfig;
use crate::error::Error;
use crate::proxy::{self, Shared, lock};
use crate::rules::{Active, RuleSet};
use crate::stats::Stats;

/// How long [`RunningProxy::shutdown`] lets open connections finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Starts fault proxies.
#[derive(Debug)]
#[non_exhaustive]
pub struct FaultProxy;

impl FaultProxy {
    /// Binds `config.listen` and serves until [`RunningProxy::shutdown`] (or
    /// until the [`RunningProxy`] is dropped).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), dynagate_fault_proxy::Error> {
    /// use dynagate_fault_proxy::{FaultProxy, ProxyConfig, RuleSet};
    /// let rules = RuleSet::from_json(
    ///     r#"[{"table": "users", "capacity": {"write_units_per_second": 5}}]"#,
    /// )?;
    /// let config = ProxyConfig::default()
    ///     .with_listen("127.0.0.1:0".parse().unwrap())
    ///     .with_seed(7)
    ///     .with_rules(rules);
    /// let proxy = FaultProxy::start(config).await?;
    /// println!("point the SDK at {}", proxy.url());
    /// // ... drive traffic ...
    /// println!("{}", proxy.stats());
    /// proxy.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn start(config: ProxyConfig) -> Result<RunningProxy, Error> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        let seed = config.seed.unwrap_or_else(rand::random);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build_http();
        let shared = Arc::new(Shared {
            rules: RwLock::new(Arc::new(Active::new(config.rules))),
            capacity: Mutex::new(CapacityModel::default()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            stats: Mutex::new(Stats::default()),
            client,
            upstream: config.upstream,
        });
        let (shutdown, signal) = watch::channel(());
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), signal));
        tracing::info!(%local_addr, upstream = %shared.upstream, seed, "fault proxy listening");
        Ok(RunningProxy {
            local_addr,
            seed,
            shared,
            shutdown,
            task,
        })
    }
}

/// A proxy that is serving. Dropping it stops accepting connections.
pub struct RunningProxy {
    local_addr: SocketAddr,
    seed: u64,
    shared: Arc<Shared>,
    shutdown: watch::Sender<()>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for RunningProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningProxy")
            .field("local_addr", &self.local_addr)
            .field("upstream", &self.shared.upstream)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl RunningProxy {
    /// The address it listens on (the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://<local_addr>`, the endpoint URL to give the SDK.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// The seed of the proxy's RNG: pass it back in the config to replay a run.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        lock(&self.shared.stats).clone()
    }

    /// Zeroes the counters (the capacity banks are kept).
    pub fn reset_stats(&self) {
        *lock(&self.shared.stats) = Stats::default();
    }

    /// The rules in force.
    pub fn rules(&self) -> RuleSet {
        self.shared.rules().set().clone()
    }

    /// Replaces the rules from the next request on. A table whose capacity
    /// changes keeps what it has banked, cut to the new bank size.
    pub fn set_rules(&self, rules: RuleSet) {
        self.shared.set_rules(rules);
    }

    /// Stops accepting, lets open connections finish their current request
    /// (for up to 5 seconds), then returns.
    pub async fn shutdown(self) {
        let RunningProxy { shutdown, task, .. } = self;
        drop(shutdown);
        let _ = task.await;
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut signal: watch::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve(stream, Arc::clone(&shared), signal.clone()));
                }
                Err(error) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // The sender is dropped on shutdown (or with the RunningProxy).
            _ = signal.changed() => break,
        }
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
}

async fn serve(stream: TcpStream, shared: Arc<Shared>, mut signal: watch::Receiver<()>) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| proxy::handle(Arc::clone(&shared), request));
    let connection = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = signal.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
