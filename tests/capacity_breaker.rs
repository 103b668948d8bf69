//! Issue 13: the capacity gate's circuit breaker reported as the limiter's
//! ("rate-limit circuit open", the limiter's unlabelled gauge), so a dead
//! capacity Redis looked like the rate limiter failing. It now reports under
//! its own name, checked here through the metrics and logs a real gate
//! produces when its Redis dies.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestTable;
use common::capacity::{client, put};
use dynagate::BreakerSettings;
use dynagate::capacity::{CapacityGate, TableCapacity, Throughput};
use redis::aio::ConnectionManager;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_dead_capacity_redis_shows_as_the_capacity_breaker() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // One thread: the recorder and the subscriber are this thread's.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        metrics::with_local_recorder(&recorder, || {
            runtime.block_on(async {
                let table = TestTable::create("capacity-breaker").await;
                let dynamodb = client(None, Duration::from_secs(2)).await;
                let mut doomed = common::ThrowawayRedis::start().await;
                let manager =
                    ConnectionManager::new(redis::Client::open(doomed.url.as_str()).unwrap())
                        .await
                        .unwrap();
                let breaker = BreakerSettings::new(1, Duration::from_secs(5))
                    .unwrap()
                    .failing_for(Duration::ZERO);
                let gate = CapacityGate::builder(manager)
                    .table(TableCapacity::provisioned(
                        table.name(),
                        Throughput {
                            read: 10.0,
                            write: 10.0,
                        },
                    ))
                    .redis_deadline(Duration::from_millis(100))
                    .breaker(breaker)
                    .build()
                    .unwrap();
                let gated = dynamodb.with_gate(gate);
                doomed.kill();
                for i in 0..3 {
                    put(&gated, table.name(), &format!("b{i}"), 10, 1.0)
                        .await
                        .expect("the gate fails open");
                }
                table.delete().await;
            })
        })
    });

    let rendered = handle.render();
    assert!(
        rendered.contains("dynagate_circuit_open{breaker=\"capacity\"} 1"),
        "{rendered}"
    );
    assert!(!rendered.contains("breaker=\"limiter\""), "{rendered}");
    assert!(
        !rendered.contains("dynagate_limiter_circuit_open"),
        "{rendered}"
    );
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("circuit open") && logs.contains("breaker=\"capacity\""),
        "{logs}"
    );
    assert!(!logs.contains("rate-limit circuit"), "{logs}");
}
