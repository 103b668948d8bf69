//! Keys that prove they were issued here: the last 16 hex digits of a key are
//! a tag, an HMAC-SHA256 of the rest under a secret the fleet shares
//! (`KEY_TAG_SECRETS`). A key with a wrong tag is refused before any lookup,
//! so an attacker rotating made-up keys costs no DynamoDB read at all, from
//! however many addresses (the per-address failed-authentication limit
//! alone lets each new address try a few keys first).
//!
//! The tag is not what makes a key secret (the 192 random bits before it
//! are) and not what makes it valid (the stored hash is): it only tells a key
//! this service issued from one it never did, without asking DynamoDB.
//! Secrets rotate like cursor secrets: the first one tags new keys, every one
//! listed verifies, so keys issued under an old secret keep working while it
//! stays listed.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Hex digits of the tag at the end of a key.
pub const TAG_HEX: usize = 16;
/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// The secrets that tag and verify keys; the first one tags.
#[derive(Clone)]
pub struct KeyTags {
    secrets: Vec<Vec<u8>>,
}

impl std::fmt::Debug for KeyTags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets themselves.
        f.debug_struct("KeyTags")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl KeyTags {
    /// Tags from `secrets` (at least one, each at least [`MIN_SECRET_LEN`]
    /// bytes); the error says which one is wrong.
    pub fn new(secrets: &[String]) -> Result<KeyTags, String> {
        if secrets.is_empty() {
            return Err("KEY_TAG_SECRETS needs at least one secret".into());
        }
        if let Some(n) = secrets.iter().position(|s| s.len() < MIN_SECRET_LEN) {
            return Err(format!(
                "KEY_TAG_SECRETS: secret {} of {} has {} characters; use at least \
                 {MIN_SECRET_LEN} (e.g. `openssl rand -hex 32`)",
                n + 1,
                secrets.len(),
                secrets[n].len()
            ));
        }
        Ok(KeyTags {
            secrets: secrets.iter().map(|s| s.as_bytes().to_vec()).collect(),
        })
    }

    /// `body` followed by its tag under the first secret.
    pub(crate) fn seal(&self, body: &str) -> String {
        format!("{body}{}", hex::encode(tag(&self.secrets[0], body)))
    }

    /// Whether `key` (already well formed: ASCII, longer than the tag) ends
    /// in the tag of the rest under one of the secrets, compared in
    /// constant time.
    pub(crate) fn verify(&self, key: &str) -> bool {
        let Some((body, tag_hex)) = key.split_at_checked(key.len().saturating_sub(TAG_HEX)) else {
            return false;
        };
        let Ok(given) = hex::decode(tag_hex) else {
            return false;
        };
        self.secrets
            .iter()
            .any(|secret| bool::from(tag(secret, body).ct_eq(&given)))
    }
}

/// The first 8 bytes of HMAC-SHA256(secret, body).
fn tag(secret: &[u8], body: &str) -> [u8; TAG_HEX / 2] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body.as_bytes());
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; TAG_HEX / 2];
    out.copy_from_slice(&full[..TAG_HEX / 2]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(secrets: &[&str]) -> KeyTags {
        KeyTags::new(&secrets.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    const OLD: &str = "an-old-secret-of-at-least-32-characters";
    const NEW: &str = "a-new-secret-of-at-least-32-characters!";

    #[test]
    fn a_sealed_key_verifies_and_a_changed_one_does_not() {
        let t = tags(&[NEW]);
        let key = t.seal(&format!("dg_{}", "ab".repeat(24)));
        assert_eq!(key.len(), 3 + 48 + TAG_HEX);
        assert!(t.verify(&key));
        let mut forged = key.clone().into_bytes();
        let last = forged.len() - 1;
        forged[last] = if forged[last] == b'0' { b'1' } else { b'0' };
        assert!(!t.verify(std::str::from_utf8(&forged).unwrap()));
        let other_body = format!("dg_{}{}", "ac".repeat(24), &key[key.len() - TAG_HEX..]);
        assert!(!t.verify(&other_body), "a tag belongs to its body");
        assert!(!tags(&[OLD]).verify(&key), "another secret's tag");
    }

    #[test]
    fn every_listed_secret_verifies_and_the_first_one_seals() {
        let old = tags(&[OLD]).seal("dg_body");
        let rotated = tags(&[NEW, OLD]);
        assert!(rotated.verify(&old), "keys of the old secret still work");
        assert_eq!(rotated.seal("dg_body"), tags(&[NEW]).seal("dg_body"));
        assert!(
            !tags(&[NEW]).verify(&old),
            "until the old secret is removed"
        );
    }

    #[test]
    fn short_or_missing_secrets_are_refused_with_the_reason() {
        assert!(KeyTags::new(&[]).unwrap_err().contains("at least one"));
        let error = KeyTags::new(&[NEW.into(), "short".into()]).unwrap_err();
        assert!(error.contains("secret 2 of 2 has 5 characters"), "{error}");
        assert!(
            !format!("{:?}", tags(&[NEW])).contains(NEW),
            "Debug hides secrets"
        );
    }
}
