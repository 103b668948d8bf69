//! The generator's settings: each `--flag value` on the command line, else
//! the environment variable `ARENA_FLAG` (`--rate-invalid-keys` reads
//! `ARENA_RATE_INVALID_KEYS`), else the default.

use std::collections::BTreeMap;
use std::time::Duration;

/// Every setting, its default and what it means: the `--help` text and the
/// parser's list of known flags.
pub const FLAGS: &[(&str, &str, &str)] = &[
    (
        "side",
        "dynagate",
        "label of the side measured (dynagate or flask)",
    ),
    (
        "targets",
        "",
        "comma-separated base URLs of the instances (round-robin)",
    ),
    ("keys-file", "", "legitimate API keys, one a line"),
    (
        "attack-keys-file",
        "",
        "the attacker's own valid keys, one a line (list, create and replay floods)",
    ),
    ("stolen-key-file", "", "the stolen valid key"),
    (
        "proxy",
        "",
        "the fault proxy's base URL (its /_fault/stats)",
    ),
    ("users-table", "", "the users table, as the proxy names it"),
    (
        "keys-table",
        "",
        "the API keys table, as the proxy names it",
    ),
    (
        "service-pids",
        "",
        "comma-separated pids of the service (each with its child processes: CPU from /proc)",
    ),
    ("out", "", "where to write the JSON summary"),
    ("run-id", "arena", "prefix of the user ids this run creates"),
    (
        "seconds",
        "60",
        "length of the main phase (all traffic at once)",
    ),
    (
        "invalid-only-seconds",
        "10",
        "length of the phase before it: invalid keys alone",
    ),
    (
        "legit-rate",
        // The legitimate population should fit the table with room to spare:
        // at 2/s per key, the default mix's writes alone came close to the
        // default 50 WCU/s (see the arena's write units consumed), and a
        // table that full sheds legitimate writes under any gate, attack or
        // not. At 1/s they take about half of it.
        "1",
        "requests per second of each legitimate key",
    ),
    (
        "mix",
        "get=55,post=15,put=20,list=10",
        "legitimate mix, weights per operation",
    ),
    (
        "missing-share",
        "0.05",
        "share of legitimate GETs asking for a user that does not exist",
    ),
    (
        "rate-invalid-keys",
        "100",
        "invalid-key rotation, requests per second",
    ),
    (
        "invalid-key-addresses",
        "1000",
        "client addresses of the invalid-key rotation",
    ),
    (
        "rate-stolen-key",
        "50",
        "one stolen valid key, requests per second",
    ),
    (
        "stolen-key-addresses",
        "300",
        "client addresses using the stolen key",
    ),
    (
        "rate-anonymous",
        "100",
        "requests without a key, per second",
    ),
    (
        "anonymous-addresses",
        "500",
        "client addresses of the anonymous flood",
    ),
    (
        "rate-list-flood",
        "30",
        "list pages of 100 with the attacker's keys, per second",
    ),
    (
        "rate-create-flood",
        "30",
        "creates with the attacker's keys, per second",
    ),
    (
        "rate-replay-storm",
        "30",
        "one Idempotency-Key replayed, per second",
    ),
    (
        "slowloris",
        "30",
        "connections sending their headers a byte at a time",
    ),
];

/// Parsed settings: flag name to value.
#[derive(Debug, Clone)]
pub struct Settings {
    values: BTreeMap<&'static str, String>,
}

impl Settings {
    /// From `args` (without the program name) and `env` (a variable's value
    /// by name). The error names the flag and says what it takes.
    pub fn parse(
        args: &[String],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, String> {
        let mut values = BTreeMap::new();
        for (name, default, _) in FLAGS {
            let variable = format!("ARENA_{}", name.to_uppercase().replace('-', "_"));
            let value = env(&variable).filter(|v| !v.trim().is_empty());
            values.insert(*name, value.unwrap_or_else(|| (*default).to_owned()));
        }
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let name = arg
                .strip_prefix("--")
                .and_then(|n| FLAGS.iter().find(|(f, _, _)| *f == n))
                .map(|(f, _, _)| *f)
                .ok_or_else(|| format!("unknown argument `{arg}`: see arena --help"))?;
            let value = args
                .next()
                .ok_or_else(|| format!("--{name} needs a value"))?;
            values.insert(name, value.clone());
        }
        Ok(Settings { values })
    }

    /// The value of a flag (every flag has one: its default at least).
    pub fn text(&self, name: &str) -> &str {
        self.values.get(name).map_or("", String::as_str)
    }

    /// A flag that must be set.
    pub fn required(&self, name: &str) -> Result<&str, String> {
        Some(self.text(name))
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("--{name} is required (see arena --help)"))
    }

    /// A number (a rate, a count, seconds).
    pub fn number(&self, name: &str) -> Result<f64, String> {
        self.text(name)
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
            .ok_or_else(|| {
                format!(
                    "--{name} must be a number, at least 0, got `{}`",
                    self.text(name)
                )
            })
    }

    /// A whole count.
    pub fn count(&self, name: &str) -> Result<usize, String> {
        let n = self.number(name)?;
        if n.fract() != 0.0 {
            return Err(format!("--{name} must be a whole number, got `{n}`"));
        }
        Ok(n as usize)
    }

    /// Seconds.
    pub fn seconds(&self, name: &str) -> Result<Duration, String> {
        Ok(Duration::from_secs_f64(self.number(name)?))
    }

    /// A comma-separated list.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.text(name)
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// The `--help` text.
pub fn usage() -> String {
    let mut text = String::from(
        "arena: legitimate users and attacks at once against the users API instances\n\
         \nUSAGE: arena --targets URL,URL --keys-file F --attack-keys-file F --stolen-key-file F \
         --proxy URL --users-table T --keys-table T --service-pids P,P --out F [settings]\n\n",
    );
    for (name, default, meaning) in FLAGS {
        text.push_str(&format!("  --{name:<24} {meaning} [{default}]\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn flags_override_the_environment_which_overrides_defaults() {
        let env = |name: &str| (name == "ARENA_RATE_ANONYMOUS").then(|| "7".to_owned());
        let settings = Settings::parse(&args("--seconds 5 --targets a,b"), env).unwrap();
        assert_eq!(settings.number("seconds").unwrap(), 5.0);
        assert_eq!(settings.number("rate-anonymous").unwrap(), 7.0);
        assert_eq!(settings.number("rate-create-flood").unwrap(), 30.0);
        assert_eq!(settings.list("targets"), ["a", "b"]);
        let settings = Settings::parse(&args("--rate-anonymous 9"), env).unwrap();
        assert_eq!(settings.number("rate-anonymous").unwrap(), 9.0);
    }

    #[test]
    fn errors_name_the_flag() {
        let none = |_: &str| None;
        let err = Settings::parse(&args("--rates 5"), none).unwrap_err();
        assert!(err.contains("unknown argument `--rates`"), "{err}");
        let err = Settings::parse(&args("--seconds"), none).unwrap_err();
        assert!(err.contains("--seconds needs a value"), "{err}");
        let settings = Settings::parse(&args("--seconds -3 --slowloris 2.5"), none).unwrap();
        assert!(
            settings
                .number("seconds")
                .unwrap_err()
                .contains("--seconds must be")
        );
        assert!(
            settings
                .count("slowloris")
                .unwrap_err()
                .contains("whole number")
        );
        assert!(
            settings
                .required("proxy")
                .unwrap_err()
                .contains("--proxy is required")
        );
    }
}
