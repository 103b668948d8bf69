//! The `users-api` binary's CLI, run as a user runs it: `issue-key` against
//! a keys table of the test's own on the DynamoDB of `AWS_ENDPOINT_URL`
//! (DynamoDB Local by default; the LocalStack lane points it elsewhere).

use std::process::Command;

use aws_sdk_dynamodb::types::AttributeValue;
use sha2::{Digest, Sha256};

fn users_api(keys_table: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_users-api"));
    command
        .env("API_KEYS_TABLE", keys_table)
        .env("API_KEYS_TABLE_CAPACITY", "off");
    for (name, default) in [
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:8000"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "dynagatelocal"),
        ("AWS_SECRET_ACCESS_KEY", "dynagatelocal"),
    ] {
        if std::env::var_os(name).is_none() {
            command.env(name, default);
        }
    }
    command.env("TABLE_CAPACITY", "off").env("RUST_LOG", "info");
    command
}

fn dynamodb() -> aws_sdk_dynamodb::Client {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let credentials = aws_sdk_dynamodb::config::Credentials::new(
        env("AWS_ACCESS_KEY_ID", "dynagatelocal"),
        env("AWS_SECRET_ACCESS_KEY", "dynagatelocal"),
        None,
        None,
        "cli-test",
    );
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new(env(
            "AWS_REGION",
            "us-east-1",
        )))
        .endpoint_url(env("AWS_ENDPOINT_URL", "http://127.0.0.1:8000"))
        .credentials_provider(credentials)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// A keys table of this test's own, deleted on drop of the returned guard.
struct KeysTable(String);

impl KeysTable {
    async fn create() -> KeysTable {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("cli-keys-{}-{nanos}", std::process::id());
        dynamodb()
            .create_table()
            .table_name(&name)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("key_hash")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("key_hash")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .expect("creating the test's keys table (is the local stack up? stack/stack.sh start)");
        KeysTable(name)
    }

    async fn delete(self) {
        let _ = dynamodb().delete_table().table_name(&self.0).send().await;
    }
}

async fn stored(table: &str, key: &str) -> std::collections::HashMap<String, AttributeValue> {
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    dynamodb()
        .get_item()
        .table_name(table)
        .key("key_hash", AttributeValue::S(hash))
        .send()
        .await
        .expect("the test's keys table")
        .item
        .expect("the issued key is stored")
}

/// Issue 14, points 8 and 12: `issue-key` stored its own 10/20/100000 for
/// every key, and its INFO log line went to stdout before the key, so
/// `KEY=$(users-api issue-key ...)` captured two lines.
#[tokio::test]
async fn issue_key_prints_only_the_key_and_takes_the_configured_defaults() {
    let table = KeysTable::create().await;
    let out = users_api(&table.0)
        .args(["issue-key", "--owner", "cli-test"])
        .env("KEY_PER_SECOND", "3")
        .env("KEY_BURST", "7")
        .env("KEY_PER_DAY", "500")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout is the key alone: {stdout:?}");
    assert!(lines[0].starts_with("dg_"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("shown once"), "{stderr}");

    let record = stored(&table.0, lines[0]).await;
    let number = |name: &str| record[name].as_n().unwrap().clone();
    assert_eq!(
        (number("per_second"), number("burst"), number("per_day")),
        ("3".into(), "7".into(), "500".into())
    );
    table.delete().await;
}

/// Issue 14, point 7: a key with a burst below a write's cost could never
/// write; it is refused when issued.
#[tokio::test]
async fn a_key_that_could_never_write_is_not_issued() {
    let table = KeysTable::create().await;
    let out = users_api(&table.0)
        .args(["issue-key", "--owner", "cli-test", "--burst", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--burst") && stderr.contains("at least 2"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

/// `LOG_FORMAT=json` was documented and read nowhere.
#[tokio::test]
async fn log_format_json_writes_json_lines_on_stderr() {
    let table = KeysTable::create().await;
    let out = users_api(&table.0)
        .args(["issue-key", "--owner", "cli-json"])
        .env("LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let logs: Vec<&str> = stderr.lines().filter(|l| l.starts_with('{')).collect();
    assert!(!logs.is_empty(), "no JSON log line: {stderr}");
    for line in logs {
        let parsed: serde_json::Value = serde_json::from_str(line).expect(line);
        assert!(parsed["level"].is_string(), "{line}");
    }
    table.delete().await;
}

fn run_ok(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn key_id(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))[..16].to_owned()
}

fn seconds_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Issue 16: a key with an expiry, rotated (the old key expires after the
/// grace), then revoked, all by key id; a bad flag is named.
#[tokio::test]
async fn keys_expire_rotate_and_are_revoked_by_key_id() {
    let table = KeysTable::create().await;
    let before = seconds_now();
    let key = run_ok(users_api(&table.0).args([
        "issue-key",
        "--owner",
        "cli-life",
        "--expires-in",
        "30d",
    ]));
    let number = |record: &std::collections::HashMap<String, AttributeValue>, name: &str| {
        record[name].as_n().unwrap().parse::<u64>().unwrap()
    };
    let expires_at = number(&stored(&table.0, &key).await, "expires_at");
    assert!((before + 30 * 86_400..=seconds_now() + 30 * 86_400 + 1).contains(&expires_at));

    let new_key = run_ok(users_api(&table.0).args([
        "rotate-key",
        "--key-id",
        &key_id(&key),
        "--grace",
        "2h",
    ]));
    assert!(new_key.starts_with("dg_") && new_key != key);
    let old = stored(&table.0, &key).await;
    let grace_end = number(&old, "expires_at");
    assert!((before + 7200..=seconds_now() + 7201).contains(&grace_end));
    let new = stored(&table.0, &new_key).await;
    assert_eq!(new["owner"].as_s().unwrap(), "cli-life");
    assert!(
        !new.contains_key("expires_at"),
        "no --expires-in: no expiry"
    );

    let out = users_api(&table.0)
        .args(["revoke-key", "--key-id", &key_id(&new_key)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("revoked"));
    assert!(stored(&table.0, &new_key).await.contains_key("revoked_at"));

    let out = users_api(&table.0)
        .args(["revoke-key", "--key-id", "0000000000000000"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no API key has the id 0000000000000000")
    );
    let out = users_api(&table.0)
        .args(["rotate-key", "--key-id", &key_id(&key), "--grace", "soon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--grace: `soon` is not a duration"),
        "{stderr}"
    );
    table.delete().await;
}
