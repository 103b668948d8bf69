//! Command-line flags of the `dynagate-fault-proxy` binary.

use std::collections::BTreeMap;

use crate::config::{ProxyConfig, Upstream};
use crate::error::ConfigError;
use crate::inject::ErrorKind;
use crate::rules::{Capacity, HotKey, Latency, Rule, RuleSet};

/// The binary's help text.
pub const USAGE: &str = "\
dynagate-fault-proxy: an HTTP proxy in front of DynamoDB (Local) that throttles
like DynamoDB, injects errors, drops responses and adds latency.

USAGE: dynagate-fault-proxy [FLAGS]

  --config PATH                   JSON configuration (see the crate docs); the
                                  flags below add to it or override it
  --listen ADDR                   listen address        [default: 127.0.0.1:8001]
  --upstream URL                  DynamoDB endpoint     [default: http://127.0.0.1:8000]
  --seed N                        RNG seed, to replay a run [default: random, printed]
  --write-capacity TABLE=UNITS    provisioned WCU per second (TABLE may be *)
  --read-capacity TABLE=UNITS     provisioned RCU per second (TABLE may be *)
  --burst-seconds N               bank size of the capacities above [default: 300]
  --hot-key TABLE=ATTRIBUTE       limit each partition key value of ATTRIBUTE to
                                  1000 WCU / 3000 RCU per second
  --error [TABLE:[OPERATION:]]KIND=P
                                  inject KIND with probability P; KIND is one of
                                  provisioned_throughput_exceeded, throttling,
                                  internal_server_error, service_unavailable
                                  (or the DynamoDB code, e.g. ThrottlingException)
  --drop-response-rate [TABLE[:OPERATION]=]P
                                  forward writes but drop the response with probability P
  --latency-ms N                  add N ms before forwarding every request
  --jitter-ms N                   add up to N more ms, uniformly drawn
  -h, --help                      this text

Control endpoints on the same port: GET /_fault/stats, GET|PUT /_fault/rules,
POST /_fault/reset. SIGINT or SIGTERM prints the counters and exits 0.
";

/// What the command line asks for.
#[derive(Debug)]
#[non_exhaustive]
pub enum Command {
    /// Run a proxy with this configuration.
    Run(Box<ProxyConfig>),
    /// Print [`USAGE`].
    Help,
}

/// Parses the arguments (without the program name).
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Command, ConfigError> {
    let mut flags: Vec<(String, String)> = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        if !arg.starts_with("--") {
            return Err(flag_error(&arg, "unexpected argument (see --help)"));
        }
        let (flag, value) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), value.to_owned()),
            None => {
                let value = args
                    .next()
                    .ok_or_else(|| flag_error(&arg, "needs a value"))?;
                (arg, value)
            }
        };
        flags.push((flag, value));
    }

    let mut config = match flags.iter().find(|(flag, _)| flag == "--config") {
        Some((_, path)) => ProxyConfig::from_file(path)?,
        None => ProxyConfig::default(),
    };
    let mut rules: Vec<Rule> = config.rules.rules().to_vec();
    let mut capacities: BTreeMap<String, (Option<u32>, Option<u32>)> = BTreeMap::new();
    let mut burst_seconds = None;
    let mut latency: Option<Latency> = None;
    for (flag, value) in &flags {
        match flag.as_str() {
            "--config" => {}
            "--listen" => {
                config.listen = value
                    .parse()
                    .map_err(|e| flag_error(flag, &format!("{value:?}: {e}")))?
            }
            "--upstream" => config.upstream = Upstream::parse(value)?,
            "--seed" => config.seed = Some(number(flag, value)?),
            "--write-capacity" | "--read-capacity" => {
                let (table, units) = assignment(flag, value)?;
                let units: u32 = number(flag, units)?;
                let entry = capacities.entry(table.to_owned()).or_default();
                if flag == "--read-capacity" {
                    entry.0 = Some(units);
                } else {
                    entry.1 = Some(units);
                }
            }
            "--burst-seconds" => burst_seconds = Some(number(flag, value)?),
            "--hot-key" => {
                let (table, attribute) = assignment(flag, value)?;
                rule_for(&mut rules, table, "*").hot_key = Some(HotKey::new(attribute));
            }
            "--error" => {
                let (target, probability) = assignment(flag, value)?;
                let probability: f64 = number(flag, probability)?;
                let mut parts: Vec<&str> = target.split(':').collect();
                let kind_name = parts.pop().unwrap_or_default();
                let kind = ErrorKind::parse(kind_name).ok_or_else(|| {
                    flag_error(flag, &format!("unknown error kind {kind_name:?}"))
                })?;
                let (table, operation) = match parts.as_slice() {
                    [] => ("*", "*"),
                    [table] => (*table, "*"),
                    [table, operation] => (*table, *operation),
                    _ => return Err(flag_error(flag, "expected [TABLE:[OPERATION:]]KIND=P")),
                };
                rule_for(&mut rules, table, operation)
                    .errors
                    .insert(kind, probability);
            }
            "--drop-response-rate" => {
                let (target, probability) = value.split_once('=').unwrap_or(("*", value));
                let (table, operation) = target.split_once(':').unwrap_or((target, "*"));
                rule_for(&mut rules, table, operation).drop_response =
                    Some(number(flag, probability)?);
            }
            "--latency-ms" => {
                latency.get_or_insert_with(Latency::default).fixed_ms = number(flag, value)?
            }
            "--jitter-ms" => {
                latency.get_or_insert_with(Latency::default).jitter_ms = number(flag, value)?
            }
            _ => return Err(flag_error(flag, "unknown flag (see --help)")),
        }
    }
    for (table, (read, write)) in capacities {
        let mut capacity = Capacity::new(read, write);
        if let Some(seconds) = burst_seconds {
            capacity = capacity.with_burst_seconds(seconds);
        }
        rule_for(&mut rules, &table, "*").capacity = Some(capacity);
    }
    if let Some(latency) = latency {
        rule_for(&mut rules, "*", "*").latency = Some(latency);
    }
    config.rules = RuleSet::new(rules)?;
    Ok(Command::Run(Box::new(config)))
}

