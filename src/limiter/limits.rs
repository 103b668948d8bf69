//! The limits one call checks together, and the Redis keys of their buckets.
//!
//! A [`Limits`] is a namespace (`"api-key"`, `"ip"`, `"table:users"`) with
//! one or more named quotas (`"second"`, `"day"`). A check takes its cost from
//! every quota's bucket for one subject, or from none.
//!
//! The bucket of quota `name` for `subject` is the key
//! `<prefix><namespace>:{<subject>}:<name>`. The braces are a Redis Cluster
//! hash tag: only the subject is hashed, so every bucket of one caller lives in
//! one slot and one script call can read and write them all without
//! `CROSSSLOT`. Redis hashes the whole key when the tag is empty, so a subject
//! that is empty or starts with `}` (or with the escape `~`) gets a `~` in
//! front; the mapping stays one-to-one. Prefixes, namespaces and names may not
//! contain braces, so nothing but the subject can form or break the tag.
//!
//! A namespace and a name identify a bucket: two `Limits` that share a
//! namespace and a limit name share that bucket (give each quota set its own
//! namespace). Subjects are stored as given: hash API keys before using them
//! as subjects if the Redis keyspace should not hold them.

use std::collections::HashSet;
use std::sync::Arc;

use crate::error::ConfigError;
use crate::limiter::handles::Handles;
use crate::limiter::quota::Quota;

/// One named quota of a [`Limits`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    name: Arc<str>,
    quota: Quota,
}

impl Limit {
    /// The name, the last part of the bucket's key.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The quota.
    pub fn quota(&self) -> Quota {
        self.quota
    }
}

/// A namespace with the quotas one call checks together. See the module docs.
///
/// Cheap to clone. Two are equal when their namespaces and quotas are.
#[derive(Debug, Clone)]
pub struct Limits {
    namespace: Arc<str>,
    limits: Arc<[Limit]>,
    /// Counter handles and derived values, made once (shared by clones).
    handles: Arc<Handles>,
}

impl PartialEq for Limits {
    fn eq(&self, other: &Limits) -> bool {
        self.namespace == other.namespace && self.limits == other.limits
    }
}

impl Eq for Limits {}

impl Limits {
    /// The most quotas one call may check: each is a key and two arguments
    /// of one script call.
    pub const MAX: usize = 16;

    /// Starts a set of limits in `namespace`.
    pub fn builder(namespace: impl Into<String>) -> LimitsBuilder {
        LimitsBuilder {
            namespace: namespace.into(),
            limits: Vec::new(),
        }
    }

    /// A namespace with a single quota named `name`.
    pub fn single(
        namespace: impl Into<String>,
        name: impl Into<String>,
        quota: Quota,
    ) -> Result<Limits, ConfigError> {
        Limits::builder(namespace).limit(name, quota).build()
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The quotas, in the order they were added.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Limit> {
        self.limits.iter()
    }

    /// The quotas as a slice.
    pub fn as_slice(&self) -> &[Limit] {
        &self.limits
    }

    /// How many quotas there are (at least one).
    pub fn len(&self) -> usize {
        self.limits.len()
    }

    /// Always false: a `Limits` holds at least one quota.
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }

    /// What this `Limits` caches about itself (see `handles`).
    pub(crate) fn handles(&self) -> &Handles {
        &self.handles
    }

    /// The key of one bucket: `<prefix><namespace>:{<subject>}:<name>`.
    pub fn key(&self, prefix: &str, subject: &str, limit: &Limit) -> String {
        let mut key = self.subject_key(prefix, subject);
        key.push(':');
        key.push_str(&limit.name);
        key
    }

    /// Every bucket's key, in the order of the quotas.
    pub fn keys(&self, prefix: &str, subject: &str) -> Vec<String> {
        self.bucket_keys(&self.subject_key(prefix, subject))
            .collect()
    }

    /// Every bucket's key from the subject's key (`subject_key`), in the
    /// order of the quotas.
    pub(crate) fn bucket_keys<'a>(
        &'a self,
        subject_key: &'a str,
    ) -> impl Iterator<Item = String> + 'a {
        self.limits.iter().map(move |limit| {
            let mut key = String::with_capacity(subject_key.len() + 1 + limit.name.len());
            key.push_str(subject_key);
            key.push(':');
            key.push_str(&limit.name);
            key
        })
    }

    /// `<prefix><namespace>:{<subject>}`: what all of one subject's buckets
    /// in this namespace share.
    pub(crate) fn subject_key(&self, prefix: &str, subject: &str) -> String {
        let needs_escape = subject.is_empty() || subject.starts_with(['}', '~']);
        let mut key =
            String::with_capacity(prefix.len() + self.namespace.len() + subject.len() + 8);
        key.push_str(prefix);
        key.push_str(&self.namespace);
        key.push_str(":{");
        if needs_escape {
            key.push('~');
        }
        key.push_str(subject);
        key.push('}');
        key
    }

    /// The same limits with every quota divided among `instances` (see
    /// [`Quota::shared_by`]).
    pub(crate) fn shared_by(&self, instances: std::num::NonZeroU32) -> Limits {
        Limits {
            namespace: self.namespace.clone(),
            limits: self
                .limits
                .iter()
                .map(|l| Limit {
                    name: l.name.clone(),
                    quota: l.quota.shared_by(instances),
                })
                .collect(),
            handles: Arc::default(),
        }
    }
}

