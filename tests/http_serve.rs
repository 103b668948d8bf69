//! `dynagate::http::serve` attacked over real sockets on loopback: hundreds
//! of silent, partial and slow connections from one address, under a low
//! descriptor limit, while a client from another address is served.
//! (Issue 14, point 1: with `axum::serve` these stayed open 40 s and more and
//! 276 idle sockets made `/healthz` time out.)
#![cfg(feature = "axum")]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use dynagate::http::{ServeConfig, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;

const HEADER: Duration = Duration::from_secs(1);
const IDLE: Duration = Duration::from_secs(2);
const BODY: Duration = Duration::from_secs(2);

/// Lowers this test process's descriptor limit, as a small container has it.
fn limit_descriptors(max: u64) {
    let limit = libc::rlimit {
        rlim_cur: max,
        rlim_max: max,
    };
    // SAFETY: setrlimit reads the struct we pass and nothing else.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(rc, 0, "setrlimit: {}", std::io::Error::last_os_error());
}

async fn start(config: ServeConfig) -> SocketAddr {
    let app = Router::new()
        .route(
            "/whoami",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        )
        .route("/echo", post(|body: String| async move { body }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        serve(listener, app, config, std::future::pending::<()>())
            .await
            .unwrap();
    });
    addr
}

fn config() -> ServeConfig {
    ServeConfig::default()
        .header_timeout(HEADER)
        .idle_timeout(IDLE)
        .body_timeout(BODY)
        .max_connections(150)
        .max_per_address(32)
}

async fn connect_from(source: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(source.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    socket.connect(server).await.unwrap()
}

/// Reads until the server closes (EOF or reset), up to `within`; the time it took.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read_all)
        .await
        .ok()
        .map(|()| started.elapsed())
}

async fn get_whoami(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /whoami HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_idle_and_partial_connections_do_not_starve_another_client() {
    limit_descriptors(256);
    let server = start(config()).await;
    // 200 sockets from one address: 120 silent, 80 with half a request head.
    // Without a per-address cap the server's 200 descriptors plus these
    // client ones pass the limit of 256 and accept fails for everyone.
    let mut attackers = Vec::new();
    for n in 0..200 {
        let mut stream = connect_from("127.0.0.1", server).await;
        if n % 5 < 2 {
            stream
                .write_all(b"GET /whoami HTTP/1.1\r\nHost: t\r\nX-Slow: ")
                .await
                .unwrap();
        }
        attackers.push(stream);
    }
    let mut client = connect_from("127.0.0.2", server).await;
    let answer = get_whoami(&mut client).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with("127.0.0.2"),
        "ConnectInfo is the peer: {answer}"
    );
    drop(client);

    // Every attacker socket is closed: refused ones at once, accepted ones
    // by the header or idle timeout.
    let bound = IDLE + Duration::from_secs(2);
    for (n, stream) in attackers.iter_mut().enumerate() {
        assert!(
            closed_within(stream, bound).await.is_some(),
            "socket {n} still open after {bound:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_sent_a_byte_at_a_time_is_cut_at_the_header_timeout() {
    let server = start(config()).await;
    let mut stream = connect_from("127.0.0.3", server).await;
    stream.write_all(b"GET /whoami HTTP/1.1\r\n").await.unwrap();
    let started = Instant::now();
    // Bytes keep moving (so the idle timeout never fires), the head never ends.
    let trickle = async {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if stream.write_all(b"X-A: b\r\n").await.is_err() {
                return;
            }
        }
    };
    trickle.await;
    let mut buf = [0u8; 1024];
    let closed = matches!(
        tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_)) | Ok(Ok(_))
    );
    assert!(closed, "the connection is still open");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_a_byte_at_a_time_is_cut_at_the_body_timeout() {
    let server = start(config()).await;
    let mut stream = connect_from("127.0.0.4", server).await;
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    for _ in 0..40 {
        if stream.write_all(b"x").await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(250), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if !answer.is_empty() {
            break;
        }
    }
    let took = started.elapsed();
    assert!(
        took >= BODY && took < BODY + Duration::from_secs(2),
        "the slow body ended after {took:?}"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "a client error or a closed connection, never the echo: {answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_is_closed_after_the_idle_timeout() {
    let server = start(config()).await;
    let mut stream = connect_from("127.0.0.5", server).await;
    let answer = get_whoami(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // hyper's header-read timer also runs while a keep-alive connection
    // waits for its next head, so the shorter of the two closes it.
    let took = closed_within(&mut stream, IDLE + Duration::from_secs(2))
        .await
        .expect("closed");
    assert!(
        took >= HEADER.min(IDLE) - Duration::from_millis(200),
        "closed after {took:?}"
    );
}

#[tokio::test]
async fn settings_that_allow_nothing_are_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = serve(
        listener,
        Router::new(),
        ServeConfig::default().max_per_address(0),
        std::future::ready(()),
    )
    .await;
    assert!(refused.is_err());
}

/// Issue 14, point 11: the errors hyper answers by itself had empty bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_hyper_answers_itself_have_the_json_shape() {
    let server = start(config()).await;
    let huge_header = format!(
        "GET /whoami HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1_000_000)
    );
    for (request, status, code) in [
        (
            "NOT HTTP AT ALL\r\n\r\n".to_owned(),
            "400",
            "invalid_request",
        ),
        (huge_header, "431", "headers_too_large"),
    ] {
        let mut stream = connect_from("127.0.0.6", server).await;
        let _ = stream.write_all(request.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{answer}"
        );
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
        assert!(head.contains("application/problem+json"), "{head}");
        let json: serde_json::Value = serde_json::from_str(body).expect(body);
        assert_eq!(json["error"], code, "{body}");
        assert_eq!(json["type"], "about:blank", "{body}");
        assert_eq!(json["status"], status.parse::<u16>().unwrap(), "{body}");
    }
}
