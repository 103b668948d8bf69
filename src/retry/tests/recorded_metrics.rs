//! What the loop reports through the `metrics` facade.

use super::*;

/// A recorder that keeps counter totals and last gauge values by name and labels.
#[derive(Default)]
struct Recorded(Mutex<std::collections::BTreeMap<String, f64>>);

struct Cell2(Arc<Recorded>, String);

impl metrics::CounterFn for Cell2 {
    fn increment(&self, value: u64) {
        *self.0.0.lock().unwrap().entry(self.1.clone()).or_default() += value as f64;
    }
    fn absolute(&self, value: u64) {
        self.0
            .0
            .lock()
            .unwrap()
            .insert(self.1.clone(), value as f64);
    }
}

impl metrics::GaugeFn for Cell2 {
    fn increment(&self, value: f64) {
        *self.0.0.lock().unwrap().entry(self.1.clone()).or_default() += value;
    }
    fn decrement(&self, value: f64) {
        *self.0.0.lock().unwrap().entry(self.1.clone()).or_default() -= value;
    }
    fn set(&self, value: f64) {
        self.0.0.lock().unwrap().insert(self.1.clone(), value);
    }
}

struct TestRecorder(Arc<Recorded>);

impl TestRecorder {
    fn cell(&self, key: &metrics::Key) -> Arc<Cell2> {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        Arc::new(Cell2(
            Arc::clone(&self.0),
            format!("{}{{{}}}", key.name(), labels.join(",")),
        ))
    }
}

impl metrics::Recorder for TestRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::from_arc(self.cell(key))
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

#[tokio::test(start_paused = true)]
async fn attempts_retries_by_reason_give_ups_and_budget_level_are_recorded() {
    let recorded = Arc::new(Recorded::default());
    let recorder = TestRecorder(Arc::clone(&recorded));
    let _guard = metrics::set_default_local_recorder(&recorder);

    let budget = Arc::new(
        RetryBudget::builder()
            .capacity(100)
            .per_success(1)
            .per_second(0)
            .build()
            .unwrap(),
    );
    let policy = policy().budget(budget).max_attempts(3).build().unwrap();
    let hot_key = service(
        "ProvisionedThroughputExceededException",
        400,
        r#"{"ThrottlingReasons":[{"reason":"TableWriteKeyRangeThroughputExceeded"}]}"#,
    );
    let (result, _) = run_script(&policy, &get(), vec![Err(hot_key), Err(internal())]).await;
    assert_eq!(result.unwrap(), "done");
    let (result, _) = run_script(&policy, &get(), (0..3).map(|_| Err(throttled())).collect()).await;
    assert_eq!(result.unwrap_err().reason(), GiveUp::MaxAttempts);

    let m = recorded.0.lock().unwrap().clone();
    let get = |k: &str| {
        m.get(k)
            .copied()
            .unwrap_or_else(|| panic!("{k} missing from {m:#?}"))
    };
    assert_eq!(
        get("dynagate_dynamodb_attempts_total{operation=GetItem,outcome=success}"),
        1.0
    );
    assert_eq!(
        get("dynagate_dynamodb_attempts_total{operation=GetItem,outcome=throttling}"),
        4.0
    );
    assert_eq!(
        get("dynagate_dynamodb_attempts_total{operation=GetItem,outcome=transient}"),
        1.0
    );
    assert_eq!(
        get(
            "dynagate_dynamodb_retries_total{kind=throttling,operation=GetItem,reason=TableWriteKeyRangeThroughputExceeded}"
        ),
        1.0
    );
    assert_eq!(
        get(
            "dynagate_dynamodb_retries_total{kind=throttling,operation=GetItem,reason=TableWriteProvisionedThroughputExceeded}"
        ),
        2.0
    );
    assert_eq!(
        get("dynagate_dynamodb_retries_total{kind=transient,operation=GetItem,reason=transient}"),
        1.0
    );
    assert_eq!(
        get("dynagate_dynamodb_give_ups_total{operation=GetItem,reason=max_attempts}"),
        1.0
    );
    // 100 - 3 throttle retries * 0 - 1 server-error retry * 5 + 1 success = 96.
    assert_eq!(get("dynagate_retry_budget_tokens{}"), 96.0);
}
