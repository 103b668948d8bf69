//! Pagination cursors a client cannot forge.
//!
//! A page's `LastEvaluatedKey` goes to the client as an opaque cursor and
//! comes back with the next request. A cursor in plain base64 lets a client
//! start a listing anywhere: at a key it guessed, in another caller's
//! partition, or halfway through a query it never ran. Here the key is sealed
//! with HMAC-SHA256 under a server secret, together with:
//!
//! - the **query's shape** (table, index, key condition and filter with their
//!   values, projection, order, segment), so a cursor only continues the query
//!   that issued it;
//! - the **caller** it was issued to, so one caller cannot continue (or
//!   replay) another's listing;
//! - an **expiry**, so a leaked cursor stops working.
//!
//! A cursor that was altered, has expired, or belongs to another query or
//! caller is a [`CursorError`], found before any call to DynamoDB.
//!
//! # What it does not protect
//!
//! A cursor is **signed, not encrypted**. Anyone holding it can read the key
//! values it carries (base64 is an encoding, not a secret): the table's key
//! and, for an index, the index's key of the last item DynamoDB evaluated. For
//! a filtered query that item can be one the filter **excluded**, so a cursor
//! may show the key of an item the client was never given. Do not page with a
//! filter over items whose keys the caller must not see, and do not put
//! secrets in key attributes. The expiry is checked against the clock of the
//! server that opens the cursor, so servers sharing secrets should share time
//! (NTP) too.
//!
//! # Secrets
//!
//! [`CursorKeys`] holds the accepted secrets: the first signs, all are tried
//! when opening. To rotate, put the new secret first and keep the old one until
//! the cursor lifetime has passed, then drop it. Use secrets for this purpose
//! only (the labels below separate the uses within this module, not from
//! other uses of the same bytes).

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::ConfigError;
use crate::repository::Item;

mod key_codec;

use self::key_codec::{MAX_KEY_BYTES, decode_key, encode_key};

type HmacSha256 = Hmac<Sha256>;

/// The secrets cursors are sealed with, and how long a cursor stays valid.
///
/// A cursor binds the last evaluated key to the query, the caller and an
/// expiry under HMAC-SHA256, so a client can neither forge nor reuse one
/// elsewhere. It is **signed, not encrypted**: the client can read the key
/// values it carries, and for a filtered query those can be the key of an item
/// the filter excluded.
#[derive(Clone)]
pub struct CursorKeys {
    /// One keyed HMAC state per secret, the signing one first. Cloning a keyed
    /// state is cheaper than keying HMAC again for every cursor.
    macs: Vec<HmacSha256>,
    lifetime_secs: u64,
}

/// Printing the keys must never print a secret, so only the count shows.
impl fmt::Debug for CursorKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CursorKeys")
            .field("secrets", &self.macs.len())
            .field("lifetime_secs", &self.lifetime_secs)
            .finish()
    }
}

/// Why a cursor from a client was refused. Every kind means the same thing to
/// the client: the cursor cannot be used, start the listing without one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CursorError {
    /// Not a cursor this service issues: too long, not URL-safe base64, cut
    /// short, or of an unknown version.
    #[error(
        "the cursor is not valid (cut short, too long or not URL-safe base64): pass back the \
         cursor exactly as it was returned, or start the listing again without a cursor"
    )]
    Malformed,
    /// Its signature does not match under any accepted secret: it was altered,
    /// or signed with a secret that has since been retired.
    #[error(
        "the cursor was altered or is no longer accepted: pass back the cursor exactly as it \
         was returned, or start the listing again without a cursor"
    )]
    Tampered,
    /// Its lifetime has passed.
    #[error("the cursor has expired: start the listing again without a cursor")]
    Expired,
    /// It was issued for a different query (table, index, condition, filter,
    /// projection, order or segment).
    #[error(
        "the cursor belongs to a different query: repeat the query it came from with the same \
         parameters, or start this one without a cursor"
    )]
    OtherQuery,
    /// It was issued to another caller.
    #[error("the cursor was issued to another caller: start the listing again without a cursor")]
    OtherCaller,
}

/// What a cursor is bound to. `shape` is a canonical text of the query
/// (table, index, key condition with its values, filter with its values,
/// projection, order, segment); `caller` a non-secret caller id ("" for an
/// anonymous caller).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CursorScope<'a> {
    pub(crate) shape: &'a str,
    pub(crate) caller: &'a str,
}

