//! Serving a router with the connection-level defences that `axum::serve`
//! leaves out: `axum::serve` runs hyper without a timer, which turns hyper's
//! header-read timeout off, and it has no idle or body timeout and no cap on
//! connections, so a few hundred silent sockets from one address exhaust the
//! process's descriptors and nothing is logged.
//!
//! [`serve`] accepts connections itself: over the caps a connection is
//! closed at once (and counted and logged); under them it gets hyper's HTTP/1
//! server with a header-read timeout, an idle timeout on the socket, and a
//! deadline on every request body; the errors hyper answers by itself (400,
//! 414, 431) get the API's error shape (problem details). Accept errors are
//! logged; on running out of descriptors it pauses briefly instead of
//! spinning.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::error::ConfigError;
use crate::http::TrustedProxies;
use crate::http::client_ip::subject;
use crate::http::conn_limits::{BodyDeadline, Connections, IdleTimeout, Refused};
use crate::http::stack_errors::JsonErrors;

/// The connection limits of [`serve`]; the defaults suit an API service.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    header_timeout: Duration,
    idle_timeout: Duration,
    body_timeout: Duration,
    max_connections: usize,
    max_per_address: usize,
    ipv6_prefix: u8,
    proxies: TrustedProxies,
    drain: Duration,
}

impl Default for ServeConfig {
    /// Headers within 5 s, a socket idle for at most 30 s, bodies within
    /// 10 s, 1,000 connections in total, 64 per client address (IPv6 by
    /// /64), 10 s for requests in flight at shutdown.
    fn default() -> Self {
        ServeConfig {
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(10),
            max_connections: 1_000,
            max_per_address: 64,
            ipv6_prefix: 64,
            proxies: TrustedProxies::none(),
            drain: Duration::from_secs(10),
        }
    }
}

impl ServeConfig {
    /// The time a client has to send a request's head; hyper also runs it
    /// while a keep-alive connection waits for its next request, so it
    /// bounds idle keep-alives too.
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// The longest a connection may move no byte: silent sockets, idle
    /// keep-alives and stalled bodies are closed after it.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The time a client has to send a whole request body.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// Connections open at once; keep it under the process's descriptor
    /// limit so that `accept` itself never fails for want of one.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// Connections open at once from one client address (IPv6: one
    /// [`ipv6_prefix`](Self::ipv6_prefix) network). Trusted proxies count
    /// only in the total.
    pub fn max_per_address(mut self, max: usize) -> Self {
        self.max_per_address = max;
        self
    }

    /// The prefix that groups IPv6 peers into one address (default 64).
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits;
        self
    }

    /// Peers exempt from the per-address cap: the operator's own proxies,
    /// whose connections carry many clients.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// How long requests in flight may run after shutdown begins.
    pub fn drain(mut self, drain: Duration) -> Self {
        self.drain = drain;
        self
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (setting, value) in [
            ("header_timeout", self.header_timeout),
            ("idle_timeout", self.idle_timeout),
            ("body_timeout", self.body_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::invalid(setting, "must be above zero"));
            }
        }
        if self.max_connections == 0 || self.max_per_address == 0 {
            return Err(ConfigError::invalid(
                "max_connections",
                "both caps must allow at least one connection",
            ));
        }
        if self.ipv6_prefix > 128 {
            return Err(ConfigError::invalid("ipv6_prefix", "at most 128 bits"));
        }
        Ok(())
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets the
/// requests in flight finish (up to the config's drain time). Handlers see
/// the peer as `ConnectInfo<SocketAddr>`, as with
/// `into_make_service_with_connect_info`.
///
/// Metrics: the gauge `dynagate_http_connections_open` and
/// `dynagate_http_connections_refused_total{reason}` (`total`,
/// `per_address`), `dynagate_http_accept_errors_total`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ConfigError> {
    config.validate()?;
    let connections = Connections::new(config.max_connections, config.max_per_address);
    let (stop, stopping) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let config = Arc::new(config);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    metrics::counter!("dynagate_http_accept_errors_total").increment(1);
                    tracing::warn!(%error, "accept failed");
                    // Out of descriptors: give closing connections a moment.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while tasks.try_join_next().is_some() {}
        let address =
            (!config.proxies.contains(peer.ip())).then(|| subject(peer.ip(), config.ipv6_prefix));
        let slot = match connections.admit(address) {
            Ok(slot) => slot,
            Err(reason) => {
                refused(peer, reason);
                drop(stream);
                continue;
            }
        };
        let app = app.clone();
        let config = Arc::clone(&config);
        let mut stopping = stopping.clone();
        tasks.spawn(async move {
            let _slot = slot;
            let io = TokioIo::new(JsonErrors::new(IdleTimeout::new(
                stream,
                config.idle_timeout,
            )));
            let body_timeout = config.body_timeout;
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let mut request =
                    request.map(|body| Body::new(BodyDeadline::new(body, body_timeout)));
                request.extensions_mut().insert(ConnectInfo(peer));
                let app = app.clone();
                async move { Ok::<_, Infallible>(infallible(app.oneshot(request).await)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(config.header_timeout)
                .serve_connection(io, service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => log_end(peer, result),
                () = async {
                    // The guard wait_for returns is not Send: drop it here.
                    let _ = stopping.wait_for(|stop| *stop).await;
                } => {
                    connection.as_mut().graceful_shutdown();
                    log_end(peer, connection.await);
                }
            }
        });
    }
    let _ = stop.send(true);
    let drained = tokio::time::timeout(config.drain, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.open(),
            "requests still in flight after the drain time; closing them"
        );
        tasks.abort_all();
    }
    Ok(())
}

fn infallible<T>(result: Result<T, Infallible>) -> T {
    match result {
        Ok(value) => value,
        Err(never) => match never {},
    }
}

fn refused(peer: SocketAddr, reason: Refused) {
    metrics::counter!("dynagate_http_connections_refused_total", "reason" => reason.label())
        .increment(1);
    tracing::warn!(peer = %peer.ip(), reason = reason.label(), "connection refused: over the cap");
}

fn log_end(peer: SocketAddr, result: Result<(), hyper::Error>) {
    if let Err(error) = result {
        // Timeouts and clients that hang up are routine; debug level.
        tracing::debug!(peer = %peer.ip(), %error, "connection closed");
    }
}
