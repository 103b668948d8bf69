//! What the bench runs against: its own tables in DynamoDB Local (seeded with
//! padded users), a fault proxy per variant, and the users API in process.

use std::net::SocketAddr;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, PutRequest, ScalarAttributeType, WriteRequest,
};
use dynagate_fault_proxy::{
    Capacity, FaultProxy, ProxyConfig, Rule, RuleSet, RunningProxy, Upstream,
};
use tokio::sync::oneshot;
use users_api::{Config, TableCapacitySetting};

use crate::bench::{Bench, Variant};
use crate::common::endpoint;

/// The bench's tables and Redis prefix, unique to this run.
pub(crate) struct Names {
    pub(crate) users: String,
    pub(crate) keys: String,
    pub(crate) redis_prefix: String,
}

impl Names {
    pub(crate) fn unique() -> Names {
        let run = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        );
        Names {
            users: format!("bench-list-users-{run}"),
            keys: format!("bench-list-keys-{run}"),
            redis_prefix: format!("bench:list_charge:{run}:"),
        }
    }
}

fn attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("attribute definition")
}

fn hash_key(name: &str) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(KeyType::Hash)
        .build()
        .expect("key schema")
}

/// The users table as stack/tables/users.json declares it (`user_id`, the
/// global index `by_email`), and an API keys table.
pub(crate) async fn create_tables(admin: &Client, names: &Names) {
    let by_email = GlobalSecondaryIndex::builder()
        .index_name(users_api::EMAIL_INDEX)
        .key_schema(hash_key("email"))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .expect("index");
    let users = admin
        .create_table()
        .table_name(&names.users)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("user_id"))
        .attribute_definitions(attribute("email"))
        .key_schema(hash_key("user_id"))
        .global_secondary_indexes(by_email);
    let keys = admin
        .create_table()
        .table_name(&names.keys)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("key_hash"))
        .key_schema(hash_key("key_hash"));
    for request in [users, keys] {
        request.send().await.unwrap_or_else(|e| {
            panic!(
                "creating the bench's tables at {}: {e:?}; start DynamoDB Local with \
                 `stack/stack.sh start dynamodb`",
                endpoint()
            )
        });
    }
}

pub(crate) async fn delete_tables(admin: &Client, names: &Names) {
    for table in [&names.users, &names.keys] {
        if let Err(e) = admin.delete_table().table_name(table).send().await {
            eprintln!("list_charge: could not delete table {table}: {e:?}");
        }
    }
}

/// The id of seeded user `i`.
pub(crate) fn user_id(i: u32) -> String {
    format!("bench-user-{i:05}")
}

