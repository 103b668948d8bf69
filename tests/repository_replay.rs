//! A retried write whose first attempt was applied reports `replayed`, never a
//! conflict: scripted, one lost answer at a time, against DynamoDB Local.
//!
//! The fault proxy forwards the first attempt, DynamoDB applies it, and the
//! proxy closes the connection instead of answering (a drop-response rule at
//! probability 1). The retry loop sees an ambiguous failure and tries again;
//! the retry meets the first attempt's effect. Which request is lost is not
//! left to chance: a tap between the SDK and the proxy clears the proxy's
//! rules before passing on any request that follows a lost answer, so exactly
//! the first attempt loses its answer and the retry gets DynamoDB's real one.
//! The tap also records what the SDK sent, so a test can compare the attempts.

mod common;

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use dynagate::ResilientClient;
use dynagate::repository::{
    CancellationCode, DEFAULT_TOKEN_ATTRIBUTE, DeleteCondition, Key, KeySchema, KeyType,
    Repository, RepositoryError, WriteToken,
};
use dynagate::retry::RetryPolicy;
use dynagate_fault_proxy::{Rule, RuleSet, RunningProxy};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpListener;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Doc {
    pk: String,
    body: String,
    #[serde(default)]
    version: u64,
}

fn doc(pk: &str, body: &str) -> Doc {
    Doc {
        pk: pk.into(),
        body: body.into(),
        version: 0,
    }
}

/// One request as the SDK sent it: its operation and JSON body.
#[derive(Debug, Clone)]
struct Sent {
    operation: String,
    body: Value,
}

type Hook = Box<dyn Fn() + Send + Sync>;

/// Sits between the SDK and the fault proxy: records every request, runs
/// `before` ahead of passing it on, and passes back whatever the proxy does,
/// a missing answer included (the SDK's connection is closed unanswered). The
/// SDK keeps its own HTTP client and error handling; only its endpoint moves.
struct Tap {
    url: String,
    sent: Arc<Mutex<Vec<Sent>>>,
    task: tokio::task::JoinHandle<()>,
}

struct TapState {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    sent: Arc<Mutex<Vec<Sent>>>,
    before: Hook,
}