/// The shortest secret accepted: HMAC-SHA256 is as strong as its key up to
/// the 32 bytes of its output.
const MIN_SECRET_BYTES: usize = 32;
const DEFAULT_LIFETIME: Duration = Duration::from_secs(15 * 60);
const MAX_LIFETIME: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The layout version; a change of layout or labels gets a new one, and older
/// cursors open as `Malformed`.
const VERSION: u8 = 1;
const DIGEST_BYTES: usize = 16;
const MAC_BYTES: usize = 32;
/// version, expiry (unix seconds, big-endian), shape digest, caller digest.
const HEADER_BYTES: usize = 1 + 8 + DIGEST_BYTES + DIGEST_BYTES;

// Domain separation: each HMAC input starts with its own label, and no label
// is a prefix of another, so a MAC can never be replayed as a digest or back.
const MAC_LABEL: &[u8] = b"dynagate cursor v1 mac\0";
const SHAPE_LABEL: &[u8] = b"dynagate cursor v1 shape\0";
const CALLER_LABEL: &[u8] = b"dynagate cursor v1 caller\0";

const MAX_SEALED_BYTES: usize = HEADER_BYTES + MAX_KEY_BYTES + MAC_BYTES;
/// The longest cursor text accepted; anything longer is refused before it is
/// decoded. Base64 without padding: 4 characters per 3 bytes, rounded up.
pub(crate) const MAX_CURSOR_LEN: usize = (MAX_SEALED_BYTES * 4).div_ceil(3);

impl CursorKeys {
    /// At least one secret, each at least 32 bytes; the first signs, all are
    /// accepted when opening (rotation: put the new secret first, keep the old
    /// one until the lifetime has passed). Use random bytes, e.g. from
    /// `openssl rand -base64 48`, kept like any other server secret.
    pub fn new<I, S>(secrets: I) -> Result<CursorKeys, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut macs = Vec::new();
        for (index, secret) in secrets.into_iter().enumerate() {
            let secret = secret.as_ref();
            if secret.len() < MIN_SECRET_BYTES {
                return Err(ConfigError::invalid(
                    "cursor secret",
                    format!(
                        "secret {index} has {} bytes; each needs at least {MIN_SECRET_BYTES} \
                         random bytes (e.g. from `openssl rand -base64 48`)",
                        secret.len()
                    ),
                ));
            }
            // HMAC takes a key of any length, so this cannot fail; the error
            // arm keeps `new` free of panics all the same.
            let mac = HmacSha256::new_from_slice(secret)
                .map_err(|_| ConfigError::invalid("cursor secret", "HMAC refused the key"))?;
            macs.push(mac);
        }
        if macs.is_empty() {
            return Err(ConfigError::invalid(
                "cursor secrets",
                "give at least one secret (the first one signs new cursors)",
            ));
        }
        Ok(CursorKeys {
            macs,
            lifetime_secs: DEFAULT_LIFETIME.as_secs(),
        })
    }

    /// How long a cursor stays valid (default 15 minutes; 1 s to 7 days,
    /// counted in whole seconds: a fraction of a second is dropped).
    pub fn lifetime(mut self, lifetime: Duration) -> Result<CursorKeys, ConfigError> {
        if lifetime < Duration::from_secs(1) || lifetime > MAX_LIFETIME {
            return Err(ConfigError::invalid(
                "cursor lifetime",
                format!("{lifetime:?} is outside 1 s to 7 days"),
            ));
        }
        self.lifetime_secs = lifetime.as_secs();
        Ok(self)
    }

    /// Seals a page's `LastEvaluatedKey` into a cursor for the caller and
    /// query in `scope`, valid until `now` plus the lifetime.
    ///
    /// Never fails: a key DynamoDB cannot return (a type other than S, N or B,
    /// more than four attributes, or names or values over DynamoDB's limits)
    /// is sealed without its attributes, so the cursor opens as
    /// [`CursorError::Malformed`] and never reaches DynamoDB.
    pub(crate) fn seal(&self, key: &Item, scope: &CursorScope<'_>, now: SystemTime) -> String {
        // `new` refuses an empty list, so there is always a first secret.
        let signer = &self.macs[0];
        let expiry = unix_secs(now).saturating_add(self.lifetime_secs);
        let encoded_key = encode_key(key).unwrap_or_else(|| vec![0]);
        let mut sealed = Vec::with_capacity(HEADER_BYTES + encoded_key.len() + MAC_BYTES);
        sealed.push(VERSION);
        sealed.extend_from_slice(&expiry.to_be_bytes());
        sealed.extend_from_slice(&digest(signer, SHAPE_LABEL, expiry, scope.shape));
        sealed.extend_from_slice(&digest(signer, CALLER_LABEL, expiry, scope.caller));
        sealed.extend_from_slice(&encoded_key);
        let tag = signer
            .clone()
            .chain_update(MAC_LABEL)
            .chain_update(&sealed)
            .finalize()
            .into_bytes();
        sealed.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(sealed)
    }

    /// Opens a cursor from a client: the `LastEvaluatedKey` to start the next
    /// page from, or why the cursor is refused. Checks in order: length and
    /// base64 and layout, the MAC under each secret, the expiry, the query,
    /// the caller; the key is parsed only once the MAC has vouched for it.
    pub(crate) fn open(
        &self,
        cursor: &str,
        scope: &CursorScope<'_>,
        now: SystemTime,
    ) -> Result<Item, CursorError> {
        // Refused before decoding, so a huge input costs nothing.
        if cursor.is_empty() || cursor.len() > MAX_CURSOR_LEN {
            return Err(CursorError::Malformed);
        }
        let sealed = URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| CursorError::Malformed)?;
        if sealed.len() < HEADER_BYTES + 1 + MAC_BYTES || sealed[0] != VERSION {
            return Err(CursorError::Malformed);
        }
        let (body, tag) = sealed.split_at(sealed.len() - MAC_BYTES);
        let signer = self
            .macs
            .iter()
            .find(|mac| {
                (*mac)
                    .clone()
                    .chain_update(MAC_LABEL)
                    .chain_update(body)
                    .verify_slice(tag)
                    .is_ok()
            })
            .ok_or(CursorError::Tampered)?;

        let fields = Fields::split(body).ok_or(CursorError::Malformed)?;
        if unix_secs(now) > fields.expiry {
            return Err(CursorError::Expired);
        }
        // Constant-time, as the MAC is compared, though the MAC has already
        // vouched for the digests carried.
        let matches = |label: &[u8], text: &str, carried: &[u8]| {
            keyed(signer, label, fields.expiry, text)
                .verify_truncated_left(carried)
                .is_ok()
        };
        if !matches(SHAPE_LABEL, scope.shape, fields.shape) {
            return Err(CursorError::OtherQuery);
        }
        if !matches(CALLER_LABEL, scope.caller, fields.caller) {
            return Err(CursorError::OtherCaller);
        }
        decode_key(fields.key).ok_or(CursorError::Malformed)
    }
}

