//! What operators do to a key, by its key id: revoke, rotate, suspend and
//! lift a suspension.
//!
//! The table's partition key is the full hash, and the key id is its prefix,
//! so finding a key by id is a Scan filtered on `begins_with(key_hash, id)`.
//! That reads the whole table (about half a read unit per 4 KB, a key record
//! being a few hundred bytes) once per operator command: cheap for a keys
//! table of thousands or tens of thousands of keys, and it needs no schema
//! change and works on records written before key ids were named. A global
//! index on a stored `key_id` would make the lookup one read, at the price
//! of a table change, a backfill of existing records and an index write per
//! issue; worth it only if a tool looks keys up by id at request rates.

use std::time::Duration;

use dynagate::http::Refusal;
use dynagate::repository::{
    Consistency, Filter, Key, ReadBudget, RepositoryError, Versioned, WriteToken,
};

use crate::keys::{ApiKeyRecord, KEY_ID_HEX, KeyStore, unix_after, unix_now};

/// Read units one key-id Scan may spend: about 800 MB of key records.
const FIND_BUDGET_UNITS: u32 = 100_000;
/// Optimistic-lock attempts of one change before giving up.
const ATTEMPTS: u32 = 5;

/// A key id's shape: 16 lowercase hex digits.
pub fn valid_key_id(id: &str) -> Result<(), String> {
    if id.len() == KEY_ID_HEX && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(format!(
            "--key-id must be {KEY_ID_HEX} lowercase hex digits (the id `issue-key` printed), \
             got `{id}`"
        ))
    }
}

/// `30d`, `12h`, `15m`, `45s`: a whole number and a unit, above zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.len().saturating_sub(1);
    let (number, unit) = text.split_at(split.min(text.len()));
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if n > 0 && scale > 0 => n
            .checked_mul(scale)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("`{text}` is too long")),
        _ => Err(format!(
            "`{text}` is not a duration: a whole number above zero and s, m, h or d (e.g. 30d, 12h)"
        )),
    }
}

impl KeyStore {
    /// The record of key `key_id`: an error names what went wrong (no such
    /// key, two keys share the id, DynamoDB failed).
    pub async fn find(&self, key_id: &str) -> Result<ApiKeyRecord, String> {
        valid_key_id(key_id)?;
        let mut records = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut scan = self
                .keys
                .scan(ReadBudget::units(FIND_BUDGET_UNITS).calls(100))
                .filter(Filter::attr("key_hash").begins_with(key_id))
                .page_size(1000);
            if let Some(after) = cursor.take() {
                scan = scan.after(after);
            }
            let page = scan
                .page()
                .await
                .map_err(|e| format!("scanning {}: {e}", self.keys.table()))?;
            records.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        match records.len() {
            1 => Ok(records.remove(0)),
            0 => Err(format!(
                "no API key has the id {key_id} in table {}",
                self.keys.table()
            )),
            n => Err(format!(
                "{n} API keys share the id {key_id}: change them by their full hash"
            )),
        }
    }

    /// Revokes key `key_id` for good. This instance refuses it at once,
    /// every other within [`REVALIDATE_AFTER`](crate::keys::REVALIDATE_AFTER).
    pub async fn revoke(&self, key_id: &str) -> Result<ApiKeyRecord, String> {
        let found = self.find(key_id).await?;
        let now = unix_now();
        self.modify(&found.key_hash, |r| {
            r.revoked_at.get_or_insert(now);
        })
        .await
    }

    /// Issues a new key for the owner of `key_id`, with its quota (and
    /// `expires_in` when given), and makes the old key expire `grace` from
    /// now (or sooner, if it was to expire sooner). Returns the new key
    /// (shown once) and the old key's record.
    pub async fn rotate(
        &self,
        key_id: &str,
        grace: Duration,
        expires_in: Option<Duration>,
    ) -> Result<(String, ApiKeyRecord), String> {
        let old = self.find(key_id).await?;
        if let Err(refusal) = old.standing(unix_now()) {
            return Err(format!(
                "key {key_id} is {}: rotate a usable key, or issue a new one with issue-key",
                match refusal {
                    Refusal::Revoked => "revoked",
                    Refusal::Expired => "expired",
                    _ => "suspended (unsuspend-key first)",
                }
            ));
        }
        let key = self
            .issue_expiring(
                &old.owner,
                old.per_second,
                old.burst,
                old.per_day,
                expires_in,
            )
            .await?;
        let ends = unix_after(grace);
        let old = self
            .modify(&old.key_hash, |r| {
                r.expires_at = Some(r.expires_at.map_or(ends, |at| at.min(ends)));
            })
            .await?;
        Ok((key, old))
    }

    /// Suspends key `key_id` for `duration`, telling callers `reason`.
    pub async fn suspend(
        &self,
        key_id: &str,
        duration: Duration,
        reason: &str,
    ) -> Result<ApiKeyRecord, String> {
        let found = self.find(key_id).await?;
        let until = unix_after(duration);
        self.modify(&found.key_hash, |r| {
            r.suspended_until = Some(until);
            r.suspension_reason = Some(reason.to_owned());
        })
        .await
    }

    /// Lifts a suspension: this instance accepts the key at once, others
    /// within [`REFUSALS_CACHED_FOR`](crate::keys::REFUSALS_CACHED_FOR).
    pub async fn unsuspend(&self, key_id: &str) -> Result<ApiKeyRecord, String> {
        let found = self.find(key_id).await?;
        self.modify(&found.key_hash, |r| {
            r.suspended_until = None;
            r.suspension_reason = None;
        })
        .await
    }

    /// Reads the record strongly, applies `change` and writes it back if no
    /// other write came between (retrying when one did), then forgets the
    /// key locally so this instance reads the new state at its next request.
    pub(crate) async fn modify(
        &self,
        key_hash: &str,
        change: impl Fn(&mut ApiKeyRecord),
    ) -> Result<ApiKeyRecord, String> {
        let key = Key::new(key_hash);
        for _ in 0..ATTEMPTS {
            let Versioned { mut item, version } = self
                .keys
                .get_versioned(&key, Consistency::Strong)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("API key {} was deleted", &key_hash[..KEY_ID_HEX]))?;
            change(&mut item);
            match self
                .keys
                .update_versioned(&item, version, &WriteToken::generate())
                .await
            {
                Ok(_) => {
                    self.cache.forget(key_hash);
                    return Ok(item);
                }
                Err(RepositoryError::VersionMismatch { .. }) => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(format!(
            "API key {} kept changing under {ATTEMPTS} attempts: try again",
            &key_hash[..KEY_ID_HEX]
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_have_a_number_and_a_unit() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        for bad in ["", "d", "0h", "12", "1.5h", "-1d", "12w", "h12"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("not a duration"), "{bad}: {err}");
        }
        assert!(parse_duration(&format!("{}d", u64::MAX)).is_err());
    }

    #[test]
    fn key_ids_are_sixteen_lowercase_hex_digits() {
        assert!(valid_key_id("0123456789abcdef").is_ok());
        for bad in ["0123456789ABCDEF", "0123", "0123456789abcdeg", ""] {
            assert!(valid_key_id(bad).unwrap_err().contains("--key-id"), "{bad}");
        }
    }
}
