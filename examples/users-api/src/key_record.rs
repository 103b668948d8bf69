//! The stored form of an API key: its hash, owner, quota and lifecycle
//! fields, and the key id every log line and operator command names.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dynagate::http::Refusal;
use dynagate::limiter::{Limits, Quota};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Hex digits of the hash that make a key id.
pub const KEY_ID_HEX: usize = 16;

/// A stored key: its hash, never the key. The lifecycle fields are optional
/// so records written before them still read (as keys that never expire).
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
    /// The key is refused from this time on (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// When the key was revoked; a revoked key is refused for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
    /// The key is refused until this time (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_until: Option<u64>,
    /// Why it is suspended, as the caller is told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspension_reason: Option<String>,
}

impl ApiKeyRecord {
    /// The key id: the first 16 hex digits of the hash.
    pub fn key_id(&self) -> &str {
        &self.key_hash[..KEY_ID_HEX.min(self.key_hash.len())]
    }

    /// Whether the key is usable at `now` (seconds since the epoch), and if
    /// not why: revoked, then expired, then suspended.
    pub fn standing(&self, now: u64) -> Result<(), Refusal> {
        if self.revoked_at.is_some() {
            return Err(Refusal::Revoked);
        }
        if self.expires_at.is_some_and(|at| now >= at) {
            return Err(Refusal::Expired);
        }
        match self.suspended_until {
            Some(until) if now < until => Err(Refusal::Suspended {
                reason: self
                    .suspension_reason
                    .clone()
                    .unwrap_or_else(|| "suspended by an operator".to_owned()),
            }),
            _ => Ok(()),
        }
    }

    pub(crate) fn limits(&self) -> Option<Limits> {
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

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `now + after` in whole seconds, rounded up so a key never expires before
/// the time it was given.
pub(crate) fn unix_after(after: Duration) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (now + after).as_secs_f64().ceil() as u64
}

/// The key id of a key (issued or presented): what the CLI prints and logs
/// show, never the key.
pub fn key_id_of(key: &str) -> String {
    hash(key)[..KEY_ID_HEX].to_owned()
}

pub(crate) fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}
