//! API keys: issued once, stored hashed (SHA-256) with their owner and quota
//! in DynamoDB, checked in constant time, cached briefly, never logged.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dynagate::http::{AuthFuture, AuthUnavailable, Authenticate, Caller, Refusal};
use dynagate::limiter::{Limits, Quota};
use dynagate::repository::{Consistency, Key, Repository, WriteToken};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::key_cache::{KeyCache, Known};
use crate::limits::MAX_COST;

const PREFIX: &str = "dg_";
const SECRET_HEX: usize = 64;
/// How long a looked-up key (valid or not) is trusted without a new read.
const CACHE_FOR: Duration = Duration::from_secs(30);

/// A stored key: its hash, never the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Hex SHA-256 of the key: the table's partition key.
    pub key_hash: String,
    /// Who the key belongs to.
    pub owner: String,
    /// Sustained requests per second.
    pub per_second: u64,
    /// Burst above the sustained rate.
    pub burst: u64,
    /// Requests per day.
    pub per_day: u64,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
}

impl ApiKeyRecord {
    fn limits(&self) -> Option<Limits> {
        Limits::builder("key")
            .limit(
                "second",
                Quota::per_second(self.per_second.max(1))
                    .burst(self.burst.max(1))
                    .ok()?,
            )
            .limit(
                "day",
                Quota::per_day(self.per_day.max(1))
                    .burst(self.per_day.max(1))
                    .ok()?,
            )
            .build()
            .ok()
    }
}

fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The key's shape, checked before any lookup: `dg_` and 64 hex digits.
fn well_formed(key: &str) -> bool {
    key.len() == PREFIX.len() + SECRET_HEX
        && key.starts_with(PREFIX)
        && key[PREFIX.len()..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Looks keys up in the `api_keys` table.
#[derive(Debug, Clone)]
pub struct KeyStore {
    keys: Repository<ApiKeyRecord>,
    cache: Arc<KeyCache>,
}

impl KeyStore {
    pub fn new(keys: Repository<ApiKeyRecord>) -> KeyStore {
        KeyStore {
            keys,
            cache: Arc::new(KeyCache::new(10_000, 10_000, CACHE_FOR)),
        }
    }

    /// Issues a key for `owner`; returns the key, which is shown once and
    /// stored only as its hash.
    pub async fn issue(
        &self,
        owner: &str,
        per_second: u64,
        burst: u64,
        per_day: u64,
    ) -> Result<String, String> {
        let secret: [u8; 32] = rand::rng().random();
        let key = format!("{PREFIX}{}", hex::encode(secret));
        let record = ApiKeyRecord {
            key_hash: hash(&key),
            owner: owner.to_owned(),
            per_second,
            burst,
            per_day,
            created_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        record
            .limits()
            .ok_or("the quota numbers must be at least 1")?;
        // A write costs MAX_COST tokens: a smaller burst could never write.
        if burst < MAX_COST || per_day < MAX_COST {
            return Err(format!(
                "--burst and --per-day must be at least {MAX_COST}: a write costs {MAX_COST} \
                 tokens, and a key that cannot hold one could never write"
            ));
        }
        self.keys
            .create(&record, &WriteToken::generate())
            .await
            .map_err(|e| e.to_string())?;
        Ok(key)
    }

    async fn lookup(&self, key: &str) -> Result<Result<Caller, Refusal>, AuthUnavailable> {
        if !well_formed(key) {
            return Ok(Err(Refusal::Unknown));
        }
        let key_hash = hash(key);
        match self.cache.get(&key_hash) {
            Some(Known::Valid(caller)) => return Ok(Ok(caller)),
            Some(Known::Invalid) => return Ok(Err(Refusal::Unknown)),
            None => {}
        }
        let record = self
            .keys
            .get(&Key::new(key_hash.as_str()), Consistency::Eventual)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "API key lookup failed");
                AuthUnavailable
            })?;
        let caller = record.and_then(|record| {
            // The lookup matched by hash; compare again without a timing signal.
            let same: bool = record.key_hash.as_bytes().ct_eq(key_hash.as_bytes()).into();
            same.then(|| Caller {
                id: key_hash[..16].to_owned(),
                limits: record.limits().map(Arc::new),
            })
        });
        self.cache.remember(key_hash, caller.clone());
        Ok(caller.ok_or(Refusal::Unknown))
    }
}

impl Authenticate for KeyStore {
    fn authenticate<'a>(&'a self, api_key: &'a str) -> AuthFuture<'a> {
        Box::pin(self.lookup(api_key))
    }

    fn cached(&self, api_key: &str) -> Option<Caller> {
        if !well_formed(api_key) {
            return None;
        }
        match self.cache.get(&hash(api_key)) {
            Some(Known::Valid(caller)) => Some(caller),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_keys_are_looked_up() {
        let key = format!("dg_{}", "a1".repeat(32));
        assert!(well_formed(&key));
        assert!(!well_formed("dg_short"));
        assert!(!well_formed(&format!("xx_{}", "a1".repeat(32))));
        assert!(!well_formed(&format!("dg_{}", "zz".repeat(32))));
        assert_eq!(hash(&key).len(), 64);
        assert_ne!(hash(&key), hash(&format!("dg_{}", "a2".repeat(32))));
    }
}
