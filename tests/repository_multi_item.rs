//! `Repository<T>` against DynamoDB Local: batches beyond DynamoDB's limits
//! and transactions.

mod common;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use common::doc_repository::{Doc, doc, repository, token};
use dynagate::repository::{CancellationCode, Consistency, Key, RepositoryError, WriteToken};

#[tokio::test]
async fn batches_chunk_beyond_dynamodbs_limits() {
    let table = common::TestTable::create("repo-batch").await;
    let docs = repository(&table).await;
    let items: Vec<Doc> = (0..130).map(|i| doc(&format!("b{i}"), "batch")).collect();
    docs.batch_put(&items).await.unwrap();

    let mut keys: Vec<Key> = (0..130).map(|i| Key::new(format!("b{i}"))).collect();
    keys.push(Key::new("absent"));
    let mut read = docs.batch_get(&keys, Consistency::Strong).await.unwrap();
    read.sort_by(|a, b| a.pk.cmp(&b.pk));
    assert_eq!(read.len(), 130, "every stored item, and not the absent one");

    docs.batch_delete(&keys[..100]).await.unwrap();
    let left = docs.batch_get(&keys, Consistency::Strong).await.unwrap();
    assert_eq!(left.len(), 30);
    table.delete().await;
}

#[tokio::test]
async fn transactions_reuse_their_token_and_report_cancellation_reasons() {
    let table = common::TestTable::create("repo-tx").await;
    let docs = repository(&table).await;
    docs.create(&doc("exists", "x"), &token("e")).await.unwrap();
    let put = |pk: &str| {
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(table.name())
                    .item("pk", AttributeValue::S(pk.into()))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .unwrap(),
            )
            .build()
    };
    let add = TransactWriteItem::builder()
        .update(
            Update::builder()
                .table_name(table.name())
                .key("pk", AttributeValue::S("counter".into()))
                .update_expression("ADD #n :one")
                .expression_attribute_names("#n", "count")
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .build()
                .unwrap(),
        )
        .build();

    // Request tokens are account-wide for ten minutes (DynamoDB Local: across
    // all tables), so each run needs fresh ones.
    let tx = WriteToken::generate();
    docs.transact_write(vec![put("new"), add.clone()], &tx)
        .await
        .unwrap();
    // The same token again: DynamoDB treats it as the same transaction.
    docs.transact_write(vec![put("new"), add.clone()], &tx)
        .await
        .unwrap();
    let counter = table
        .client()
        .get_item()
        .table_name(table.name())
        .key("pk", AttributeValue::S("counter".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(
        counter["count"],
        AttributeValue::N("1".into()),
        "applied once"
    );

    match docs
        .transact_write(vec![add, put("exists")], &WriteToken::generate())
        .await
    {
        Err(RepositoryError::TransactionCanceled { reasons }) => {
            let codes: Vec<&CancellationCode> = reasons.iter().map(|r| &r.code).collect();
            assert_eq!(
                codes,
                [
                    &CancellationCode::None,
                    &CancellationCode::ConditionalCheckFailed
                ]
            );
            assert!(reasons[0].is_none());
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        docs.transact_write(vec![], &WriteToken::generate()).await,
        Err(RepositoryError::InvalidItem(_))
    ));
    table.delete().await;
}
