//! The proxy's configuration: where it listens, where it forwards, the seed
//! of its randomness and its rules. See the crate docs for the JSON format.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use http::Uri;
use http::uri::Authority;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::rules::RuleSet;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8001";
/// The default upstream: DynamoDB Local as `stack/stack.sh` starts it.
pub const DEFAULT_UPSTREAM: &str = "http://127.0.0.1:8000";

/// Everything the proxy needs to start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// Address to listen on; port 0 picks a free port.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The DynamoDB endpoint requests are forwarded to.
    #[serde(default)]
    pub upstream: Upstream,
    /// Seed of the one RNG behind every random decision; `None` draws one
    /// (reported by [`RunningProxy::seed`](crate::RunningProxy::seed)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The fault rules.
    #[serde(default)]
    pub rules: RuleSet,
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN
        .parse()
        .expect("the default listen address parses")
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: default_listen(),
            upstream: Upstream::default(),
            seed: None,
            rules: RuleSet::default(),
        }
    }
}

impl ProxyConfig {
    /// Parses and validates a JSON configuration.
    pub fn from_json(json: &str) -> Result<ProxyConfig, ConfigError> {
        serde_json::from_str(json).map_err(|source| ConfigError::Json { source })
    }

    /// Reads, parses and validates a JSON configuration file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<ProxyConfig, ConfigError> {
        let path = path.as_ref();
        let json = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        ProxyConfig::from_json(&json)
    }

    /// Sets the listen address.
    pub fn with_listen(mut self, listen: SocketAddr) -> ProxyConfig {
        self.listen = listen;
        self
    }

    /// Sets the upstream.
    pub fn with_upstream(mut self, upstream: Upstream) -> ProxyConfig {
        self.upstream = upstream;
        self
    }

    /// Sets the RNG seed.
    pub fn with_seed(mut self, seed: u64) -> ProxyConfig {
        self.seed = Some(seed);
        self
    }

    /// Sets the rules.
    pub fn with_rules(mut self, rules: RuleSet) -> ProxyConfig {
        self.rules = rules;
        self
    }
}

/// A plain-HTTP upstream, `http://host:port` (no TLS, no path).
#[derive(Clone, PartialEq, Eq)]
pub struct Upstream {
    authority: Authority,
}

impl Upstream {
    /// Parses `http://host[:port]`.
    pub fn parse(url: &str) -> Result<Upstream, ConfigError> {
        let fail = |problem: &str| ConfigError::Upstream {
            value: url.to_owned(),
            problem: problem.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|_| fail("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(_) => return Err(fail("only http:// upstreams are supported (no TLS)")),
            None => return Err(fail("expected http://host:port")),
        }
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return Err(fail("the upstream must not have a path or query"));
        }
        let authority = uri.authority().cloned().ok_or_else(|| fail("no host"))?;
        Ok(Upstream { authority })
    }

    /// `host:port`.
    pub fn authority(&self) -> &str {
        self.authority.as_str()
    }

    /// The URI of `path_and_query` on the upstream.
    pub(crate) fn uri(&self, path_and_query: &str) -> Uri {
        Uri::builder()
            .scheme("http")
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .unwrap_or_else(|_| Uri::from_static("/"))
    }
}

impl Default for Upstream {
    fn default() -> Self {
        Upstream::parse(DEFAULT_UPSTREAM).expect("the default upstream parses")
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.authority)
    }
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Upstream({self})")
    }
}

impl Serialize for Upstream {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Upstream {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let url = String::deserialize(deserializer)?;
        Upstream::parse(&url).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inject::ErrorKind;

    #[test]
    fn an_empty_config_has_the_defaults() {
        let config = ProxyConfig::from_json("{}").unwrap();
        assert_eq!(config, ProxyConfig::default());
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.upstream.to_string(), DEFAULT_UPSTREAM);
        assert!(config.rules.rules().is_empty());
    }

    #[test]
    fn a_full_config_parses() {
        let config = ProxyConfig::from_json(
            r#"{
              "listen": "127.0.0.1:0",
              "upstream": "http://localhost:9000",
              "seed": 7,
              "rules": [{"table": "users", "errors": {"throttling": 0.5}}]
            }"#,
        )
        .unwrap();
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.upstream.authority(), "localhost:9000");
        assert_eq!(config.seed, Some(7));
        let users = config.rules.resolve("users", "PutItem");
        assert_eq!(users.errors[&ErrorKind::Throttling], 0.5);
    }

    #[test]
    fn the_example_config_file_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/throttle-users.json");
        let config = ProxyConfig::from_file(path).unwrap();
        assert!(config.rules.resolve("users", "PutItem").capacity.is_some());
    }

    #[test]
    fn invalid_configs_say_what_is_wrong() {
        let error = |json: &str| ProxyConfig::from_json(json).unwrap_err().to_string();
        assert!(
            error(r#"{"upstream": "https://dynamodb.us-east-1.amazonaws.com"}"#).contains("no TLS")
        );
        assert!(error(r#"{"upstream": "http://h:1/path"}"#).contains("path"));
        assert!(error(r#"{"listen": "nowhere"}"#).contains("invalid"));
        assert!(error(r#"{"rules": [{"errors": {"throttling": 2}}]}"#).contains("outside 0..=1"));
        assert!(error(r#"{"rule": []}"#).contains("unknown field `rule`"));
        let missing = ProxyConfig::from_file("/nonexistent/proxy.json").unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("cannot read configuration file /nonexistent/proxy.json")
        );
    }
}
