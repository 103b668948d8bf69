//! The bench's settings (from the environment) and its two variants.

use std::time::Duration;

use crate::common::env_number;

/// What one run measures; every field is a `BENCH_*` variable.
#[derive(Clone, Debug)]
pub(crate) struct Bench {
    /// `BENCH_CAPACITY`: the users table's read capacity, RCU/s.
    pub(crate) capacity: u32,
    /// `BENCH_READ_UNITS` and `BENCH_READ_BURST`: R and its burst, the
    /// read-unit quota per key when the charge is on.
    pub(crate) read_units: u64,
    pub(crate) read_burst: u64,
    /// `BENCH_SECONDS`: how long each variant's load runs.
    pub(crate) seconds: u64,
    /// `BENCH_LISTERS`: the lister's concurrent tasks.
    pub(crate) listers: usize,
    /// `BENCH_LISTER_REQUESTS`: the lister key's request quota per second
    /// (its burst is twice that).
    pub(crate) lister_requests: u64,
    /// `BENCH_GET_RATE`: the getter's GETs per second.
    pub(crate) get_rate: u32,
    /// `BENCH_USERS` users of about `BENCH_ITEM_BYTES` each.
    pub(crate) users: u32,
    pub(crate) item_bytes: usize,
    pub(crate) redis_url: String,
}

/// The read-unit quota of the "charge off" variant: so large it never binds.
pub(crate) const UNBOUNDED_UNITS: u64 = 1_000_000;

impl Bench {
    pub(crate) fn from_env() -> Bench {
        Bench {
            capacity: env_number("BENCH_CAPACITY", 100) as u32,
            read_units: env_number("BENCH_READ_UNITS", 20),
            read_burst: env_number("BENCH_READ_BURST", 32),
            seconds: env_number("BENCH_SECONDS", 30),
            listers: env_number("BENCH_LISTERS", 4) as usize,
            lister_requests: env_number("BENCH_LISTER_REQUESTS", 200),
            get_rate: env_number("BENCH_GET_RATE", 10) as u32,
            users: env_number("BENCH_USERS", 2000) as u32,
            item_bytes: env_number("BENCH_ITEM_BYTES", 1500) as usize,
            redis_url: std::env::var("REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        }
    }

    pub(crate) fn duration(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }
}

/// Whether the service charges callers in the read units they consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Variant {
    /// A read-unit quota of R per second, burst B, per key.
    ChargeOn,
    /// The same service, its read-unit quota too large to ever bind.
    ChargeOff,
}

impl Variant {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Variant::ChargeOn => "charge on",
            Variant::ChargeOff => "charge off",
        }
    }

    pub(crate) fn slug(self) -> &'static str {
        match self {
            Variant::ChargeOn => "on",
            Variant::ChargeOff => "off",
        }
    }

    /// The per-key read-unit quota: per second and burst.
    pub(crate) fn read_quota(self, bench: &Bench) -> (u64, u64) {
        match self {
            Variant::ChargeOn => (bench.read_units, bench.read_burst),
            Variant::ChargeOff => (UNBOUNDED_UNITS, UNBOUNDED_UNITS),
        }
    }
}
