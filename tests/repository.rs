//! `Repository<T>` against DynamoDB Local: every single-item operation and
//! every error, including input refused before any call.

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::doc_repository::{Doc, doc, repository, token};
use dynagate::ResilientClient;
use dynagate::repository::{
    Consistency, DeleteCondition, Key, KeySchema, KeyType, Repository, RepositoryError, WriteToken,
};
use dynagate::retry::RetryPolicy;
use serde::{Deserialize, Serialize};

#[tokio::test]
async fn create_is_put_if_absent_and_a_retry_with_its_token_is_not_a_conflict() {
    let table = common::TestTable::create("repo-create").await;
    let docs = repository(&table).await;

    let written = docs.create(&doc("a", "first"), &token("t1")).await.unwrap();
    assert_eq!((written.version, written.replayed), (Some(1), false));

    // The same write again (a retry, a repeated request): done, not a conflict.
    let again = docs.create(&doc("a", "first"), &token("t1")).await.unwrap();
    assert_eq!((again.version, again.replayed), (Some(1), true));

    // Someone else's create: a real conflict, with the stored item.
    match docs.create(&doc("a", "second"), &token("t2")).await {
        Err(RepositoryError::Conflict { existing }) => {
            let existing = existing.expect("DynamoDB returned the stored item");
            assert_eq!(existing.name, "first");
            assert_eq!(existing.version, 1);
        }
        other => panic!("{other:?}"),
    }

    // The same token with another payload is refused, never written.
    match docs.create(&doc("a", "changed"), &token("t1")).await {
        Err(RepositoryError::TokenReused { token }) => assert_eq!(token, "t1"),
        other => panic!("{other:?}"),
    }
    let stored = docs
        .get_versioned(&Key::new("a"), Consistency::Strong)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.item.name, "first");
    assert_eq!(stored.version, 1);
    assert_eq!(stored.item.status, "active");
    table.delete().await;
}

#[tokio::test]
async fn get_returns_none_for_a_missing_item() {
    let table = common::TestTable::create("repo-get").await;
    let docs = repository(&table).await;
    assert!(
        docs.get(&Key::new("nobody"), Consistency::Eventual)
            .await
            .unwrap()
            .is_none()
    );
    docs.create(&doc("b", "x"), &WriteToken::generate())
        .await
        .unwrap();
    let got = docs
        .get(&Key::new("b"), Consistency::Strong)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.name, "x");
    table.delete().await;
}

#[tokio::test]
async fn update_versioned_is_optimistic_locking() {
    let table = common::TestTable::create("repo-version").await;
    let docs = repository(&table).await;
    docs.create(&doc("v", "one"), &token("c")).await.unwrap();

    let written = docs
        .update_versioned(&doc("v", "two"), 1, &token("u1"))
        .await
        .unwrap();
    assert_eq!((written.version, written.replayed), (Some(2), false));
    // Repeating the update with its token is a replay, not a mismatch.
    let again = docs
        .update_versioned(&doc("v", "two"), 1, &token("u1"))
        .await
        .unwrap();
    assert_eq!((again.version, again.replayed), (Some(2), true));

    match docs
        .update_versioned(&doc("v", "stale"), 1, &token("u2"))
        .await
    {
        Err(RepositoryError::VersionMismatch { expected, current }) => {
            assert_eq!((expected, current), (1, Some(2)));
        }
        other => panic!("{other:?}"),
    }
    match docs
        .update_versioned(&doc("missing", "x"), 1, &token("u3"))
        .await
    {
        Err(RepositoryError::NotFound) => {}
        other => panic!("{other:?}"),
    }
    let stored = docs
        .get_versioned(&Key::new("v"), Consistency::Strong)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.item.name.as_str(), stored.version), ("two", 2));
    table.delete().await;
}

#[tokio::test]
async fn put_idempotent_writes_once_per_token() {
    let table = common::TestTable::create("repo-put").await;
    let docs = repository(&table).await;
    assert!(
        !docs
            .put_idempotent(&doc("p", "one"), &token("p1"))
            .await
            .unwrap()
            .replayed
    );
    assert!(
        docs.put_idempotent(&doc("p", "one"), &token("p1"))
            .await
            .unwrap()
            .replayed
    );
    assert!(matches!(
        docs.put_idempotent(&doc("p", "other"), &token("p1")).await,
        Err(RepositoryError::TokenReused { .. })
    ));
    assert!(
        !docs
            .put_idempotent(&doc("p", "two"), &token("p2"))
            .await
            .unwrap()
            .replayed
    );
    let got = docs
        .get(&Key::new("p"), Consistency::Strong)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.name, "two");
    table.delete().await;
}

