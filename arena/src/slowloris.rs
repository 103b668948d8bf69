//! Slow connections: each sends a request's headers one byte a second and
//! never finishes them, over raw TCP; when the server closes it, it opens
//! another. What a server without a header deadline gives a worker or a
//! connection slot to, for as long as the client likes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The time between two bytes.
pub const BYTE_EVERY: Duration = Duration::from_secs(1);

/// What the slow connections saw.
#[derive(Debug, Default)]
pub struct SlowTally {
    pub opened: AtomicU64,
    pub refused: AtomicU64,
    /// Closed by the server (end of stream, an answer, or a reset).
    pub closed_by_server: AtomicU64,
    /// Milliseconds the closed connections had been open, summed.
    pub held_ms: AtomicU64,
}

impl SlowTally {
    /// The record as JSON.
    pub fn to_json(&self) -> Value {
        let closed = self.closed_by_server.load(Ordering::Relaxed);
        let held = self.held_ms.load(Ordering::Relaxed);
        json!({
            "opened": self.opened.load(Ordering::Relaxed),
            "refused": self.refused.load(Ordering::Relaxed),
            "closed_by_server": closed,
            "mean_seconds_held_before_close": (closed > 0).then(|| held as f64 / closed as f64 / 1000.0),
        })
    }
}

/// The headers a slow connection trickles: a plausible request that never
/// reaches its blank line.
fn headers(index: usize) -> Vec<u8> {
    let mut text = format!(
        "GET /api/v1/users/slow HTTP/1.1\r\nHost: arena\r\nX-Forwarded-For: 10.8.0.{}\r\n",
        1 + index % 250
    );
    text.push_str(&"X-Slow: a\r\n".repeat(1000));
    text.into_bytes()
}

/// Keeps connection `index` to `address` (`127.0.0.1:PORT`) slow until `until`.
pub async fn run(index: usize, address: String, tally: Arc<SlowTally>, until: Instant) {
    let bytes = headers(index);
    while Instant::now() < until {
        let Ok(mut stream) = TcpStream::connect(&address).await else {
            tally.refused.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        tally.opened.fetch_add(1, Ordering::Relaxed);
        let opened = Instant::now();
        let mut sent = 0;
        let mut buffer = [0u8; 512];
        let closed = loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => break false,
                read = stream.read(&mut buffer) => match read {
                    Ok(n) if n > 0 => continue,
                    _ => break true,
                },
                _ = tokio::time::sleep(BYTE_EVERY) => {
                    if stream.write_all(&bytes[sent % bytes.len()..][..1]).await.is_err() {
                        break true;
                    }
                    sent += 1;
                }
            }
        };
        if closed {
            tally.closed_by_server.fetch_add(1, Ordering::Relaxed);
            let held = opened.elapsed().as_millis() as u64;
            tally.held_ms.fetch_add(held, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_headers_never_end() {
        let bytes = headers(3);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("GET /api/v1/users/slow HTTP/1.1\r\n"));
        assert!(text.contains("X-Forwarded-For: 10.8.0.4\r\n"));
        assert!(
            !text.contains("\r\n\r\n"),
            "no blank line: the request never completes"
        );
        // A byte a second for longer than any run: the headers outlast it.
        assert!(text.len() as u64 > 600 * BYTE_EVERY.as_secs());
    }
}