/// Writes `count` users straight into the table, each with a `bio` of
/// `padding` bytes. The API's `User` does not deny unknown fields, so a list
/// reads (and pays for) the whole item and shows only the user's own fields.
pub(crate) async fn seed_users(admin: &Client, table: &str, count: u32, padding: usize) {
    let bio = AttributeValue::S("x".repeat(padding));
    let ids: Vec<u32> = (0..count).collect();
    for chunk in ids.chunks(25) {
        let mut pending: Vec<WriteRequest> = chunk
            .iter()
            .map(|&i| {
                let put = PutRequest::builder()
                    .item("user_id", AttributeValue::S(user_id(i)))
                    .item(
                        "email",
                        AttributeValue::S(format!("{}@example.com", user_id(i))),
                    )
                    .item("name", AttributeValue::S(format!("Bench User {i}")))
                    .item("version", AttributeValue::N("1".into()))
                    .item("bio", bio.clone())
                    .build()
                    .expect("put request");
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        // DynamoDB Local may hand items back unprocessed; send them again.
        for _ in 0..10 {
            if pending.is_empty() {
                break;
            }
            let out = admin
                .batch_write_item()
                .request_items(table, pending.clone())
                .send()
                .await
                .expect("seeding the users table");
            pending = out
                .unprocessed_items
                .and_then(|mut u| u.remove(table))
                .unwrap_or_default();
        }
        assert!(
            pending.is_empty(),
            "DynamoDB Local kept refusing seed items"
        );
    }
}

/// A fault proxy in front of DynamoDB Local, `read_units` RCU/s on the users
/// table; its burst bank empty at start.
pub(crate) async fn start_proxy(users: &str, read_units: u32) -> RunningProxy {
    let rules = vec![Rule::new(users, "*").with_capacity(Capacity::new(Some(read_units), None))];
    FaultProxy::start(
        ProxyConfig::default()
            .with_listen("127.0.0.1:0".parse().expect("loopback"))
            .with_upstream(Upstream::parse(&endpoint()).expect("AWS_ENDPOINT_URL is http://"))
            .with_seed(1)
            .with_rules(RuleSet::new(rules).expect("rules")),
    )
    .await
    .expect("the fault proxy starts")
}

/// A users API serving one variant, and its two callers' keys.
pub(crate) struct Service {
    pub(crate) addr: SocketAddr,
    pub(crate) lister_key: String,
    pub(crate) getter_key: String,
    stop: Option<oneshot::Sender<()>>,
}

/// The service's configuration for `variant`: only the read-unit quota
/// differs between the variants.
pub(crate) fn config(bench: &Bench, names: &Names, variant: Variant) -> Config {
    let mut config = Config::new(&names.users, &names.keys, &bench.redis_url);
    config.limiter_prefix = format!("{}{}:rl:", names.redis_prefix, variant.slug());
    config.capacity_prefix = format!("{}{}:capacity", names.redis_prefix, variant.slug());
    // The fleet capacity gate would also protect the table; it is off so
    // that the read-unit charge is the only difference between the variants.
    config.table_capacity = TableCapacitySetting::Off;
    config.keys_table_capacity = TableCapacitySetting::Off;
    // Both callers come from 127.0.0.1: the per-address ceiling must not be
    // what limits either.
    config.quotas.ip_per_second = 100_000;
    config.quotas.ip_burst = 100_000;
    let (per_second, burst) = variant.read_quota(bench);
    config.quotas.key_read_units_per_second = per_second;
    config.quotas.key_read_units_burst = burst;
    // The load generator shares this 2-core machine: the example's 50 ms
    // Redis deadline would send decisions to the failure policy instead.
    config.limiter_deadline = Duration::from_millis(250);
    config
}

impl Service {
    /// Serves `config` on 127.0.0.1:0, its DynamoDB calls through `proxy`;
    /// the keys are issued directly against DynamoDB Local.
    pub(crate) async fn start(
        bench: &Bench,
        config: &Config,
        direct: &SdkConfig,
        proxy: &RunningProxy,
    ) -> Service {
        let (issuer, _) = users_api::build(config, direct)
            .await
            .expect("the users API builds (is Redis up? `stack/stack.sh start redis`)");
        let lister_key = issuer
            .keys
            .issue(
                "lister",
                bench.lister_requests,
                2 * bench.lister_requests,
                100_000_000,
            )
            .await
            .expect("issuing the lister's key");
        let getter_key = issuer
            .keys
            .issue("getter", 100, 100, 100_000_000)
            .await
            .expect("issuing the getter's key");
        let through_proxy = direct.to_builder().endpoint_url(proxy.url()).build();
        let (state, layer) = users_api::build(config, &through_proxy)
            .await
            .expect("the users API builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(users_api::run(
            listener,
            users_api::app(state, Some(layer)),
            config.connections.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        Service {
            addr,
            lister_key,
            getter_key,
            stop: Some(stop),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Deletes every Redis key under `prefix`.
pub(crate) async fn delete_redis_keys(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut connection) = redis::aio::ConnectionManager::new(client).await else {
        return;
    };
    let mut cursor: u64 = 0;
    loop {
        let Ok((next, keys)): Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(500)
            .query_async(&mut connection)
            .await
        else {
            return;
        };
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut connection)
                .await;
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}