/// Builds [`Limits`], validating names when [`build`](LimitsBuilder::build) is called.
#[derive(Debug)]
pub struct LimitsBuilder {
    namespace: String,
    limits: Vec<(String, Quota)>,
}

impl LimitsBuilder {
    /// Adds a quota named `name` (e.g. `"second"`, `"day"`).
    pub fn limit(mut self, name: impl Into<String>, quota: Quota) -> Self {
        self.limits.push((name.into(), quota));
        self
    }

    /// Checks the namespace and names and builds the limits.
    ///
    /// Fails when there is no quota or more than [`Limits::MAX`], when a name
    /// repeats, or when the namespace or a name is empty or contains a brace.
    pub fn build(self) -> Result<Limits, ConfigError> {
        check_part("namespace", &self.namespace)?;
        if self.limits.is_empty() {
            return Err(ConfigError::invalid("limits", "need at least one quota"));
        }
        if self.limits.len() > Limits::MAX {
            return Err(ConfigError::invalid(
                "limits",
                format!(
                    "{} quotas, more than the maximum of {}",
                    self.limits.len(),
                    Limits::MAX
                ),
            ));
        }
        let mut seen = HashSet::new();
        for (name, _) in &self.limits {
            check_part("limit name", name)?;
            if !seen.insert(name.as_str()) {
                return Err(ConfigError::invalid(
                    "limit name",
                    format!("{name:?} appears twice in namespace {:?}", self.namespace),
                ));
            }
        }
        Ok(Limits {
            namespace: self.namespace.into(),
            limits: self
                .limits
                .into_iter()
                .map(|(name, quota)| Limit {
                    name: name.into(),
                    quota,
                })
                .collect(),
            handles: Arc::default(),
        })
    }
}

/// A key part other than the subject: not empty, and without braces, which
/// would move or break the subject's hash tag.
pub(crate) fn check_part(setting: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() {
        return Err(ConfigError::invalid(setting, "must not be empty"));
    }
    check_no_braces(setting, value)
}

pub(crate) fn check_no_braces(setting: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.contains(['{', '}']) {
        return Err(ConfigError::invalid(
            setting,
            format!("{value:?} contains a brace, which would break the subject's hash tag"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::builder("api")
            .limit("second", Quota::per_second(5).burst(10).unwrap())
            .limit("day", Quota::per_day(1000).burst(1000).unwrap())
            .build()
            .unwrap()
    }

    /// The hash tag Redis Cluster hashes: between the first `{` and the next `}`.
    fn hash_tag(key: &str) -> &str {
        let open = key.find('{').expect("a tag");
        let close = key[open + 1..].find('}').expect("closed") + open + 1;
        &key[open + 1..close]
    }

    #[test]
    fn every_bucket_of_a_subject_shares_its_hash_tag() {
        let keys = limits().keys("dg:", "key-123");
        assert_eq!(keys, ["dg:api:{key-123}:second", "dg:api:{key-123}:day"]);
        for subject in ["", "}", "}x}", "~", "a}b", "{x", "1.2.3.4", "::1"] {
            let keys = limits().keys("dg:", subject);
            let tag = hash_tag(&keys[0]);
            assert!(!tag.is_empty(), "{subject:?} gives an empty tag");
            assert!(keys.iter().all(|k| hash_tag(k) == tag), "{keys:?}");
        }
    }

    #[test]
    fn distinct_subjects_get_distinct_keys() {
        let subjects = ["", "~", "}", "~}", "}~", "~~", "a", "~a", "a}", "a}:day"];
        let mut seen = HashSet::new();
        for subject in subjects {
            for key in limits().keys("dg:", subject) {
                assert!(seen.insert(key.clone()), "{key} repeats");
            }
        }
    }

    #[test]
    fn names_that_would_break_the_tag_are_rejected() {
        let q = Quota::per_second(1).burst(1).unwrap();
        for (builder, setting) in [
            (Limits::builder("a{b").limit("s", q), "namespace"),
            (Limits::builder("").limit("s", q), "namespace"),
            (Limits::builder("a").limit("s}", q), "limit name"),
            (Limits::builder("a").limit("", q), "limit name"),
            (
                Limits::builder("a").limit("s", q).limit("s", q),
                "limit name",
            ),
            (Limits::builder("a"), "limits"),
        ] {
            let err = builder.build().unwrap_err();
            assert!(err.to_string().contains(setting), "{setting}: {err}");
        }
        let mut many = Limits::builder("a");
        for i in 0..=Limits::MAX {
            many = many.limit(format!("l{i}"), q);
        }
        assert!(many.build().is_err());
    }
}
