//! A TCP proxy in front of a plain-http DynamoDB endpoint that sorts the
//! GetItem requests it relays by who sent them: the AWS SDK (which puts
//! `amz-sdk-invocation-id` on every request) or dynagate's direct path
//! (which does not). How a test proves from outside which path a read took.

use std::sync::{Arc, Mutex};

use super::tcp_relay;

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
    let seen = Arc::new(Mutex::new(Seen::default()));
    let recorded = Arc::clone(&seen);
    // Each request's head ends with a blank line; DynamoDB's JSON bodies
    // have none, so every blank line ends one head.
    let address = tcp_relay::start(upstream, move |pending| {
        let end = pending.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
        if head.contains("x-amz-target: dynamodb_20120810.getitem") {
            let mut seen = recorded.lock().unwrap();
            if head.contains("amz-sdk-invocation-id") {
                seen.sdk += 1;
            } else {
                seen.direct += 1;
            }
        }
        Some(end + 4)
    })
    .await;
    (format!("http://{address}"), seen)
}
