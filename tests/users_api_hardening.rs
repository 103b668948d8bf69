//! The users API's hardening, over a real socket (issue 14): what the HTTP
//! stack answers before a handler runs.

mod common;
mod users_api_server;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use users_api_server::Api;

/// Point 13: a 1 MB `Content-Length` with `Expect: 100-continue` got
/// `100 Continue` before the 413, inviting the client to send the megabyte.
#[tokio::test]
async fn an_oversized_body_is_refused_before_100_continue() {
    let api = Api::start().await;
    let mut stream = TcpStream::connect(api.addr()).await.unwrap();
    let head = format!(
        "POST /api/v1/users HTTP/1.1\r\nHost: t\r\nX-API-Key: {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000000\r\n\
         Expect: 100-continue\r\n\r\n",
        api.key
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("an answer without the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert!(
        answer.contains("\"too_large\""),
        "the API's error shape: {answer}"
    );
}

/// Point 2: key lookups pass the capacity gate of the keys table, so a flood
/// of unknown keys from many addresses cannot take that table's capacity:
/// beyond it, lookups are refused before they are sent (503, Retry-After).
#[tokio::test]
async fn key_lookups_pass_the_keys_tables_capacity_gate() {
    use dynagate::http::TrustedProxies;
    use http::{Method, StatusCode};
    let api = Api::start_configured(None, (100, 100), |config| {
        config.trusted_proxies = TrustedProxies::parse("127.0.0.0/8").unwrap();
        config.keys_table_capacity = users_api::TableCapacitySetting::Units {
            read: 1.0,
            write: 1.0,
        };
    })
    .await;
    // 20 lookups at once: the gate paces them a lookup per half second and
    // refuses those whose turn would be more than a second away.
    let api = std::sync::Arc::new(api);
    let mut flood = tokio::task::JoinSet::new();
    for n in 0..20 {
        let api = std::sync::Arc::clone(&api);
        flood.spawn(async move {
            let key = format!("dg_{n:064x}");
            let client = format!("198.51.100.{n}");
            api.send(
                Method::GET,
                "/api/v1/users/x",
                &[("x-api-key", &key), ("x-forwarded-for", &client)],
                "",
            )
            .await
            .status
        });
    }
    let statuses = flood.join_all().await;
    let unavailable = statuses
        .iter()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    let unauthorized = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    // At 1 read unit a second (half a unit per lookup, a half-second burst
    // and a one-second queue), a few lookups fit and the rest are refused at
    // the gate; without the gate all 20 would be looked up (401). The bound
    // leaves room for a loaded machine spreading the 20 arrivals out.
    assert!((1..=10).contains(&unauthorized), "{statuses:?}");
    assert_eq!(unavailable + unauthorized, 20, "{statuses:?}");
}
