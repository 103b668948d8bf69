//! API keys: issued once, stored hashed (SHA-256) with their owner, quota
//! and lifecycle (expiry, revocation, suspension) in DynamoDB, checked in
//! constant time, cached briefly, never logged.
//!
//! A key is named by its **key id**: the first 16 hex digits of its hash.
//! It is not secret (the hash of a 256-bit random key reveals nothing of
//! it), it is the rate-limit subject (`Caller::id`), what logs show, and
//! what the operator commands (`revoke-key --key-id`) take.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dynagate::http::{AuthFuture, AuthUnavailable, Authenticate, Caller, Observed, Refusal};
use dynagate::repository::{Consistency, Key, Repository, WriteToken};
use rand::RngExt;
use subtle::ConstantTimeEq;

pub use crate::key_record::{ApiKeyRecord, KEY_ID_HEX, key_id_of};
pub(crate) use crate::key_record::{hash, unix_after, unix_now};

use crate::key_cache::{KeyCache, Known};
use crate::key_tags::{KeyTags, TAG_HEX};
use crate::limits::MAX_COST;
use crate::suspension::{AbuseLimits, AbuseWatch, Signal};

const PREFIX: &str = "dg_";
const SECRET_HEX: usize = 64;
/// How long a valid key is trusted without a new read: the bound within
/// which a revocation or suspension made anywhere reaches every instance
/// (plus DynamoDB's eventually consistent read, usually under a second).
/// It costs one read per active key per instance per period.
pub const REVALIDATE_AFTER: Duration = Duration::from_secs(5);
/// How long a refusal is trusted. An unknown, expired or revoked key never
/// becomes valid again (a new key is a new hash); a suspension may be
/// lifted, and is then seen within this bound.
pub const REFUSALS_CACHED_FOR: Duration = Duration::from_secs(30);

