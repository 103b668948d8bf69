//! A bench's result file: what it prints, also written to
//! `benches/results/<bench>.md` under a header that says how to reproduce it
//! and on what it ran. The README links these files instead of quoting
//! figures, so the numbers a reader sees are always from a real run.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// Prints a line of a bench's results and keeps it for the result file:
/// `say!(results)` for an empty line, else `say!(results, "format", args...)`.
macro_rules! say {
    ($results:expr) => {
        $results.line(String::new())
    };
    ($results:expr, $($arg:tt)*) => {
        $results.line(format!($($arg)*))
    };
}
pub(crate) use say;

/// The output of one bench run, collected for its result file.
pub struct Results {
    bench: &'static str,
    started: String,
    load_at_start: String,
    versions: Vec<(String, String)>,
    body: String,
}

impl Results {
    /// Starts a run of `cargo bench --bench <bench>`: notes the time and the
    /// machine's load now, before the bench adds its own.
    pub fn start(bench: &'static str) -> Results {
        Results {
            bench,
            started: utc_now(),
            load_at_start: load_average(),
            versions: vec![("rustc".into(), rustc_version())],
            body: String::new(),
        }
    }

    /// Records the version of something the bench ran against.
    pub fn version(&mut self, what: &str, version: impl Into<String>) {
        self.versions.push((what.into(), version.into()));
    }

    /// Prints `line` and keeps it for the result file.
    pub fn line(&mut self, line: String) {
        println!("{line}");
        self.body.push_str(&line);
        self.body.push('\n');
    }

    /// Writes the result file (the header, then every line printed through
    /// [`Results::line`]) and says where. `BENCH_RESULTS_DIR` puts it
    /// elsewhere than `benches/results`, e.g. for a script that runs a bench
    /// with other settings and must not overwrite the default run's file.
    pub fn save(self) {
        let dir = std::env::var_os("BENCH_RESULTS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/results"));
        let path = dir.join(format!("{}.md", self.bench));
        let mut text = String::new();
        let _ = writeln!(text, "# `{}` benchmark results", self.bench);
        let _ = writeln!(text);
        let _ = writeln!(
            text,
            "Written by `benches/{0}` at the end of a run; reproduce with:",
            self.source()
        );
        let _ = writeln!(text);
        let _ = writeln!(text, "    {}", self.command());
        let _ = writeln!(text);
        let _ = writeln!(text, "- started: {} UTC", self.started);
        let _ = writeln!(text, "- machine: {}", machine());
        let _ = writeln!(
            text,
            "- load average (1, 5, 15 min): {} at start, {} at end",
            self.load_at_start,
            load_average()
        );
        let versions: Vec<String> = self
            .versions
            .iter()
            .map(|(what, version)| format!("{what} {version}"))
            .collect();
        let _ = writeln!(text, "- versions: {}", versions.join(", "));
        let _ = writeln!(text);
        let _ = writeln!(text, "Output, as printed:");
        let _ = writeln!(text);
        text.push_str(&self.body);
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&path, text))
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        eprintln!("{}: results written to {}", self.bench, path.display());
    }

    /// The bench's source, as a reader finds it in the repository.
    fn source(&self) -> String {
        let single = format!("{}.rs", self.bench);
        let in_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches");
        if in_dir.join(&single).exists() {
            single
        } else {
            format!("{}/", self.bench)
        }
    }

    /// The command line, with the bench's settings that differ from their
    /// defaults (every `BENCH_*` variable set in the environment).
    fn command(&self) -> String {
        let mut settings: Vec<String> = std::env::vars()
            .filter(|(name, _)| name.starts_with("BENCH_") && name != "BENCH_RESULTS_DIR")
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        settings.sort();
        settings.push(format!("cargo bench --bench {}", self.bench));
        settings.join(" ")
    }
}

/// The Redis server's version from `INFO server`, if it answers.
pub async fn redis_version(connection: &mut redis::aio::ConnectionManager) -> Option<String> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(connection)
        .await
        .ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map(|v| v.trim().to_owned())
}

fn rustc_version() -> String {
    Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .map(|v| v.strip_prefix("rustc ").unwrap_or(&v).to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// CPU model, cores, memory and kernel, from `/proc`.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_owned(), |(_, m)| m.trim().to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or("unknown memory".to_owned(), |kib| {
            format!("{:.1} GiB", kib / 1024.0 / 1024.0)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{model}, {cores} cores, {memory}, Linux {}", kernel.trim())
}

/// The first three fields of `/proc/loadavg`.
fn load_average() -> String {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let fields: Vec<&str> = loadavg.split_whitespace().take(3).collect();
    if fields.is_empty() {
        "unknown".into()
    } else {
        fields.join(" ")
    }
}

/// The current UTC time as `YYYY-MM-DD HH:MM:SS`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`), to avoid a date crate for one timestamp.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
