//! The connection the limiter and the capacity gate talk through: one Redis
//! or a cluster.

use std::fmt;

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// A Redis connection the limiter and the capacity gate clone freely: every variant multiplexes
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
