//! The two callers: a lister that pages through every user as fast as it
//! can, honouring nothing, and a getter doing GETs at a steady rate.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use crate::stack::user_id;

type Http = Client<HttpConnector, Full<Bytes>>;

/// A request gets this long before the load generator counts it as failed:
/// far beyond the service's own 2 s DynamoDB deadline.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A status, or why there was none.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Answer {
    Status(u16),
    /// A 429 from the read-unit quota (its `RateLimit-Policy` names `key-rcu`).
    ReadUnitsRefused,
    Timeout,
    Transport,
}

impl Answer {
    pub(crate) fn label(&self) -> String {
        match self {
            Answer::Status(code) => code.to_string(),
            Answer::ReadUnitsRefused => "429 (read units)".into(),
            Answer::Timeout => "timeout".into(),
            Answer::Transport => "no answer".into(),
        }
    }
}

struct Reply {
    answer: Answer,
    body: Bytes,
}

async fn get(http: &Http, addr: SocketAddr, path: &str, key: &str) -> Reply {
    let request = Request::get(format!("http://{addr}{path}"))
        .header("x-api-key", key)
        .body(Full::new(Bytes::new()))
        .expect("a valid request");
    let sent = async {
        let response = http.request(request).await.ok()?;
        let status = response.status();
        let read_units = response
            .headers()
            .get("ratelimit-policy")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("key-rcu"));
        let body = response.into_body().collect().await.ok()?.to_bytes();
        let answer = if status == 429 && read_units {
            Answer::ReadUnitsRefused
        } else {
            Answer::Status(status.as_u16())
        };
        Some(Reply { answer, body })
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, sent).await {
        Ok(Some(reply)) => reply,
        Ok(None) => Reply {
            answer: Answer::Transport,
            body: Bytes::new(),
        },
        Err(_) => Reply {
            answer: Answer::Timeout,
            body: Bytes::new(),
        },
    }
}

fn client() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

/// What the lister's tasks got.
#[derive(Debug, Default)]
pub(crate) struct Listed {
    /// Pages answered 200.
    pub(crate) pages: u64,
    /// Of those, pages that stopped at their read budget.
    pub(crate) budget_pages: u64,
    pub(crate) users: u64,
    /// Walks from the first page to the last.
    pub(crate) passes: u64,
    /// Every answer other than 200, by kind.
    pub(crate) refused: BTreeMap<Answer, u64>,
}

impl Listed {
    pub(crate) fn requests(&self) -> u64 {
        self.pages + self.refused.values().sum::<u64>()
    }

    fn add(&mut self, other: Listed) {
        self.pages += other.pages;
        self.budget_pages += other.budget_pages;
        self.users += other.users;
        self.passes += other.passes;
        for (answer, n) in other.refused {
            *self.refused.entry(answer).or_default() += n;
        }
    }
}

/// `tasks` concurrent walks through every user, 100 a page, following
/// `next_cursor` to the end and starting again, until `end`. An abuser: a
/// refused page is asked for again at once, whatever `Retry-After` says.
pub(crate) async fn list(addr: SocketAddr, key: &str, tasks: usize, end: Instant) -> Listed {
    let http = client();
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let (http, key) = (http.clone(), key.to_owned());
        running.spawn(async move {
            let mut listed = Listed::default();
            let mut cursor: Option<String> = None;
            while Instant::now() < end {
                let path = match &cursor {
                    Some(c) => format!("/api/v1/users?limit=100&cursor={c}"),
                    None => "/api/v1/users?limit=100".to_owned(),
                };
                let reply = get(&http, addr, &path, &key).await;
                if reply.answer != Answer::Status(200) {
                    *listed.refused.entry(reply.answer).or_default() += 1;
                    continue;
                }
                let page: serde_json::Value =
                    serde_json::from_slice(&reply.body).expect("a page is JSON");
                listed.pages += 1;
                listed.users += page["users"].as_array().map_or(0, |u| u.len() as u64);
                if page["budget_exhausted"] == true {
                    listed.budget_pages += 1;
                }
                cursor = page["next_cursor"].as_str().map(str::to_owned);
                if cursor.is_none() {
                    listed.passes += 1;
                }
            }
            listed
        });
    }
    let mut total = Listed::default();
    while let Some(listed) = running.join_next().await {
        total.add(listed.expect("a lister task"));
    }
    total
}

/// What the getter got.
#[derive(Debug, Default)]
pub(crate) struct Got {
    pub(crate) sent: u64,
    pub(crate) ok: u64,
    /// Every answer that was not 2xx, by kind.
    pub(crate) failed: BTreeMap<Answer, u64>,
}

impl Got {
    pub(crate) fn success_rate(&self) -> f64 {
        self.ok as f64 / self.sent.max(1) as f64
    }
}

/// GETs of seeded users at `rate` per second, open loop (one starts on
/// schedule whatever happened to the others) until `end`, then waits for
/// every answer.
pub(crate) async fn get_users(
    addr: SocketAddr,
    key: &str,
    rate: u32,
    users: u32,
    end: Instant,
) -> Got {
    let http = client();
    let key: Arc<str> = key.into();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
    let mut running = tokio::task::JoinSet::new();
    // A fixed xorshift sequence: the same users in every variant.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    loop {
        tick.tick().await;
        if Instant::now() >= end {
            break;
        }
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let path = format!(
            "/api/v1/users/{}",
            user_id((state % u64::from(users)) as u32)
        );
        let (http, key) = (http.clone(), Arc::clone(&key));
        running.spawn(async move { get(&http, addr, &path, &key).await.answer });
    }
    let mut got = Got::default();
    while let Some(answer) = running.join_next().await {
        got.sent += 1;
        match answer.expect("a getter task") {
            Answer::Status(code) if (200..300).contains(&code) => got.ok += 1,
            other => *got.failed.entry(other).or_default() += 1,
        }
    }
    got
}