#[tokio::test]
async fn delete_with_each_condition() {
    let table = common::TestTable::create("repo-delete").await;
    let docs = repository(&table).await;
    let missing = docs
        .delete(&Key::new("none"), DeleteCondition::Always)
        .await
        .unwrap();
    assert!(!missing.existed);
    assert!(matches!(
        docs.delete(&Key::new("none"), DeleteCondition::MustExist)
            .await,
        Err(RepositoryError::NotFound)
    ));

    docs.create(&doc("d", "x"), &token("d1")).await.unwrap();
    match docs
        .delete(&Key::new("d"), DeleteCondition::AtVersion(7))
        .await
    {
        Err(RepositoryError::VersionMismatch { expected, current }) => {
            assert_eq!((expected, current), (7, Some(1)));
        }
        other => panic!("{other:?}"),
    }
    let deleted = docs
        .delete(&Key::new("d"), DeleteCondition::AtVersion(1))
        .await
        .unwrap();
    assert!(deleted.existed && !deleted.replayed);
    assert!(
        docs.get(&Key::new("d"), Consistency::Strong)
            .await
            .unwrap()
            .is_none()
    );
    table.delete().await;
}

#[tokio::test]
async fn a_reserved_word_can_be_the_partition_key() {
    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Named {
        name: String,
        size: u32,
    }
    let table = common::TestTable::create_with_key("repo-reserved", "name").await;
    let client = ResilientClient::new(&common::sdk_config().await, RetryPolicy::default());
    let named: Repository<Named> = Repository::new(
        client,
        table.name(),
        KeySchema::partition("name", KeyType::String),
    );
    let item = Named {
        name: "size".into(),
        size: 1,
    };
    named.create(&item, &token("n1")).await.unwrap();
    assert!(matches!(
        named
            .create(
                &Named {
                    name: "size".into(),
                    size: 2
                },
                &token("n2")
            )
            .await,
        Err(RepositoryError::Conflict { .. })
    ));
    named
        .update_versioned(
            &Named {
                name: "size".into(),
                size: 5,
            },
            1,
            &token("n3"),
        )
        .await
        .unwrap();
    named
        .delete(&Key::new("size"), DeleteCondition::MustExist)
        .await
        .unwrap();
    table.delete().await;
}

#[tokio::test]
async fn bad_input_is_refused_before_any_call() {
    // An endpoint where nothing listens: any call would fail to connect, so a
    // typed validation error proves no call was made.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = common::sdk_config()
        .await
        .to_builder()
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .build();
    let docs: Repository<Doc> = Repository::new(
        ResilientClient::new(
            &config,
            RetryPolicy::builder().max_attempts(1).build().unwrap(),
        ),
        "t",
        KeySchema::partition("pk", KeyType::String),
    );
    let mut big = doc("big", "x");
    big.name = "x".repeat(401 * 1024);
    assert!(matches!(
        docs.create(&big, &token("b")).await,
        Err(RepositoryError::ItemTooLarge { limit: 409_600, .. })
    ));
    assert!(matches!(
        docs.create(&doc("", "empty key"), &token("e")).await,
        Err(RepositoryError::InvalidKey(m)) if m.contains("empty")
    ));
    assert!(matches!(
        docs.get(&Key::new(5u64), Consistency::Strong).await,
        Err(RepositoryError::InvalidKey(m)) if m.contains("must be a string")
    ));
    let numbers: Repository<Doc> = Repository::new(
        docs.client().clone(),
        "t",
        KeySchema::partition("pk", KeyType::Number),
    );
    assert!(matches!(
        numbers.create(&doc("text", "x"), &token("n")).await,
        Err(RepositoryError::InvalidKey(m)) if m.contains("must be a number")
    ));
    let strings: Repository<String> = Repository::new(
        docs.client().clone(),
        "t",
        KeySchema::partition("pk", KeyType::String),
    );
    assert!(matches!(
        strings.create(&"not a map".to_owned(), &token("s")).await,
        Err(RepositoryError::Encode(_))
    ));
    assert!(matches!(
        docs.batch_get(&[Key::new("a"), Key::new("a")], Consistency::Eventual).await,
        Err(RepositoryError::InvalidKey(m)) if m.contains("twice")
    ));
    assert!(WriteToken::new("").is_err());
    assert!(WriteToken::new("has space").is_err());
    // A call that is made fails to connect: the test's premise holds.
    assert!(matches!(
        docs.get(&Key::new("a"), Consistency::Strong).await,
        Err(RepositoryError::Dynamodb(_))
    ));
}

#[tokio::test]
async fn a_stored_item_of_another_shape_is_a_decode_error() {
    let table = common::TestTable::create("repo-decode").await;
    table
        .client()
        .put_item()
        .table_name(table.name())
        .item("pk", AttributeValue::S("odd".into()))
        .item("name", AttributeValue::S("x".into()))
        .item("status", AttributeValue::S("y".into()))
        .item("size", AttributeValue::S("not a number".into()))
        .send()
        .await
        .unwrap();
    let docs = repository(&table).await;
    match docs.get(&Key::new("odd"), Consistency::Strong).await {
        Err(RepositoryError::Decode(_)) => {}
        other => panic!("expected a decode error, got {other:?}"),
    }
    table.delete().await;
}
