//! One Lua script call: `EVALSHA` with `NOSCRIPT` recovery, within a deadline.

use std::time::Duration;

use redis::{ErrorKind, FromRedisValue, RedisError, ServerErrorKind, ToRedisArgs};

use crate::redis_support::RedisConnection;

/// A Lua script, with its SHA1 computed once.
#[derive(Debug)]
pub(crate) struct Script {
    source: &'static str,
    hash: String,
}

impl Script {
    pub(crate) fn new(source: &'static str) -> Script {
        Script {
            source,
            hash: redis::Script::new(source).get_hash().to_owned(),
        }
    }

    pub(crate) fn source(&self) -> &'static str {
        self.source
    }

    /// The SHA1 that `EVALSHA` names the script by.
    pub(crate) fn hash(&self) -> &str {
        &self.hash
    }
}

/// A Redis script call of the rate limiter or the capacity gate failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScriptError {
    /// Redis did not answer within the deadline. The call may still be
    /// applied by Redis later.
    #[error("Redis did not answer the script within {deadline:?}")]
    Timeout {
        /// The deadline that passed.
        deadline: Duration,
    },
    /// The connection or Redis failed the call.
    #[error("Redis failed the script call")]
    Redis {
        /// The error redis-rs reported.
        #[source]
        source: RedisError,
    },
    /// The script answered something it never answers (another script under
    /// the same SHA1, or a version mismatch).
    #[error("the script answered {reply}, which is not one of its replies")]
    UnexpectedReply {
        /// The reply, as debug text.
        reply: String,
    },
}

impl ScriptError {
    /// A short stable label for metrics: `timeout`, `connection`, `server`
    /// or `reply`.
    pub fn label(&self) -> &'static str {
        match self {
            ScriptError::Timeout { .. } => "timeout",
            ScriptError::Redis { source } if source.is_timeout() => "timeout",
            ScriptError::Redis { source }
                if source.is_io_error()
                    || source.is_connection_dropped()
                    || source.is_connection_refusal() =>
            {
                "connection"
            }
            ScriptError::Redis { .. } => "server",
            ScriptError::UnexpectedReply { .. } => "reply",
        }
    }
}

/// Runs `script` as `EVALSHA` within `deadline`, and on `NOSCRIPT` (Redis
/// forgot it: a `SCRIPT FLUSH`, a restart, a failover to a replica that never
/// saw it) as `EVAL` with its text, which both answers and caches it on the
/// node that owns the keys; `on_reload` is told. (redis-rs's `invoke_script`
/// does not recover on every path, redis-rs#1394.)
pub(crate) async fn run_script<A: ToRedisArgs, R: FromRedisValue>(
    connection: &RedisConnection,
    script: &Script,
    keys: &[String],
    args: &[A],
    deadline: Duration,
    on_reload: impl FnOnce(),
) -> Result<R, ScriptError> {
    let mut connection = connection.clone();
    let call = async {
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha
            .arg(&script.hash)
            .arg(keys.len())
            .arg(keys)
            .arg(args);
        match evalsha.query_async(&mut connection).await {
            Err(error) if is_noscript(&error) => {
                on_reload();
                let mut eval = redis::cmd("EVAL");
                eval.arg(script.source).arg(keys.len()).arg(keys).arg(args);
                eval.query_async(&mut connection).await
            }
            other => other,
        }
    };
    match tokio::time::timeout(deadline, call).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(source)) => Err(ScriptError::Redis { source }),
        Err(_) => Err(ScriptError::Timeout { deadline }),
    }
}

fn is_noscript(error: &RedisError) -> bool {
    error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) || error.code() == Some("NOSCRIPT")
}
