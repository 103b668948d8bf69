//! One variant's run: a fresh proxy and service, both callers for the
//! bench's duration, and what the proxy counted meanwhile.

use std::time::Duration;

use aws_config::SdkConfig;
use dynagate_fault_proxy::{OperationStats, Stats};
use tokio::time::Instant;

use crate::bench::{Bench, Variant};
use crate::load::{self, Got, Listed};
use crate::stack::{self, Names, Service};

/// What one variant came to.
pub(crate) struct Outcome {
    pub(crate) variant: Variant,
    /// The per-key read-unit quota in force: per second, burst.
    pub(crate) quota: (u64, u64),
    /// From the start of the load to the last answer.
    pub(crate) window: Duration,
    pub(crate) listed: Listed,
    pub(crate) got: Got,
    /// The proxy's counters on the users table over the window.
    pub(crate) scans: OperationStats,
    pub(crate) gets: OperationStats,
    pub(crate) table: OperationStats,
    /// This process's CPU time over the window (service, proxy and load).
    pub(crate) cpu: Duration,
}

impl Outcome {
    pub(crate) fn per_second(&self, amount: f64) -> f64 {
        amount / self.window.as_secs_f64()
    }

    /// Requests the service answered in the window, both callers.
    pub(crate) fn requests(&self) -> u64 {
        self.listed.requests() + self.got.sent
    }
}

pub(crate) async fn run(
    bench: &Bench,
    names: &Names,
    direct: &SdkConfig,
    variant: Variant,
) -> Outcome {
    // A proxy per variant: each starts with an empty burst bank and its own
    // counters, instead of the bank the other variant left.
    let proxy = stack::start_proxy(&names.users, bench.capacity).await;
    let config = stack::config(bench, names, variant);
    let service = Service::start(bench, &config, direct, &proxy).await;

    let before = proxy.stats();
    let cpu_before = process_cpu_time();
    let started = Instant::now();
    let end = started + bench.duration();
    let (listed, got) = tokio::join!(
        load::list(service.addr, &service.lister_key, bench.listers, end),
        load::get_users(
            service.addr,
            &service.getter_key,
            bench.get_rate,
            bench.users,
            end
        ),
    );
    let window = started.elapsed();
    let cpu = process_cpu_time().saturating_sub(cpu_before);
    let after = proxy.stats();
    drop(service);
    proxy.shutdown().await;

    let delta = |pick: &dyn Fn(&Stats) -> OperationStats| difference(pick(&after), pick(&before));
    Outcome {
        variant,
        quota: variant.read_quota(bench),
        window,
        listed,
        got,
        scans: delta(&|s| s.operation(&names.users, "Scan")),
        gets: delta(&|s| s.operation(&names.users, "GetItem")),
        table: delta(&|s| s.table(&names.users)),
        cpu,
    }
}

/// The counters the report uses, `after - before`.
fn difference(after: OperationStats, before: OperationStats) -> OperationStats {
    let mut delta = after.clone();
    delta.requests = after.requests - before.requests;
    delta.forwarded = after.forwarded - before.forwarded;
    delta.read_units = after.read_units - before.read_units;
    for (reason, n) in &mut delta.throttled {
        *n -= before.throttled.get(reason).copied().unwrap_or(0);
    }
    delta
}

/// This process's user + system CPU time so far, from `/proc/self/stat`.
fn process_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').expect("stat has a command") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Duration::from_secs_f64(ticks as f64 / per_second.max(1) as f64)
}
