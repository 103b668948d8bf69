//! The parent's side of the fleet: starts the worker processes, collects
//! their reports, and kills those still running if the run is abandoned.

use std::io::Read;
use std::process::{Child, Command, Stdio};

use tokio::task::JoinHandle;

use crate::bench::WORKER_ENV;
use crate::worker::{WorkerReport, WorkerSpec};

/// The worker processes of one run. Dropping it kills those still running.
pub(crate) struct Fleet {
    children: Vec<Child>,
}

impl Fleet {
    pub(crate) fn spawn(specs: &[WorkerSpec]) -> Fleet {
        let exe = std::env::current_exe().expect("the benchmark's own path");
        let mut fleet = Fleet {
            children: Vec::new(),
        };
        for spec in specs {
            let child = Command::new(&exe)
                .env(WORKER_ENV, serde_json::to_string(spec).expect("spec"))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("starting a worker process");
            fleet.children.push(child);
        }
        fleet
    }

    /// Reads every worker's report, in a task that ends when all are in.
    pub(crate) fn reports(&mut self) -> JoinHandle<Vec<WorkerReport>> {
        let readers: Vec<_> = self
            .children
            .iter_mut()
            .map(|child| {
                let mut stdout = child.stdout.take().expect("piped stdout");
                tokio::task::spawn_blocking(move || {
                    let mut out = String::new();
                    stdout.read_to_string(&mut out).map(|_| out)
                })
            })
            .collect();
        tokio::spawn(async move {
            let mut reports = Vec::new();
            for reader in readers {
                let out = reader.await.expect("reader").expect("a worker's stdout");
                let last_line = out.lines().last().unwrap_or_default();
                let report = serde_json::from_str(last_line)
                    .unwrap_or_else(|e| panic!("no report from a worker ({e}): {out:?}"));
                reports.push(report);
            }
            reports
        })
    }

    /// Checks that every worker exited successfully (they all closed stdout,
    /// so they are exiting).
    pub(crate) fn reap(&mut self) {
        for child in &mut self.children {
            let status = child.wait().expect("waiting for a worker");
            assert!(status.success(), "a worker failed: {status}");
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in &mut self.children {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
