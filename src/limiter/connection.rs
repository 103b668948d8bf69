//! The connection the Redis limiter talks through: one Redis or a cluster.

use std::fmt;

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisFuture, ServerErrorKind,
    ToRedisArgs, Value,
};

/// A Redis connection the limiter can clone freely: every variant multiplexes
/// concurrent requests over shared sockets.
///
/// Build one with `From`: a [`ConnectionManager`] (reconnects by itself after
/// a restart, the usual choice for a single Redis), a [`ClusterConnection`]
/// (Redis Cluster: follows `MOVED`/`ASK` and failovers) or a bare
/// [`MultiplexedConnection`] (no reconnection).
#[derive(Clone)]
#[non_exhaustive]
pub enum RedisConnection {
    /// A single Redis through a reconnecting manager.
    Manager(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
    /// A single Redis over one multiplexed connection, without reconnection.
    Multiplexed(MultiplexedConnection),
}

impl RedisConnection {
    /// A short label for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            RedisConnection::Manager(_) => "single",
            RedisConnection::Cluster(_) => "cluster",
            RedisConnection::Multiplexed(_) => "multiplexed",
        }
    }
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RedisConnection")
            .field(&self.kind())
            .finish()
    }
}

impl From<ConnectionManager> for RedisConnection {
    fn from(connection: ConnectionManager) -> Self {
        RedisConnection::Manager(connection)
    }
}

impl From<ClusterConnection> for RedisConnection {
    fn from(connection: ClusterConnection) -> Self {
        RedisConnection::Cluster(connection)
    }
}

impl From<MultiplexedConnection> for RedisConnection {
    fn from(connection: MultiplexedConnection) -> Self {
        RedisConnection::Multiplexed(connection)
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Manager(c) => c.req_packed_command(cmd),
            RedisConnection::Cluster(c) => c.req_packed_command(cmd),
            RedisConnection::Multiplexed(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConnection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConnection::Multiplexed(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Manager(c) => c.get_db(),
            RedisConnection::Cluster(c) => c.get_db(),
            RedisConnection::Multiplexed(c) => c.get_db(),
        }
    }
}

/// Runs a Lua script as `EVALSHA`, and on `NOSCRIPT` (Redis forgot it: a
/// `SCRIPT FLUSH`, a restart, a failover to a replica that never saw it) as
/// `EVAL` with its text, which both answers and caches it on the node that
/// owns the keys; `on_reload` is told. (redis-rs's `invoke_script` does not
/// recover on every path, redis-rs#1394.)
pub(crate) async fn run_script<A: ToRedisArgs, R: FromRedisValue>(
    connection: &mut RedisConnection,
    (source, hash): (&str, &str),
    keys: &[String],
    args: &[A],
    on_reload: impl FnOnce(),
) -> Result<R, RedisError> {
    let mut evalsha = redis::cmd("EVALSHA");
    evalsha.arg(hash).arg(keys.len()).arg(keys).arg(args);
    match evalsha.query_async(connection).await {
        Err(error) if is_noscript(&error) => {
            on_reload();
            let mut eval = redis::cmd("EVAL");
            eval.arg(source).arg(keys.len()).arg(keys).arg(args);
            eval.query_async(connection).await
        }
        other => other,
    }
}

fn is_noscript(error: &RedisError) -> bool {
    error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) || error.code() == Some("NOSCRIPT")
}
