//! `dynagate::client::sdk_client` makes exactly one attempt per call.
//!
//! The endpoint here is a counting HTTP server on loopback that answers every
//! request with DynamoDB's wire error for an internal failure (HTTP 500,
//! `InternalServerError`), which the SDK's standard mode retries. The test is
//! about how many requests the client sends, so it counts them at the socket.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::types::AttributeValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const INTERNAL_ERROR: &str =
    r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected"}"#;

/// Serves HTTP 500 + InternalServerError to every request; counts requests.
struct FailingEndpoint {
    url: String,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl FailingEndpoint {
    async fn start() -> FailingEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&counter)));
            }
        });
        FailingEndpoint {
            url,
            requests,
            task,
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FailingEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers each request of a keep-alive connection until the client closes it.
async fn serve(mut stream: TcpStream, requests: Arc<AtomicUsize>) {
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
        let response = format!(
            "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/x-amz-json-1.0\r\n\
             content-length: {}\r\n\r\n{INTERNAL_ERROR}",
            INTERNAL_ERROR.len()
        );
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn shared_config(endpoint: &str, retry: RetryConfig) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            Credentials::new("test", "test", None, None, "sdk-client-test"),
        ))
        .retry_config(retry)
        .build()
}

async fn get_once(
    client: &aws_sdk_dynamodb::Client,
) -> aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::get_item::GetItemError> {
    client
        .get_item()
        .table_name("users")
        .key("user_id", AttributeValue::S("ada".into()))
        .send()
        .await
        .expect_err("the endpoint fails every request")
}

#[tokio::test]
async fn dynagate_client_sends_one_request_where_the_sdk_standard_mode_retries() {
    // Fast SDK backoff, so the baseline's retries take milliseconds.
    let retrying = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(1))
        .with_max_backoff(Duration::from_millis(5));

    let baseline = FailingEndpoint::start().await;
    let sdk_default =
        aws_sdk_dynamodb::Client::new(&shared_config(&baseline.url, retrying.clone()));
    get_once(&sdk_default).await;
    assert_eq!(
        baseline.requests(),
        3,
        "the SDK's standard mode retries InternalServerError: the counter sees every attempt"
    );

    let endpoint = FailingEndpoint::start().await;
    let dynagate = dynagate::client::sdk_client(&shared_config(&endpoint.url, retrying));
    let error = get_once(&dynagate).await;
    assert_eq!(
        endpoint.requests(),
        1,
        "dynagate's client never retries on its own"
    );
    assert!(
        error.into_service_error().is_internal_server_error(),
        "the one attempt's error reaches the caller as DynamoDB's InternalServerError"
    );
}