/// The key's shape, checked before any lookup: `dg_` and 64 hex digits.
fn well_formed(key: &str) -> bool {
    key.len() == PREFIX.len() + SECRET_HEX
        && key.starts_with(PREFIX)
        && key[PREFIX.len()..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Looks keys up in the `api_keys` table, and suspends keys that show abuse
/// signals (see [`AbuseLimits`]).
#[derive(Debug, Clone)]
pub struct KeyStore {
    pub(crate) keys: Repository<ApiKeyRecord>,
    pub(crate) cache: Arc<KeyCache>,
    watch: Arc<Mutex<AbuseWatch>>,
    abuse: AbuseLimits,
    tags: Option<KeyTags>,
}

impl KeyStore {
    /// A store on `keys` with the default [`AbuseLimits`].
    pub fn new(keys: Repository<ApiKeyRecord>) -> KeyStore {
        KeyStore::with_abuse_limits(keys, AbuseLimits::default())
    }

    /// A store on `keys` that suspends keys crossing `abuse`.
    pub fn with_abuse_limits(keys: Repository<ApiKeyRecord>, abuse: AbuseLimits) -> KeyStore {
        KeyStore {
            keys,
            cache: Arc::new(KeyCache::new(10_000, 10_000)),
            watch: Arc::new(Mutex::new(AbuseWatch::new(abuse))),
            abuse,
            tags: None,
        }
    }

    /// Issues tagged keys and refuses, before any lookup, a key whose tag
    /// does not verify (see [`KeyTags`]). Keys issued before tags were on do
    /// not carry one: turn tags on before issuing the keys they should cover.
    pub fn with_tags(mut self, tags: KeyTags) -> KeyStore {
        self.tags = Some(tags);
        self
    }

    /// Issues a key for `owner` that never expires; returns the key, which
    /// is shown once and stored only as its hash.
    pub async fn issue(
        &self,
        owner: &str,
        per_second: u64,
        burst: u64,
        per_day: u64,
    ) -> Result<String, String> {
        self.issue_expiring(owner, per_second, burst, per_day, None)
            .await
    }

    /// [`issue`](KeyStore::issue), refused `expires_in` from now when given.
    pub async fn issue_expiring(
        &self,
        owner: &str,
        per_second: u64,
        burst: u64,
        per_day: u64,
        expires_in: Option<Duration>,
    ) -> Result<String, String> {
        let key = match &self.tags {
            // 192 random bits and the tag: the same shape as an untagged key.
            Some(tags) => {
                let secret: [u8; (SECRET_HEX - TAG_HEX) / 2] = rand::rng().random();
                tags.seal(&format!("{PREFIX}{}", hex::encode(secret)))
            }
            None => {
                let secret: [u8; SECRET_HEX / 2] = rand::rng().random();
                format!("{PREFIX}{}", hex::encode(secret))
            }
        };
        let record = ApiKeyRecord {
            key_hash: hash(&key),
            owner: owner.to_owned(),
            per_second,
            burst,
            per_day,
            created_at: unix_now(),
            expires_at: expires_in.map(unix_after),
            revoked_at: None,
            suspended_until: None,
            suspension_reason: None,
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
        // A refusal remembered for this hash (someone presented the key
        // before it existed) must not outlive the issue.
        self.cache.forget(&record.key_hash);
        Ok(key)
    }

    async fn lookup(&self, key: &str) -> Result<Result<Caller, Refusal>, AuthUnavailable> {
        if !well_formed(key) || self.tags.as_ref().is_some_and(|tags| !tags.verify(key)) {
            metrics::counter!("users_api_keys_refused_unread_total").increment(1);
            return Ok(Err(Refusal::Unknown));
        }
        let key_hash = hash(key);
        match self.cache.get(&key_hash) {
            Some(Known::Valid(caller)) => return Ok(Ok(caller)),
            Some(Known::Refused(refusal)) => return Ok(Err(refusal)),
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
        // The lookup matched by hash; compare again without a timing signal.
        let record = record
            .filter(|record| bool::from(record.key_hash.as_bytes().ct_eq(key_hash.as_bytes())));
        let Some(record) = record else {
            self.cache
                .remember_refused(key_hash, Refusal::Unknown, refused_until(None));
            return Ok(Err(Refusal::Unknown));
        };
        let now = unix_now();
        if let Err(refusal) = record.standing(now) {
            let until = refused_until(record.suspended_until.map(|s| s.saturating_sub(now)));
            self.cache
                .remember_refused(key_hash, refusal.clone(), until);
            return Ok(Err(refusal));
        }
        let caller = Caller {
            id: record.key_id().to_owned(),
            limits: record.limits().map(Arc::new),
        };
        // Trusted for REVALIDATE_AFTER, and not past the key's expiry: an
        // expiry takes effect on time, not up to a period late.
        let mut until = Instant::now() + REVALIDATE_AFTER;
        if let Some(expires_at) = record.expires_at {
            until = until.min(Instant::now() + Duration::from_secs(expires_at - now));
        }
        self.cache.remember_valid(key_hash, caller.clone(), until);
        Ok(Ok(caller))
    }

    /// Suspends the key of `caller` for what `signal` detected: at once on
    /// this instance, in DynamoDB off the request path (so every instance
    /// sees it within [`REVALIDATE_AFTER`]), with a metric and a log line.
    fn suspend_detected(&self, caller: &Caller, signal: Signal) {
        let reason = signal.reason(&self.abuse);
        metrics::counter!("users_api_key_suspensions_total", "reason" => signal.label())
            .increment(1);
        tracing::warn!(key_id = %caller.id, reason = %reason, "API key suspended for abuse");
        let Some(key_hash) = self.cache.hash_of(&caller.id) else {
            // Evicted from the cache between the request and now: the next
            // request reads it again and is observed again.
            tracing::warn!(key_id = %caller.id, "suspension not stored: the key left the cache");
            return;
        };
        self.cache.remember_refused(
            key_hash.clone(),
            Refusal::Suspended {
                reason: reason.clone(),
            },
            refused_until(Some(self.abuse.suspension.as_secs())),
        );
        let store = self.clone();
        let until = unix_after(self.abuse.suspension);
        let write = async move {
            let result = store
                .modify(&key_hash, |record| {
                    record.suspended_until = Some(until);
                    record.suspension_reason = Some(reason.clone());
                })
                .await;
            if let Err(e) = result {
                tracing::error!(key_id = %&key_hash[..KEY_ID_HEX], error = %e,
                    "storing a suspension failed: only this instance refuses the key");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(write);
            }
            Err(_) => tracing::error!("no runtime to store a suspension on"),
        }
    }
}

/// When a refusal stops being trusted: [`REFUSALS_CACHED_FOR`], or sooner
/// when the refusal ends sooner (a suspension, `ends_in` seconds).
fn refused_until(ends_in: Option<u64>) -> Instant {
    let cached = ends_in.map_or(REFUSALS_CACHED_FOR, |s| {
        REFUSALS_CACHED_FOR.min(Duration::from_secs(s))
    });
    Instant::now() + cached
}

impl Authenticate for KeyStore {
    fn authenticate<'a>(&'a self, api_key: &'a str) -> AuthFuture<'a> {
        Box::pin(self.lookup(api_key))
    }

    fn observe(&self, caller: &Caller, observed: Observed) {
        let signal = self
            .watch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(&caller.id, observed, Instant::now());
        if let Some(signal) = signal {
            self.suspend_detected(caller, signal);
        }
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

    fn record() -> ApiKeyRecord {
        ApiKeyRecord {
            key_hash: "0123456789abcdef".repeat(4),
            owner: "ada".into(),
            per_second: 10,
            burst: 20,
            per_day: 100,
            created_at: 1000,
            expires_at: None,
            revoked_at: None,
            suspended_until: None,
            suspension_reason: None,
        }
    }

    #[test]
    fn standing_names_why_revoked_then_expired_then_suspended() {
        let mut r = record();
        assert_eq!(r.key_id(), "0123456789abcdef");
        assert_eq!(r.standing(5000), Ok(()));
        r.suspended_until = Some(3000);
        r.suspension_reason = Some("too many addresses".into());
        assert_eq!(
            r.standing(2999),
            Err(Refusal::Suspended {
                reason: "too many addresses".into()
            })
        );
        assert_eq!(r.standing(3000), Ok(()), "the suspension ended");
        r.expires_at = Some(2000);
        assert_eq!(
            r.standing(1999),
            Err(Refusal::Suspended {
                reason: "too many addresses".into()
            })
        );
        assert_eq!(r.standing(2000), Err(Refusal::Expired));
        r.revoked_at = Some(1500);
        assert_eq!(r.standing(1000), Err(Refusal::Revoked));
    }

    #[test]
    fn records_written_before_the_lifecycle_fields_still_read() {
        let old = serde_json::json!({
            "key_hash": "ab".repeat(32), "owner": "ada", "per_second": 1,
            "burst": 5, "per_day": 10, "created_at": 7
        });
        let r: ApiKeyRecord = serde_json::from_value(old).unwrap();
        assert_eq!(r.expires_at, None);
        assert_eq!(r.standing(u64::MAX - 1), Ok(()));
        let written = serde_json::to_value(&r).unwrap();
        assert!(written.get("revoked_at").is_none(), "no null attributes");
    }
}
