//! CPU time from `/proc`, so the benches can put a cost beside each
//! variant's throughput: CPU time holds still when something else shares the
//! machine, where throughput and latency do not. The Rust twin of
//! `benches/compare/proc_cpu.sh`.

use std::process::Command;
use std::time::Duration;

/// The user + system CPU time of process `pid`, every thread of it
/// (fields 14 and 15 of `/proc/PID/stat`), in clock ticks; `None` if the
/// process is gone or `/proc` cannot be read.
pub fn process_ticks(pid: u32) -> Option<u64> {
    stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// [`process_ticks`] of this process.
pub fn own_ticks() -> u64 {
    process_ticks(std::process::id()).unwrap_or(0)
}

/// The CPU time, in clock ticks, of this process's threads whose name starts
/// with `prefix` (e.g. a runtime's `thread_name`): to tell apart the parts of
/// one process. A thread that exited took its ticks with it, so name only
/// threads that live for the whole measurement.
pub fn own_thread_ticks(prefix: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .filter(|stat| command_name(stat).is_some_and(|name| name.starts_with(prefix)))
        .filter_map(|stat| stat_ticks(&stat))
        .sum()
}

/// Clock ticks per second, the unit of `/proc/PID/stat`.
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf reads a constant of the C library and has no
    // preconditions; it returns -1 for a name it does not know.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // Linux has reported 100 on every architecture for decades; the
    // fallback only matters on a libc that does not know the name.
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// `ticks` as a duration.
pub fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_secs_f64(ticks as f64 / ticks_per_second() as f64)
}

/// CPU time per successful write, in microseconds, for a table cell: `-`
/// when the ticks are unknown or nothing succeeded.
pub fn per_success(ticks: Option<u64>, successes: u64) -> String {
    match ticks {
        Some(ticks) if successes > 0 => {
            let micros = ticks_to_duration(ticks).as_secs_f64() * 1e6;
            format!("{:.0} µs", micros / successes as f64)
        }
        _ => "-".into(),
    }
}

/// The pid of the process listening on TCP `port` of this machine (e.g.
/// DynamoDB Local's java process), from `ss -Hltnp`: `None` if nothing
/// listens, `ss` is missing, or the listener belongs to a user whose
/// processes `ss` may not show.
pub fn listening_pid(port: u16) -> Option<u32> {
    let filter = format!("sport = :{port}");
    let out = Command::new("ss")
        .args(["-Hltnp", filter.as_str()])
        .output()
        .ok()
        .filter(|out| out.status.success())?;
    // A line ends like `users:(("java",pid=27814,fd=121))`.
    let text = String::from_utf8_lossy(&out.stdout);
    let (_, after) = text.split_once("pid=")?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The port of an `http://host:port` endpoint URL on this machine (80 when
/// none is given); `None` for another host, whose processes `/proc` cannot see.
pub fn local_port(url: &str) -> Option<u16> {
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = authority.split('/').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.ends_with(']') => (host, port.parse().ok()?),
        _ => (authority, 80),
    };
    matches!(host, "127.0.0.1" | "localhost" | "[::1]").then_some(port)
}

/// utime + stime of a `/proc/PID/stat` line. The fields are counted after
/// the last `)`, since the command name in field 2 may hold spaces and
/// parentheses: after it, field 3 (state) comes first, so utime (14) is the
/// 12th and stime (15) the 13th.
fn stat_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Field 2 of a `/proc/PID/stat` line, without its parentheses.
fn command_name(stat: &str) -> Option<&str> {
    let start = stat.find('(')? + 1;
    let end = stat.rfind(')')?;
    stat.get(start..end)
}
