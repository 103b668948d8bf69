//! The control endpoints and the binary, with no DynamoDB behind the proxy:
//! its upstream is a loopback port nothing listens on.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use bytes::Bytes;
use dynagate_fault_proxy::{FaultProxy, ProxyConfig, RunningProxy, Stats, Upstream};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// A loopback address nothing listens on: bound, then released.
fn dead_upstream() -> Upstream {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    Upstream::parse(&format!("http://127.0.0.1:{port}")).unwrap()
}

async fn start() -> RunningProxy {
    let config = ProxyConfig::default()
        .with_listen("127.0.0.1:0".parse().unwrap())
        .with_upstream(dead_upstream())
        .with_seed(1);
    FaultProxy::start(config).await.unwrap()
}

async fn call(
    proxy: &RunningProxy,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("{}{path}", proxy.url()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client
        .request(
            request
                .body(Full::new(Bytes::from(body.to_owned())))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn rules_are_read_and_replaced_over_http() {
    let proxy = start().await;
    let (status, rules) = call(&proxy, Method::GET, "/_fault/rules", &[], "").await;
    assert_eq!((status, rules), (StatusCode::OK, json!([])));

    let new_rules = r#"[{"table": "users", "errors": {"throttling": 1.0}}]"#;
    let (status, answer) = call(&proxy, Method::PUT, "/_fault/rules", &[], new_rules).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"rules": 1})));
    assert_eq!(proxy.rules().rules()[0].table, "users");

    // The new rule is in force: a PutItem on users is throttled without forwarding.
    let put = [("x-amz-target", "DynamoDB_20120810.PutItem")];
    let (status, error) = call(&proxy, Method::POST, "/", &put, r#"{"TableName": "users"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error["__type"],
        "com.amazon.coral.availability#ThrottlingException"
    );

    let (status, error) = call(
        &proxy,
        Method::PUT,
        "/_fault/rules",
        &[],
        r#"[{"errors": {"teapot": 1}}]"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("unknown variant `teapot`"),
        "{error}"
    );
    assert_eq!(
        proxy.rules().rules().len(),
        1,
        "a refused update changes nothing"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn stats_are_served_as_json_and_reset() {
    let proxy = start().await;
    let get = [("x-amz-target", "DynamoDB_20120810.GetItem")];
    let (status, answer) = call(&proxy, Method::POST, "/", &get, r#"{"TableName": "t"}"#).await;
    assert_eq!(
        status,
        StatusCode::BAD_GATEWAY,
        "the upstream is down: {answer}"
    );

    let (status, stats) = call(&proxy, Method::GET, "/_fault/stats", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    let stats: Stats = serde_json::from_value(stats).unwrap();
    let gets = stats.operation("t", "GetItem");
    assert_eq!(
        (gets.requests, gets.forwarded, gets.upstream_errors),
        (1, 0, 1)
    );
    assert_eq!(stats, proxy.stats());

    let (status, _) = call(&proxy, Method::POST, "/_fault/reset", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(proxy.stats(), Stats::default());

    let (status, _) = call(&proxy, Method::GET, "/_fault/nothing", &[], "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&proxy, Method::DELETE, "/_fault/stats", &[], "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    proxy.shutdown().await;
}

#[test]
fn the_binary_prints_its_counters_on_sigterm_and_exits_0() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dynagate-fault-proxy"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--seed",
            "3",
            "--upstream",
            &dead_upstream().to_string(),
        ])
        .args(["--error", "users:PutItem:throttling=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut banner = String::new();
    stderr.read_line(&mut banner).unwrap();
    assert!(
        banner.contains("listening on http://127.0.0.1:"),
        "{banner}"
    );
    assert!(banner.contains("seed 3"), "{banner}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{:?}", output.status);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.starts_with("table"), "{stdout}");
}

#[test]
fn the_binary_refuses_a_bad_flag_with_exit_code_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_dynagate-fault-proxy"))
        .args(["--error", "teapot=0.5"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("unknown error kind \"teapot\""), "{stderr}");
}