fn rule_for<'r>(rules: &'r mut Vec<Rule>, table: &str, operation: &str) -> &'r mut Rule {
    let index = match rules
        .iter()
        .position(|r| r.table == table && r.operation == operation)
    {
        Some(index) => index,
        None => {
            rules.push(Rule::new(table, operation));
            rules.len() - 1
        }
    };
    &mut rules[index]
}

fn assignment<'v>(flag: &str, value: &'v str) -> Result<(&'v str, &'v str), ConfigError> {
    value
        .rsplit_once('=')
        .filter(|(left, right)| !left.is_empty() && !right.is_empty())
        .ok_or_else(|| flag_error(flag, &format!("expected NAME=VALUE, got {value:?}")))
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e| flag_error(flag, &format!("{value:?} is not a valid number: {e}")))
}

fn flag_error(flag: &str, problem: &str) -> ConfigError {
    ConfigError::Flag {
        flag: flag.to_owned(),
        problem: problem.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<ProxyConfig, ConfigError> {
        match parse_args(args.iter().map(|a| (*a).to_owned()))? {
            Command::Run(config) => Ok(*config),
            Command::Help => panic!("unexpected help"),
        }
    }

    #[test]
    fn flags_build_rules() {
        let config = run(&[
            "--listen",
            "127.0.0.1:0",
            "--seed=9",
            "--write-capacity",
            "users=5",
            "--read-capacity",
            "users=10",
            "--burst-seconds",
            "60",
            "--hot-key",
            "users=pk",
            "--error",
            "users:PutItem:InternalServerError=0.5",
            "--error",
            "throttling=0.01",
            "--drop-response-rate",
            "users=0.2",
            "--latency-ms",
            "3",
            "--jitter-ms",
            "4",
        ])
        .unwrap();
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.seed, Some(9));
        let put = config.rules.resolve("users", "PutItem");
        let capacity = put.capacity.unwrap();
        assert_eq!(
            (
                capacity.read_units_per_second,
                capacity.write_units_per_second
            ),
            (Some(10), Some(5))
        );
        assert_eq!(capacity.burst_seconds, 60);
        assert_eq!(put.hot_key.unwrap().partition_key, "pk");
        assert_eq!(put.errors[&ErrorKind::InternalServerError], 0.5);
        assert_eq!(put.errors[&ErrorKind::Throttling], 0.01);
        assert_eq!(put.drop_response, 0.2);
        assert_eq!(
            put.latency,
            Latency {
                fixed_ms: 3,
                jitter_ms: 4
            }
        );
    }

    #[test]
    fn flags_add_to_the_config_file() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/throttle-users.json");
        let config = run(&[
            "--config",
            path,
            "--write-capacity",
            "users=1",
            "--listen",
            "127.0.0.1:0",
        ])
        .unwrap();
        let users = config.rules.resolve("users", "PutItem");
        assert_eq!(users.capacity.unwrap().write_units_per_second, Some(1));
        assert_eq!(
            users.errors[&ErrorKind::InternalServerError],
            0.01,
            "kept from the file"
        );
        assert_eq!(config.seed, Some(42));
    }

    #[test]
    fn bad_flags_say_what_is_wrong() {
        let error = |args: &[&str]| run(args).unwrap_err().to_string();
        assert!(error(&["--error", "teapot=0.1"]).contains("unknown error kind \"teapot\""));
        assert!(error(&["--error", "throttling=1.5"]).contains("outside 0..=1"));
        assert!(error(&["--write-capacity", "users"]).contains("expected NAME=VALUE"));
        assert!(error(&["--write-capacity", "users=0"]).contains("at least 1"));
        assert!(error(&["--seed", "x"]).contains("not a valid number"));
        assert!(error(&["--frobnicate", "1"]).contains("unknown flag"));
        assert!(error(&["--listen"]).contains("needs a value"));
        assert!(error(&["--upstream", "https://x"]).contains("no TLS"));
        assert!(matches!(
            parse_args(["--help".to_owned()]),
            Ok(Command::Help)
        ));
    }
}
