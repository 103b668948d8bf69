//! The proxy's error types: one for configuration, one for starting.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A configuration the proxy refuses, with what is wrong and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration is not valid JSON or has an unknown field or value.
    #[error("invalid configuration JSON: {source}")]
    Json {
        /// The parser's complaint (it names the line, column and field).
        #[source]
        source: serde_json::Error,
    },
    /// The configuration file cannot be read.
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
    /// A rule is invalid; `rule` is `table:operation`.
    #[error("rule {rule}: {problem}")]
    Rule {
        /// The rule, as `table:operation`.
        rule: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Two rules have the same table and operation.
    #[error("rule {rule} appears twice; merge the two into one")]
    DuplicateRule {
        /// The rule, as `table:operation`.
        rule: String,
    },
    /// The upstream is not a plain `http://host:port` URL.
    #[error("upstream {value:?}: {problem}")]
    Upstream {
        /// The value given.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A command-line flag is unknown or its value is malformed.
    #[error("{flag}: {problem}")]
    Flag {
        /// The flag.
        flag: String,
        /// What is wrong.
        problem: String,
    },
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
}
