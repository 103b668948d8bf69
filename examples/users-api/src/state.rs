//! What the handlers share, and `build`, which connects to DynamoDB and Redis
//! and assembles it with the rate-limit layer.

use std::sync::Arc;

use aws_config::SdkConfig;
use dynagate::RedisConnection;
use dynagate::ResilientClient;
use dynagate::http::RateLimitLayer;
use dynagate::repository::{CursorKeys, Index, KeySchema, KeyType, Repository};
use dynagate::retry::RetryPolicy;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::capacity::capacity_gate;
use crate::config::Config;
use crate::key_tags::KeyTags;
use crate::keys::{ApiKeyRecord, KeyStore};
use crate::limits::rate_limit_layer;
use crate::model::User;
use crate::readiness::ReadinessCache;
use crate::telemetry::metrics_handle;

/// The users table's global index on `email` (stack/tables/users.json).
pub const EMAIL_INDEX: &str = "by_email";

/// What the handlers share: a handle, since axum clones the state for every
/// request that extracts it (cloning each repository, client and table name
/// cost a measurable share of a GET's CPU).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The state itself, behind [`AppState`].
pub struct Shared {
    pub users: Repository<User>,
    pub keys: KeyStore,
    pub dynamodb: ResilientClient,
    pub users_table: String,
    pub redis: RedisConnection,
    pub metrics: PrometheusHandle,
    pub readiness: ReadinessCache,
}

/// Connects to DynamoDB and Redis and builds the state and the rate-limit layer.
pub async fn build(config: &Config, aws: &SdkConfig) -> Result<(AppState, RateLimitLayer), String> {
    let policy = RetryPolicy::builder()
        .deadline(config.dynamodb_deadline)
        .build()
        .map_err(|e| e.to_string())?;
    let redis = connect_redis(config).await?;
    // GetItem (every user read, every key lookup) without the SDK's
    // orchestrator: a fraction of its CPU, the same answers and errors.
    let mut dynamodb = ResilientClient::new(aws, policy).with_direct_get();
    if let Some(gate) = capacity_gate(config, &dynamodb, redis.clone()).await? {
        dynamodb = dynamodb.with_gate(gate);
    }
    let mut users = Repository::new(
        dynamodb.clone(),
        &config.users_table,
        KeySchema::partition("user_id", KeyType::String),
    )
    .with_index(Index::global(
        EMAIL_INDEX,
        KeySchema::partition("email", KeyType::String),
    ));
    if !config.cursor_secrets.is_empty() {
        let keys =
            CursorKeys::new(&config.cursor_secrets).map_err(|e| format!("CURSOR_SECRETS: {e}"))?;
        users = users.with_cursor_keys(keys);
    }
    let key_records: Repository<ApiKeyRecord> = Repository::new(
        dynamodb.clone(),
        &config.keys_table,
        KeySchema::partition("key_hash", KeyType::String),
    );
    let mut keys = KeyStore::with_abuse_limits(key_records, config.key_abuse);
    if !config.key_tag_secrets.is_empty() {
        keys = keys.with_tags(KeyTags::new(&config.key_tag_secrets)?);
    }
    let layer = rate_limit_layer(config, redis.clone(), keys.clone())?;

    let state = AppState(Arc::new(Shared {
        users,
        keys,
        dynamodb,
        users_table: config.users_table.clone(),
        redis,
        metrics: metrics_handle(),
        readiness: ReadinessCache::default(),
    }));
    Ok((state, layer))
}

/// The Redis Cluster when `redis_cluster_urls` names one, else `redis_url`.
async fn connect_redis(config: &Config) -> Result<RedisConnection, String> {
    Ok(if config.redis_cluster_urls.is_empty() {
        redis::Client::open(config.redis_url.as_str())
            .map_err(|e| format!("REDIS_URL {}: {e}", config.redis_url))?
            // Every call the service makes has a deadline of its own (the
            // limiter's, the capacity gate's, the readiness probe's), so the
            // client's default 500 ms response timeout would only be a second
            // timer armed on every command for the same job.
            .get_connection_manager_with_config(
                redis::aio::ConnectionManagerConfig::new().set_response_timeout(None),
            )
            .await
            .map_err(|e| format!("Redis at {}: {e}", config.redis_url))?
            .into()
    } else {
        redis::cluster::ClusterClient::new(config.redis_cluster_urls.clone())
            .map_err(|e| format!("REDIS_CLUSTER_URLS: {e}"))?
            .get_async_connection()
            .await
            .map_err(|e| format!("Redis Cluster at {:?}: {e}", config.redis_cluster_urls))?
            .into()
    })
}
