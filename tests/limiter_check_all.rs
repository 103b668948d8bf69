//! `check_all` on the shared single Redis (`REDIS_URL`), through a counting
//! proxy that records every command the limiter sends: every check of one
//! request is one `EVALSHA`, all or nothing; a shadow check takes on its own;
//! a subject the deny cache knows is refused with no command at all.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dynagate::limiter::{Check, DecidedBy, Limits, Quota, RateLimiter, RedisLimiter};
use redis::AsyncCommands;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy to Redis that records the name of every command clients send.
struct CountingProxy {
    url: String,
    commands: Arc<Mutex<Vec<String>>>,
}

impl CountingProxy {
    async fn start(upstream: String) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let commands = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&commands);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&upstream).await.unwrap();
                tokio::spawn(relay(client, server, Arc::clone(&recorded)));
            }
        });
        CountingProxy { url, commands }
    }

    /// The commands sent since the last call.
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.commands.lock().unwrap())
    }
}

/// Copies both ways, parsing what the client sends (RESP arrays of bulk
/// strings, all redis-rs writes) to record each command's name.
async fn relay(client: TcpStream, server: TcpStream, commands: Arc<Mutex<Vec<String>>>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let replies = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    });
    let mut pending = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let n = match client_read.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buffer[..n]);
        while let Some((name, used)) = parse_command(&pending) {
            commands.lock().unwrap().push(name);
            pending.drain(..used);
        }
        if server_write.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    replies.abort();
}

/// The name of the first complete command in `bytes` and its length.
fn parse_command(bytes: &[u8]) -> Option<(String, usize)> {
    fn line(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let end = bytes[at..].windows(2).position(|w| w == b"\r\n")? + at;
        Some((&bytes[at..end], end + 2))
    }
    let (header, mut at) = line(bytes, 0)?;
    assert_eq!(header[0], b'*', "redis-rs sends arrays");
    let count: usize = std::str::from_utf8(&header[1..]).ok()?.parse().ok()?;
    let mut name = None;
    for _ in 0..count {
        let (size, start) = line(bytes, at)?;
        let size: usize = std::str::from_utf8(&size[1..]).ok()?.parse().ok()?;
        let end = start + size;
        (bytes.len() >= end + 2).then_some(())?;
        name.get_or_insert_with(|| String::from_utf8_lossy(&bytes[start..end]).to_uppercase());
        at = end + 2;
    }
    Some((name?, at))
}

async fn limiter_through(proxy: &CountingProxy, prefix: &str) -> RedisLimiter {
    let client = redis::Client::open(proxy.url.as_str()).unwrap();
    let manager = redis::aio::ConnectionManager::new(client).await.unwrap();
    RedisLimiter::builder(manager)
        .prefix(prefix)
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap()
}

fn per_hour(namespace: &str, burst: u64) -> Limits {
    Limits::single(namespace, "hour", Quota::per_hour(1).burst(burst).unwrap()).unwrap()
}

async fn tats(connection: &mut redis::aio::ConnectionManager, keys: &[String]) -> Vec<Option<u64>> {
    let mut tats = Vec::new();
    for key in keys {
        tats.push(connection.get(key).await.unwrap());
    }
    tats
}

#[tokio::test]
async fn every_check_of_a_request_is_one_evalsha_and_all_or_nothing() {
    let (mut direct, keys) = common::redis().await;
    let proxy = CountingProxy::start(common::host_port(&common::redis_url(), 6379)).await;
    let limiter = limiter_through(&proxy, keys.prefix()).await;
    let (ip, key, route, shadow) = (
        per_hour("ip", 10),
        per_hour("key", 5),
        per_hour("route", 1),
        per_hour("shadow", 10),
    );
    let checks = [
        Check::new(&ip, "203.0.113.9", 1),
        Check::new(&key, "key-1", 2),
        Check::new(&route, "GET /users/{id}", 1),
        Check::new(&shadow, "key-1", 1).independent(),
    ];
    let bucket_keys: Vec<String> = checks
        .iter()
        .map(|c| limiter.keys(c.limits, c.subject).remove(0))
        .collect();
    // Connection setup and the scripts' first load are not the request's: on
    // a fresh Redis the lone check's script is not loaded yet either (CI's
    // fresh stack answered its first EVALSHA with NOSCRIPT, then EVAL).
    limiter.load_script().await.unwrap();
    let warm_up = [
        Check::new(&ip, "warm-up", 1),
        Check::new(&key, "warm-up", 1),
    ];
    assert!(limiter.check_all(&warm_up).await.admitted);
    proxy.take();

    let first = limiter.check_all(&checks).await;
    assert_eq!(proxy.take(), ["EVALSHA"], "one round trip for four checks");
    assert!(first.admitted, "{first:?}");
    assert!(
        first
            .each
            .iter()
            .all(|d| d.decided_by() == DecidedBy::Redis)
    );
    assert_eq!(
        first.each.iter().map(|d| d.remaining()).collect::<Vec<_>>(),
        [9, 3, 0, 9],
        "each its own cost"
    );
    let taken = tats(&mut direct, &bucket_keys).await;
    assert!(
        taken.iter().all(Option::is_some),
        "every bucket took: {taken:?}"
    );

    let second = limiter.check_all(&checks).await;
    assert_eq!(proxy.take(), ["EVALSHA"]);
    assert!(!second.admitted);
    assert_eq!(second.refused_by(&checks), Some(2), "the route is spent");
    assert!(second.each[0].allowed() && second.each[1].allowed());
    let after = tats(&mut direct, &bucket_keys).await;
    assert_eq!(
        after[..3],
        taken[..3],
        "the refused request left the address, key and route buckets as they were"
    );
    assert!(
        after[3] > taken[3],
        "the shadow check took its token on its own: {after:?}"
    );

    // The route's denial is cached: the same request asks nothing.
    let third = limiter.check_all(&checks).await;
    assert_eq!(proxy.take(), Vec::<String>::new(), "no command at all");
    assert!(!third.admitted);
    assert_eq!(third.each[2].decided_by(), DecidedBy::DenyCache);
    for i in [0, 1, 3] {
        assert_eq!(third.each[i].decided_by(), DecidedBy::NotAsked, "check {i}");
    }
    assert_eq!(
        tats(&mut direct, &bucket_keys).await,
        after,
        "nothing moved"
    );

    // A lone check is the shorter script, still one command.
    assert!(limiter.check(&ip, "203.0.113.9", 1).await.allowed());
    assert_eq!(proxy.take(), ["EVALSHA"]);
    keys.cleanup().await;
}
