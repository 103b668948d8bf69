//! The cluster's masters as the bench sees them: their slots (from
//! `CLUSTER NODES`), their counters (`CONFIG RESETSTAT`, `INFO
//! commandstats`, `INFO cpu`) and the bench's keys on them.

use std::collections::HashMap;

use redis::aio::ConnectionManager;
use redis::cluster_routing::Slot;

pub(crate) const DEFAULT_URLS: &str =
    "redis://127.0.0.1:7000,redis://127.0.0.1:7001,redis://127.0.0.1:7002";
/// Redis Cluster's hash slots.
pub(crate) const SLOTS: u16 = 16_384;

/// One master: where it is, the slots it serves, an admin connection.
pub(crate) struct Master {
    pub(crate) address: String,
    pub(crate) slots: Vec<(u16, u16)>,
    pub(crate) admin: ConnectionManager,
}

impl Master {
    pub(crate) fn slot_count(&self) -> u64 {
        self.slots.iter().map(|&(a, b)| u64::from(b - a) + 1).sum()
    }
}

/// What one master did during a phase.
#[derive(Clone, Copy, Default)]
pub(crate) struct Spent {
    pub(crate) script_calls: u64,
    pub(crate) cpu_seconds: f64,
}

/// The masters and their slot ranges, from `CLUSTER NODES` of the first
/// node that answers.
pub(crate) async fn masters(urls: &[String]) -> Vec<Master> {
    let mut nodes = None;
    for url in urls {
        let Ok(client) = redis::Client::open(url.as_str()) else {
            continue;
        };
        if let Ok(mut c) = client.get_multiplexed_async_connection().await {
            let text: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query_async(&mut c)
                .await
                .unwrap_or_else(|e| panic!("CLUSTER NODES on {url}: {e} (is it a cluster node?)"));
            nodes = Some(text);
            break;
        }
    }
    let nodes = nodes.unwrap_or_else(|| {
        panic!("no node of {urls:?} answers: start the cluster with `stack/stack.sh start cluster`")
    });
    let mut found = Vec::new();
    for line in nodes.lines() {
        // <id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot>...
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 || !fields[2].split(',').any(|f| f == "master") {
            continue;
        }
        let address = fields[1].split('@').next().unwrap_or(fields[1]).to_owned();
        let slots = fields[8..]
            .iter()
            .filter(|s| !s.starts_with('[')) // slots being migrated
            .filter_map(|s| {
                let (a, b) = s.split_once('-').unwrap_or((s, s));
                Some((a.parse().ok()?, b.parse().ok()?))
            })
            .collect();
        let client = redis::Client::open(format!("redis://{address}")).expect("node address");
        let admin = ConnectionManager::new(client)
            .await
            .unwrap_or_else(|e| panic!("connecting to master {address}: {e}"));
        found.push(Master {
            address,
            slots,
            admin,
        });
    }
    found.sort_by_key(|m| m.slots.first().copied());
    assert!(!found.is_empty(), "CLUSTER NODES lists no master:\n{nodes}");
    found
}

/// `INFO <section>` of one master as `field -> value`.
async fn info(master: &mut Master, section: &str) -> HashMap<String, String> {
    let text: String = redis::cmd("INFO")
        .arg(section)
        .query_async(&mut master.admin)
        .await
        .unwrap_or_else(|e| panic!("INFO {section} on {}: {e}", master.address));
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

/// The master's CPU time so far: main thread and background threads.
async fn cpu_seconds(master: &mut Master) -> f64 {
    let cpu = info(master, "cpu").await;
    ["used_cpu_sys", "used_cpu_user"]
        .iter()
        .map(|k| {
            cpu.get(*k)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        })
        .sum()
}

/// Script calls since the last `CONFIG RESETSTAT`: every call of a script
/// is one round trip (the commands a script runs inside are counted apart).
async fn script_calls(master: &mut Master) -> u64 {
    let stats = info(master, "commandstats").await;
    ["cmdstat_evalsha", "cmdstat_eval"]
        .iter()
        .filter_map(|k| stats.get(*k))
        .filter_map(|v| {
            v.strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Resets every master's command counters; returns each one's CPU so far.
pub(crate) async fn start_phase(masters: &mut [Master]) -> Vec<f64> {
    let mut cpu = Vec::new();
    for master in masters.iter_mut() {
        let () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut master.admin)
            .await
            .unwrap_or_else(|e| panic!("CONFIG RESETSTAT on {}: {e}", master.address));
        cpu.push(cpu_seconds(master).await);
    }
    cpu
}

pub(crate) async fn end_phase(masters: &mut [Master], cpu_before: &[f64]) -> Vec<Spent> {
    let mut spent = Vec::new();
    for (master, before) in masters.iter_mut().zip(cpu_before) {
        spent.push(Spent {
            script_calls: script_calls(master).await,
            cpu_seconds: cpu_seconds(master).await - before,
        });
    }
    spent
}

/// Deletes every key under `prefix` on every master, one UNLINK per key (a
/// multi-key UNLINK must stay in one slot).
pub(crate) async fn cleanup(masters: &mut [Master], prefix: &str) -> usize {
    let mut deleted = 0;
    for master in masters {
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{prefix}*"))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut master.admin)
                .await
                .expect("SCAN");
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("UNLINK").arg(key).ignore();
            }
            if !keys.is_empty() {
                let () = pipe.query_async(&mut master.admin).await.expect("UNLINK");
                deleted += keys.len();
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    deleted
}

/// Which master serves each slot.
pub(crate) fn slot_owners(masters: &[Master]) -> HashMap<Slot, usize> {
    masters
        .iter()
        .enumerate()
        .flat_map(|(i, m)| {
            m.slots
                .iter()
                .flat_map(move |&(a, b)| (a..=b).map(move |s| (s, i)))
        })
        .filter_map(|(s, i)| Some((Slot::new(s)?, i)))
        .collect()
}
