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
