//! The HTTP side of the generator: one pooled HTTP/1.1 client that spreads
//! requests round-robin over the service's instances, with a deadline per
//! request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::outcome::retry_after;

/// How long a request may take before it counts as unanswered.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One request to send.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub path: String,
    /// The client address the trusted proxy (the generator) forwards.
    pub forwarded_for: String,
    pub api_key: Option<String>,
    pub if_match: Option<u64>,
    pub idempotency_key: Option<String>,
    /// A JSON body.
    pub body: Option<String>,
}

impl Call {
    /// A bodiless `method` on `path` from `forwarded_for`.
    pub fn new(method: Method, path: String, forwarded_for: String) -> Call {
        Call {
            method,
            path,
            forwarded_for,
            api_key: None,
            if_match: None,
            idempotency_key: None,
            body: None,
        }
    }
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Reply {
    /// `None`: no answer (connection error or [`REQUEST_TIMEOUT`]).
    pub status: Option<u16>,
    pub retry_after: Option<Duration>,
    /// The version in an `ETag: "3"`.
    pub etag: Option<u64>,
    /// Time to outcome: from the send to the end of the body (or the failure).
    pub took: Duration,
    /// Why, for an answer of 400 or more: `429 rate_limited`, and for a 5xx
    /// the message too (`503 unavailable: the API key cannot be checked...`).
    pub why: Option<String>,
}

/// The instances, and the client that reaches them.
#[derive(Debug)]
pub struct Targets {
    client: Client<HttpConnector, Full<Bytes>>,
    bases: Vec<String>,
    next: AtomicUsize,
}

impl Targets {
    /// Round-robin over `bases` (`http://127.0.0.1:3000`, ...).
    pub fn new(bases: Vec<String>) -> Targets {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(20))
            .pool_max_idle_per_host(256)
            .build(connector);
        Targets {
            client,
            bases,
            next: AtomicUsize::new(0),
        }
    }

    /// The instances' base URLs.
    pub fn bases(&self) -> &[String] {
        &self.bases
    }

    /// Sends `call` to the next instance.
    pub async fn send(&self, call: &Call) -> Reply {
        let base = &self.bases[self.next.fetch_add(1, Ordering::Relaxed) % self.bases.len()];
        let started = Instant::now();
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(base, call)).await;
        let took = started.elapsed();
        match answer {
            Ok(Some((status, retry_after, etag, why))) => Reply {
                status: Some(status),
                retry_after,
                etag,
                took,
                why,
            },
            _ => Reply {
                status: None,
                retry_after: None,
                etag: None,
                took,
                why: None,
            },
        }
    }

    async fn exchange(
        &self,
        base: &str,
        call: &Call,
    ) -> Option<(u16, Option<Duration>, Option<u64>, Option<String>)> {
        let mut request = Request::builder()
            .method(call.method.clone())
            .uri(format!("{base}{}", call.path))
            .header("x-forwarded-for", &call.forwarded_for);
        if let Some(key) = &call.api_key {
            request = request.header("x-api-key", key);
        }
        if let Some(version) = call.if_match {
            request = request.header("if-match", format!("\"{version}\""));
        }
        if let Some(key) = &call.idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let body = match &call.body {
            Some(json) => {
                request = request.header("content-type", "application/json");
                Full::new(Bytes::from(json.clone()))
            }
            None => Full::new(Bytes::new()),
        };
        let response = self.client.request(request.body(body).ok()?).await.ok()?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let wait = retry_after(header("retry-after").as_deref());
        let etag = header("etag").and_then(|v| v.trim_matches('"').parse().ok());
        // The whole body, so the connection goes back to the pool.
        let body = response.into_body().collect().await.ok()?.to_bytes();
        let why = (status >= 400).then(|| why(status, &body));
        Some((status, wait, etag, why))
    }
}

/// `STATUS CODE` from an error body `{"error": CODE, "message": ...}` (both
/// services' shape), with the message for a 5xx; `STATUS` alone for another
/// body.
pub fn why(status: u16, body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v[name].as_str().map(str::to_owned))
    };
    match (field("error"), field("message")) {
        (Some(code), Some(message)) if status >= 500 => {
            format!(
                "{status} {code}: {}",
                message.chars().take(80).collect::<String>()
            )
        }
        (Some(code), _) => format!("{status} {code}"),
        _ => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn why_names_the_error_code_and_a_server_error_s_message() {
        let body = br#"{"error":"unavailable","message":"the API key cannot be checked"}"#;
        assert_eq!(
            why(503, body),
            "503 unavailable: the API key cannot be checked"
        );
        assert_eq!(
            why(429, br#"{"error":"rate_limited","message":"x"}"#),
            "429 rate_limited"
        );
        assert_eq!(why(405, b"<html>Method Not Allowed</html>"), "405");
    }
}
