//! A redis-server of a test's own, for tests that stop, freeze or restart
//! Redis: the shared servers of the local stack are never touched.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

use super::env::{START_COMMAND, check_reachable, unique_name};

/// How long a starting redis-server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A redis-server on a free loopback port, with a directory of its own, killed
/// and its directory removed when dropped, pass or fail.
#[derive(Debug)]
pub struct ThrowawayRedis {
    pub url: String,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// A stopped (SIGSTOP) server must be continued before it is killed and
    /// its directory removed.
    paused: bool,
}

impl ThrowawayRedis {
    /// Starts the server and waits until it accepts connections.
    pub async fn start() -> ThrowawayRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        // Nothing is saved (`--save ""`, no AOF); the directory only keeps
        // whatever redis-server might write out of the working tree.
        let dir = std::env::temp_dir().join(unique_name("dynagate-throwaway-redis"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let mut redis = ThrowawayRedis {
            url: format!("redis://127.0.0.1:{port}"),
            port,
            dir,
            child: None,
            paused: false,
        };
        redis.spawn().await;
        redis
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("running redis-server: {e} (`{START_COMMAND}` installs it)")
            });
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while let Err(message) = check_reachable("throwaway Redis", &self.url, self.port) {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start within {START_TIMEOUT:?}: {message}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A connection manager on this server.
    pub async fn manager(&self) -> ConnectionManager {
        let client = redis::Client::open(self.url.as_str())
            .unwrap_or_else(|e| panic!("{} is not a Redis URL: {e}", self.url));
        ConnectionManager::new(client)
            .await
            .unwrap_or_else(|e| panic!("connecting to the throwaway Redis at {}: {e}", self.url))
    }

    /// Kills the server now (SIGKILL): its clients see a dead Redis.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.paused {
                // Unchecked: this also runs in `drop`, maybe while a failed
                // test unwinds, where a second panic would abort.
                let _ = signal(child.id(), "-CONT");
                self.paused = false;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts a new, empty one on the same port.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&mut self) {
        if let Some(child) = &self.child {
            expect_signal(child.id(), "-STOP");
            self.paused = true;
        }
    }

    /// Lets a paused server answer again (SIGCONT).
    pub fn resume(&mut self) {
        if let Some(child) = &self.child {
            expect_signal(child.id(), "-CONT");
            self.paused = false;
        }
    }
}

/// Sends `signal` with kill(1): the tests link no libc binding for it.
fn signal(pid: u32, signal: &str) -> std::io::Result<std::process::ExitStatus> {
    Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
}

fn expect_signal(pid: u32, name: &str) {
    match signal(pid, name) {
        Ok(status) => assert!(status.success(), "kill {name} {pid}: {status}"),
        Err(e) => panic!("running kill {name} {pid}: {e}"),
    }
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
