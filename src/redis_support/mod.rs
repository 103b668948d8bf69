//! Redis support shared by the rate limiter and the capacity gate: the
//! connection (one Redis or a cluster) and the script runner (`EVALSHA` with
//! `NOSCRIPT` recovery, a deadline per call).

mod connection;
mod script;

pub use self::connection::RedisConnection;
pub use self::script::ScriptError;
pub(crate) use self::script::{Script, run_script};
