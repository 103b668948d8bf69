//! Where the servers are (environment variables with local defaults), names
//! no other test uses, and whether a server answers at all.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The command that starts every server the tests need.
pub const START_COMMAND: &str = "stack/stack.sh start";
/// The command that starts the stack and runs the whole suite.
pub const TEST_COMMAND: &str = "./dev.sh test";

const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8000";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
const DEFAULT_CLUSTER_URLS: &str =
    "redis://127.0.0.1:7000,redis://127.0.0.1:7001,redis://127.0.0.1:7002";
const REACH_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

pub fn dynamodb_endpoint() -> String {
    env_or("AWS_ENDPOINT_URL", DEFAULT_ENDPOINT)
}

pub fn redis_url() -> String {
    env_or("REDIS_URL", DEFAULT_REDIS_URL)
}

pub fn cluster_urls() -> Vec<String> {
    env_or("REDIS_CLUSTER_URLS", DEFAULT_CLUSTER_URLS)
        .split(',')
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect()
}

/// A name no other test, process or earlier run uses: `<prefix>-<pid>-<time>-<n>`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros();
    format!(
        "{prefix}-{}-{micros}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

// ------------------------------------------------------------ reachability --

/// `host:port` of a URL such as `http://127.0.0.1:8000` or `redis://h:6379/0`.
pub fn host_port(url: &str, default_port: u16) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:{default_port}")
    }
}

/// Ok when something accepts TCP connections at `url`; otherwise the message a
/// failing test shows: what is missing, where, and which command starts it.
pub fn check_reachable(what: &str, url: &str, default_port: u16) -> Result<(), String> {
    let address = host_port(url, default_port);
    let addrs: Vec<SocketAddr> = address
        .to_socket_addrs()
        .map_err(|e| format!("{what}: cannot resolve {address} from {url}: {e}"))?
        .collect();
    let mut last_error = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, REACH_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(e) => last_error = Some(e),
        }
    }
    Err(format!(
        "{what} is not reachable at {url} ({}). Start the local stack with `{START_COMMAND}` \
         (or run the whole suite with `{TEST_COMMAND}`), or point the tests elsewhere with the \
         environment variables in tests/common/mod.rs.",
        last_error.map_or_else(|| "no address".to_owned(), |e| e.to_string())
    ))
}

pub(super) fn require_reachable(what: &str, url: &str, default_port: u16) {
    if let Err(message) = check_reachable(what, url, default_port) {
        panic!("{message}");
    }
}

pub(super) fn is_loopback(url: &str) -> bool {
    let address = host_port(url, 0);
    let host = address
        .rsplit_once(':')
        .map_or(address.as_str(), |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
