//! A TCP proxy in front of a plain-http DynamoDB endpoint that sorts the
//! GetItem requests it relays by who sent them: the AWS SDK (which puts
//! `amz-sdk-invocation-id` on every request) or dynagate's direct path
//! (which does not). How a test proves from outside which path a read took.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// GetItem requests a recording proxy saw: sent by the SDK, and not.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Seen {
    pub sdk: usize,
    pub direct: usize,
}

/// A TCP proxy in front of `upstream_url` (`http://host:port`) that sorts each GetItem
/// request head by whether it carries the SDK's invocation id.
pub async fn recording_proxy(upstream_url: &str) -> (String, Arc<Mutex<Seen>>) {
    let upstream = upstream_url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let recorded = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(&upstream).await.unwrap();
            tokio::spawn(relay(client, server, recorded.clone()));
        }
    });
    (url, seen)
}

async fn relay(client: TcpStream, server: TcpStream, seen: Arc<Mutex<Seen>>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let answers = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    });
    let mut pending: Vec<u8> = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let n = match client_read.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buffer[..n]);
        // Each request's head ends with a blank line; DynamoDB's JSON bodies
        // have none, so every blank line ends one head.
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
            if head.contains("x-amz-target: dynamodb_20120810.getitem") {
                let mut seen = seen.lock().unwrap();
                if head.contains("amz-sdk-invocation-id") {
                    seen.sdk += 1;
                } else {
                    seen.direct += 1;
                }
            }
            pending.drain(..end + 4);
        }
        if server_write.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    answers.abort();
}
