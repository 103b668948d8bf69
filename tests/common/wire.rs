//! A scripted HTTP endpoint on loopback that answers with DynamoDB's wire
//! format, for tests about what a client does with each kind of answer: how
//! many requests it sends, how it classifies a reply, a dropped connection or
//! a hang. It counts requests at the socket. Tests about DynamoDB itself use
//! DynamoDB Local (and the fault proxy in front of it), never this.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the endpoint does with one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Answer with this status and JSON body.
    Json(u16, String),
    /// Read the request, then close the connection without answering.
    Drop,
    /// Read the request and never answer.
    Hang,
}

impl Reply {
    /// DynamoDB's error body: `{"__type": "<prefix>#<code>", "message": ...}` plus `extra` fields.
    pub fn error(status: u16, code: &str, extra: &str) -> Reply {
        let prefix = if code == "ThrottlingException" {
            "com.amazon.coral.availability"
        } else {
            "com.amazonaws.dynamodb.v20120810"
        };
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!(",{extra}")
        };
        Reply::Json(
            status,
            format!(r#"{{"__type":"{prefix}#{code}","message":"scripted {code}"{extra}}}"#),
        )
    }

    /// ProvisionedThroughputExceededException with one throttling reason.
    pub fn throttled(reason: &str) -> Reply {
        Reply::error(
            400,
            "ProvisionedThroughputExceededException",
            &format!(
                r#""ThrottlingReasons":[{{"reason":"{reason}","resource":"arn:aws:dynamodb:us-east-1:000000000000:table/users"}}]"#
            ),
        )
    }

    /// InternalServerError (HTTP 500).
    pub fn internal_error() -> Reply {
        Reply::error(500, "InternalServerError", "")
    }

    /// A successful answer with this JSON body.
    pub fn ok(body: &str) -> Reply {
        Reply::Json(200, body.to_owned())
    }
}

/// The endpoint: replies from the script in order, then `fallback` forever.
pub struct ScriptedEndpoint {
    pub url: String,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl ScriptedEndpoint {
    pub async fn start(script: Vec<Reply>, fallback: Reply) -> ScriptedEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let requests = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(Mutex::new((VecDeque::from(script), fallback)));
        let counter = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&counter), Arc::clone(&script)));
            }
        });
        ScriptedEndpoint {
            url,
            requests,
            task,
        }
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for ScriptedEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Script = Arc<Mutex<(VecDeque<Reply>, Reply)>>;

/// Answers each request of a keep-alive connection until the client closes it.
async fn serve(mut stream: TcpStream, requests: Arc<AtomicUsize>, script: Script) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Some(header_end) = find(&buffer, b"\r\n\r\n") else {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let headers = String::from_utf8_lossy(&buffer[..header_end]).to_ascii_lowercase();
        let body_len: usize = headers
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().expect("content-length"));
        let request_len = header_end + 4 + body_len;
        while buffer.len() < request_len {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        buffer.drain(..request_len);
        requests.fetch_add(1, Ordering::SeqCst);
        let reply = {
            let mut script = script.lock().expect("script lock");
            let fallback = script.1.clone();
            script.0.pop_front().unwrap_or(fallback)
        };
        match reply {
            Reply::Json(status, body) => {
                let response = format!(
                    "HTTP/1.1 {status} Scripted\r\ncontent-type: application/x-amz-json-1.0\r\n\
                     x-amzn-requestid: scripted\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if stream.write_all(response.as_bytes()).await.is_err() {
                    return;
                }
            }
            Reply::Drop => return,
            Reply::Hang => {
                std::future::pending::<()>().await;
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An AWS configuration for talking to a scripted endpoint: fixed region and
/// dummy credentials, `retry` as the SDK's retry configuration.
pub fn sdk_config(
    endpoint: &str,
    retry: aws_sdk_dynamodb::config::retry::RetryConfig,
) -> aws_config::SdkConfig {
    use aws_sdk_dynamodb::config::{Credentials, Region, SharedCredentialsProvider};
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "scripted",
        )))
        .retry_config(retry)
        .build()
}