impl Tap {
    async fn start(upstream: String, before: Hook) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(TapState {
            upstream,
            client: Client::builder(TokioExecutor::new()).build_http(),
            sent: Arc::clone(&sent),
            before,
        });
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&state);
                let service =
                    hyper::service::service_fn(move |request| forward(Arc::clone(&state), request));
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Tap { url, sent, task }
    }

    fn sent(&self) -> Vec<Sent> {
        self.sent.lock().expect("tap lock").clone()
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An error here makes hyper close the SDK's connection without an answer,
/// which is what the proxy did to the tap.
async fn forward(
    state: Arc<TapState>,
    request: Request<Incoming>,
) -> Result<Response<Incoming>, Box<dyn std::error::Error + Send + Sync>> {
    let (mut parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or_default()
        .to_owned();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.sent.lock().expect("tap lock").push(Sent {
        operation,
        body: json,
    });
    (state.before)();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("{}{path}", state.upstream).parse()?;
    Ok(state
        .client
        .request(Request::from_parts(parts, Full::new(body)))
        .await?)
}

/// A table, the fault proxy in front of DynamoDB Local, the tap in front of
/// the proxy, and a repository that reaches the table through both.
struct Scene {
    table: common::TestTable,
    proxy: Arc<RunningProxy>,
    tap: Tap,
    docs: Repository<Doc>,
}

impl Scene {
    async fn start(test: &str) -> Scene {
        let table = common::TestTable::create(test).await;
        let proxy = Arc::new(common::fault_proxy(Vec::new(), 21).await);
        let watched = Arc::clone(&proxy);
        // After a lost answer, every later request gets DynamoDB's answer.
        let restore = move || {
            let stats = watched.stats();
            let mut all = stats.tables.values().flat_map(|ops| ops.values());
            if all.any(|s| s.dropped_responses > 0) {
                watched.set_rules(RuleSet::default());
            }
        };
        let tap = Tap::start(proxy.url(), Box::new(restore)).await;
        let client = ResilientClient::new(
            &common::sdk_config_via(&tap.url).await,
            RetryPolicy::default(),
        );
        let docs = Repository::new(
            client,
            table.name(),
            KeySchema::partition("pk", KeyType::String),
        );
        Scene {
            table,
            proxy,
            tap,
            docs,
        }
    }

    /// The next `operation` on the table is applied and its answer lost.
    /// Counters and the tap's record start again from here.
    fn lose_next_answer(&self, operation: &str) {
        let rule = Rule::new(self.table.name(), operation).with_drop_response(1.0);
        self.proxy.reset_stats();
        self.tap.sent.lock().expect("tap lock").clear();
        self.proxy
            .set_rules(RuleSet::new(vec![rule]).expect("a valid rule"));
    }

    /// Asserts what every test shares, counted since the loss was armed: two
    /// attempts of `operation`, both forwarded (so DynamoDB applied the first
    /// if it could), the first answer lost. Returns what the SDK sent.
    fn assert_one_lost_answer_then_one_retry(&self, operation: &str) -> Vec<Sent> {
        let seen = self.proxy.stats().operation(self.table.name(), operation);
        assert_eq!(
            (seen.requests, seen.forwarded, seen.dropped_responses),
            (2, 2, 1),
            "two attempts, both forwarded, the first answer lost: {seen:?}"
        );
        let sent = self.tap.sent();
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert!(sent.iter().all(|s| s.operation == operation), "{sent:?}");
        sent
    }

    async fn items(&self) -> Vec<std::collections::HashMap<String, AttributeValue>> {
        let scan = self.table.client().scan().table_name(self.table.name());
        let page = scan.consistent_read(true).send().await.expect("Scan");
        page.items.unwrap_or_default()
    }
}

fn string(value: &Value) -> &str {
    value["S"]
        .as_str()
        .unwrap_or_else(|| panic!("a string: {value}"))
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_replayed_not_a_conflict() {
    let scene = Scene::start("replay-create").await;
    let token = WriteToken::generate();
    scene.lose_next_answer("PutItem");

    let written = scene.docs.create(&doc("a", "first"), &token).await;

    let written = written.expect("a replay, not a conflict");
    assert_eq!((written.version, written.replayed), (Some(1), true));
    let sent = scene.assert_one_lost_answer_then_one_retry("PutItem");
    assert_eq!(sent[0].body, sent[1].body, "the retry is the same request");
    assert_eq!(
        string(&sent[1].body["Item"][DEFAULT_TOKEN_ATTRIBUTE]),
        token.as_str()
    );
    let items = scene.items().await;
    assert_eq!(items.len(), 1, "written once: {items:?}");
    assert_eq!(
        items[0][DEFAULT_TOKEN_ATTRIBUTE],
        AttributeValue::S(token.as_str().to_owned())
    );
    scene.table.delete().await;
}

#[tokio::test]
async fn a_versioned_update_whose_answer_was_lost_is_replayed_not_a_mismatch() {
    let scene = Scene::start("replay-update").await;
    let docs = &scene.docs;
    docs.create(&doc("v", "one"), &WriteToken::generate())
        .await
        .unwrap();
    let token = WriteToken::generate();
    scene.lose_next_answer("PutItem");

    let written = docs.update_versioned(&doc("v", "two"), 1, &token).await;

    let written = written.expect("a replay, not a version mismatch");
    assert_eq!((written.version, written.replayed), (Some(2), true));
    let sent = scene.assert_one_lost_answer_then_one_retry("PutItem");
    assert_eq!(sent[0].body, sent[1].body, "the retry is the same request");
    let items = scene.items().await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(
        items[0]["version"],
        AttributeValue::N("2".into()),
        "one step"
    );
    assert_eq!(items[0]["body"], AttributeValue::S("two".into()));
    scene.table.delete().await;
}

#[tokio::test]
async fn a_versioned_delete_whose_answer_was_lost_is_replayed_not_not_found() {
    let scene = Scene::start("replay-delete").await;
    let docs = &scene.docs;
    docs.create(&doc("d", "x"), &WriteToken::generate())
        .await
        .unwrap();
    scene.lose_next_answer("DeleteItem");

    let deleted = docs
        .delete(&Key::new("d"), DeleteCondition::AtVersion(1))
        .await;

    let deleted = deleted.expect("a replay, not NotFound");
    assert_eq!((deleted.existed, deleted.replayed), (true, true));
    scene.assert_one_lost_answer_then_one_retry("DeleteItem");
    assert!(scene.items().await.is_empty());
    scene.table.delete().await;
}

#[tokio::test]
async fn a_transaction_whose_answer_was_lost_is_resent_with_its_token_and_applied_once() {
    let scene = Scene::start("replay-tx").await;
    let table = scene.table.name();
    let put = TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(table)
                .item("pk", AttributeValue::S("tx-item".into()))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .unwrap(),
        )
        .build();
    let add = TransactWriteItem::builder()
        .update(
            Update::builder()
                .table_name(table)
                .key("pk", AttributeValue::S("counter".into()))
                .update_expression("ADD #n :one")
                .expression_attribute_names("#n", "count")
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .build()
                .unwrap(),
        )
        .build();
    // Request tokens are account-wide for ten minutes: a fresh one per run.
    let token = WriteToken::generate();
    scene.lose_next_answer("TransactWriteItems");

    let outcome = scene
        .docs
        .transact_write(vec![put.clone(), add.clone()], &token)
        .await;

    outcome.expect("DynamoDB answers a repeated token with the first outcome");
    let sent = scene.assert_one_lost_answer_then_one_retry("TransactWriteItems");
    for attempt in &sent {
        assert_eq!(attempt.body["ClientRequestToken"], token.as_str());
    }
    let counter = scene
        .items()
        .await
        .into_iter()
        .find(|item| item["pk"] == AttributeValue::S("counter".into()))
        .expect("the counter");
    assert_eq!(
        counter["count"],
        AttributeValue::N("1".into()),
        "applied once"
    );
    assert_eq!(scene.items().await.len(), 2);
    // What the retry would have met under a fresh token: the transaction
    // runs again, and its put fails its condition.
    match scene
        .docs
        .transact_write(vec![put, add], &WriteToken::generate())
        .await
    {
        Err(RepositoryError::TransactionCanceled { reasons }) => {
            assert_eq!(reasons[0].code, CancellationCode::ConditionalCheckFailed);
        }
        other => panic!("{other:?}"),
    }
    scene.table.delete().await;
}

#[tokio::test]
async fn after_a_lost_answer_someone_elses_item_is_still_a_conflict() {
    let scene = Scene::start("replay-conflict").await;
    let docs = &scene.docs;
    let theirs = WriteToken::generate();
    docs.create(&doc("c", "theirs"), &theirs).await.unwrap();
    // Our create fails its condition; its answer (the failure) is lost, so
    // the loop cannot tell it from an applied write until the retry.
    scene.lose_next_answer("PutItem");

    let outcome = docs
        .create(&doc("c", "ours"), &WriteToken::generate())
        .await;

    match outcome {
        Err(RepositoryError::Conflict { existing }) => {
            let existing = existing.expect("DynamoDB returned the stored item");
            assert_eq!(existing.body, "theirs");
        }
        other => panic!("a conflict, got {other:?}"),
    }
    scene.assert_one_lost_answer_then_one_retry("PutItem");
    let items = scene.items().await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(
        items[0][DEFAULT_TOKEN_ATTRIBUTE],
        AttributeValue::S(theirs.as_str().to_owned())
    );
    scene.table.delete().await;
}