/// The signed fields of a sealed cursor, split without copying.
struct Fields<'a> {
    expiry: u64,
    shape: &'a [u8],
    caller: &'a [u8],
    key: &'a [u8],
}

impl<'a> Fields<'a> {
    /// Splits the signed body (version byte included, MAC excluded).
    fn split(body: &'a [u8]) -> Option<Fields<'a>> {
        let (_version, rest) = body.split_first()?;
        let (expiry, rest) = rest.split_first_chunk::<8>()?;
        let (shape, rest) = rest.split_at_checked(DIGEST_BYTES)?;
        let (caller, key) = rest.split_at_checked(DIGEST_BYTES)?;
        Some(Fields {
            expiry: u64::from_be_bytes(*expiry),
            shape,
            caller,
            key,
        })
    }
}

/// Whole seconds since the Unix epoch; a clock before 1970 counts as 0.
fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The shape's or caller's digest carried in the cursor: HMAC under the
/// secret, not a plain hash. The shape holds the query's values (an email, a
/// user id) and the caller id is often guessable (an IP address, an account
/// id); cursors travel in URLs, so they end up in logs and `Referer` headers.
/// A plain SHA-256 would let whoever reads a cursor confirm a guess by hashing
/// it; keyed, a digest tells nothing without the secret. The expiry is part of
/// the input, so cursors of the same caller or query sealed in different
/// seconds carry unrelated digests and cannot be linked through them. Opening
/// recomputes the digests under the secret whose MAC matched.
fn digest(mac: &HmacSha256, label: &[u8], expiry: u64, text: &str) -> [u8; DIGEST_BYTES] {
    let full = keyed(mac, label, expiry, text).finalize().into_bytes();
    let mut out = [0; DIGEST_BYTES];
    out.copy_from_slice(&full[..DIGEST_BYTES]);
    out
}

fn keyed(mac: &HmacSha256, label: &[u8], expiry: u64, text: &str) -> HmacSha256 {
    mac.clone()
        .chain_update(label)
        .chain_update(expiry.to_be_bytes())
        .chain_update(text.as_bytes())
}

#[cfg(test)]
mod tests;
