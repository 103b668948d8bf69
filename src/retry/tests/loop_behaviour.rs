//! The loop against scripted attempt outcomes, on a paused clock.

use super::*;

#[tokio::test(start_paused = true)]
async fn throttles_are_retried_with_backoff_until_success() {
    let policy = policy().build().unwrap();
    let started = Instant::now();
    let (result, calls) =
        run_script(&policy, &get(), vec![Err(throttled()), Err(throttled())]).await;
    assert_eq!(result.unwrap(), "done");
    assert_eq!(calls, 3);
    // Full jitter below the 250 ms then 500 ms envelopes: at most 750 ms of sleep.
    let slept = started.elapsed();
    assert!(slept <= Duration::from_millis(750), "{slept:?}");
    assert!(slept > Duration::ZERO, "it did back off");
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_and_conflicts_are_not_retried() {
    let policy = policy().build().unwrap();
    for error in [
        service("ValidationException", 400, "{}"),
        service("ConditionalCheckFailedException", 400, "{}"),
    ] {
        let (result, calls) = run_script(&policy, &get(), vec![Err(error)]).await;
        let error = result.unwrap_err();
        assert_eq!(calls, 1);
        assert_eq!(error.reason(), GiveUp::NotRetryable);
        assert_eq!(error.attempts(), 1);
        assert!(error.last_error().is_some());
        assert_eq!(error.retry_after(), None, "waiting does not fix it");
    }
}

#[tokio::test(start_paused = true)]
async fn an_ambiguous_write_is_handed_back_unless_it_is_idempotent() {
    let policy = policy().build().unwrap();
    let write = Operation::write("PutItem", "users");
    for maybe_applied in [timed_out(), internal()] {
        let (result, calls) = run_script(&policy, &write, vec![Err(maybe_applied)]).await;
        let error = result.unwrap_err();
        assert_eq!(calls, 1, "never retried on its own");
        assert_eq!(error.reason(), GiveUp::MaybeApplied);
        assert!(error.may_have_applied());
    }

    let (result, calls) =
        run_script(&policy, &write.clone().idempotent(), vec![Err(timed_out())]).await;
    assert_eq!(result.unwrap(), "done");
    assert_eq!(calls, 2);

    // Throttling applies nothing, so even a non-idempotent write is retried.
    let (result, calls) = run_script(&policy, &write, vec![Err(throttled())]).await;
    assert_eq!(result.unwrap(), "done");
    assert_eq!(calls, 2);
}

#[tokio::test(start_paused = true)]
async fn a_conflict_after_an_ambiguous_attempt_says_the_write_may_have_applied() {
    let policy = policy().build().unwrap();
    let write = Operation::write("PutItem", "users").idempotent();
    let (result, calls) = run_script(
        &policy,
        &write,
        vec![
            Err(timed_out()),
            Err(service("ConditionalCheckFailedException", 400, "{}")),
        ],
    )
    .await;
    let error = result.unwrap_err();
    assert_eq!(calls, 2);
    assert_eq!(error.kind(), Some(&ErrorKind::Conflict));
    assert!(
        error.may_have_applied(),
        "the first attempt may be the one the condition saw"
    );
}

/// DynamoDB charges a write whose condition failed and reports nothing with
/// the error: the usage meter counts its estimate, so a caller charged by
/// consumption pays for a write it repeats in vain. Reads and other
/// failures add nothing.
#[tokio::test(start_paused = true)]
async fn a_write_whose_condition_failed_is_metered_at_its_estimate() {
    let policy = policy().build().unwrap();
    let condition = || service("ConditionalCheckFailedException", 400, "{}");
    let transaction = Operation::write("TransactWriteItems", "users").units(4.0);
    let ((_, calls), usage) =
        crate::usage::metered(run_script(&policy, &transaction, vec![Err(condition())])).await;
    assert_eq!(calls, 1);
    assert_eq!(usage.write_units, 4.0);
    let unestimated = Operation::write("PutItem", "users");
    let (_, usage) =
        crate::usage::metered(run_script(&policy, &unestimated, vec![Err(condition())])).await;
    assert_eq!(
        usage.write_units, 1.0,
        "one unit when nothing was estimated"
    );
    let (_, usage) = crate::usage::metered(run_script(
        &policy,
        &transaction,
        vec![Err(service("ValidationException", 400, "{}"))],
    ))
    .await;
    assert_eq!(usage.write_units, 0.0, "a refused request consumed nothing");
    let (_, usage) =
        crate::usage::metered(run_script(&policy, &get(), vec![Err(condition())])).await;
    assert_eq!((usage.read_units, usage.write_units), (0.0, 0.0));
}

#[tokio::test(start_paused = true)]
async fn max_attempts_bounds_the_calls() {
    let policy = policy()
        .max_attempts(4)
        .deadline(Duration::from_secs(600))
        .build()
        .unwrap();
    let (result, calls) =
        run_script(&policy, &get(), (0..10).map(|_| Err(throttled())).collect()).await;
    let error = result.unwrap_err();
    assert_eq!(calls, 4);
    assert_eq!(error.reason(), GiveUp::MaxAttempts);
    assert!(error.is_throttling());
    assert!(error.retry_after().is_some());
    let message = error.to_string();
    assert!(
        message.contains("GetItem failed after 4 attempts"),
        "{message}"
    );
    assert!(
        message.contains("ProvisionedThroughputExceededException"),
        "{message}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_empty_budget_stops_a_retry_storm_across_callers() {
    // 50 tokens at 5 per retry: 10 retries for the whole client, no refill.
    let budget = Arc::new(
        RetryBudget::builder()
            .capacity(50)
            .per_success(1)
            .per_second(0)
            .build()
            .unwrap(),
    );
    let policy = policy()
        .budget(budget)
        .max_attempts(100)
        .deadline(Duration::from_secs(600))
        .build()
        .unwrap();
    let mut total_calls = 0;
    let mut exhausted = 0;
    for _ in 0..20 {
        let (result, calls) =
            run_script(&policy, &get(), (0..100).map(|_| Err(internal())).collect()).await;
        total_calls += calls;
        if result.unwrap_err().reason() == GiveUp::BudgetExhausted {
            exhausted += 1;
        }
    }
    assert_eq!(
        total_calls,
        20 + 10,
        "first attempts plus exactly the budget's 10 retries"
    );
    assert_eq!(
        exhausted, 20,
        "every caller ends on the empty budget, none on max attempts"
    );
}

#[tokio::test(start_paused = true)]
async fn no_sleep_runs_past_the_deadline() {
    let deadline = Duration::from_millis(1500);
    let policy = policy()
        .deadline(deadline)
        .max_attempts(1000)
        .build()
        .unwrap();
    let started = Instant::now();
    let (result, calls) = run_script(
        &policy,
        &get(),
        (0..1000).map(|_| Err(throttled())).collect(),
    )
    .await;
    let error = result.unwrap_err();
    assert_eq!(error.reason(), GiveUp::DeadlineExceeded);
    assert!(started.elapsed() <= deadline, "{:?}", started.elapsed());
    assert!(calls > 2, "it did retry inside the deadline: {calls}");
    assert_eq!(error.attempts(), calls);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_attempt_is_cut_at_the_deadline() {
    let policy = policy()
        .deadline(Duration::from_millis(800))
        .build()
        .unwrap();
    let started = Instant::now();
    let result: Result<(), RetryError<GetItemError>> = policy
        .run(&get(), std::future::pending::<Result<(), Error>>)
        .await;
    let error = result.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_millis(800));
    assert_eq!(error.reason(), GiveUp::DeadlineExceeded);
    assert_eq!(
        error.kind(),
        Some(&ErrorKind::Ambiguous(Ambiguity::Timeout))
    );
    assert!(error.may_have_applied());
}

#[tokio::test(start_paused = true)]
async fn no_attempt_starts_when_the_remaining_time_cannot_fit_one() {
    let policy = policy()
        .min_attempt_time(Duration::from_millis(20))
        .build()
        .unwrap();
    let operation = get().deadline_at(Instant::now() + Duration::from_millis(10));
    let (result, calls) = run_script(&policy, &operation, vec![]).await;
    let error = result.unwrap_err();
    assert_eq!(calls, 0);
    assert_eq!(error.attempts(), 0);
    assert_eq!(error.reason(), GiveUp::DeadlineExceeded);
    assert!(error.last_error().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_deadline_reached_while_backing_off_still_reports_the_last_failure() {
    // While A backs off, B's slow success raises the expected attempt time, so
    // A wakes to a deadline that no longer fits an attempt.
    let backoff = Backoff::builder()
        .jitter(Jitter::Equal)
        .throttle_base(Duration::from_millis(1200))
        .transient_base(Duration::from_millis(1200))
        .cap(Duration::from_millis(1200))
        .build()
        .unwrap();
    let policy = policy().backoff(backoff).build().unwrap();
    let a_operation = get().deadline_at(Instant::now() + Duration::from_millis(1205));
    let b_operation = get();
    let a = run_script(&policy, &a_operation, vec![Err(throttled())]);
    let b = policy.run(&b_operation, || async {
        tokio::time::sleep(Duration::from_millis(590)).await;
        Ok::<_, Error>("slow")
    });
    let ((a_result, a_calls), b_result) = tokio::join!(a, b);
    assert_eq!(b_result.unwrap(), "slow");
    assert_eq!(policy.expected_attempt_time(), Duration::from_millis(590));
    let error = a_result.unwrap_err();
    assert_eq!(a_calls, 1);
    assert_eq!(error.reason(), GiveUp::DeadlineExceeded);
    assert!(
        error.is_throttling(),
        "the throttle that caused the backoff is kept"
    );
    assert!(error.last_error().is_some());
}

#[tokio::test(start_paused = true)]
async fn a_retry_is_not_made_when_its_delay_would_end_past_the_deadline() {
    // Equal jitter with a 1 s base sleeps at least 500 ms: cannot fit in 300 ms.
    let backoff = Backoff::builder()
        .jitter(Jitter::Equal)
        .throttle_base(Duration::from_secs(1))
        .transient_base(Duration::from_secs(1))
        .cap(Duration::from_secs(5))
        .build()
        .unwrap();
    let policy = policy()
        .backoff(backoff)
        .deadline(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let (result, calls) = run_script(&policy, &get(), vec![Err(throttled())]).await;
    assert_eq!(calls, 1);
    assert_eq!(result.unwrap_err().reason(), GiveUp::DeadlineExceeded);
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "gave up at once instead of sleeping"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_connect_is_retried_even_for_a_write_because_nothing_was_sent() {
    let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    let error: Error = SdkError::dispatch_failure(ConnectorError::io(refused.into()));
    assert_eq!(
        classify(&error),
        ErrorKind::Transient(Transient::ConnectFailed)
    );
    let policy = policy().build().unwrap();
    let (result, calls) = run_script(
        &policy,
        &Operation::write("PutItem", "users"),
        vec![Err(error)],
    )
    .await;
    assert_eq!(result.unwrap(), "done");
    assert_eq!(calls, 2);

    let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
    let lost: Error = SdkError::dispatch_failure(ConnectorError::io(reset.into()));
    assert_eq!(
        classify(&lost),
        ErrorKind::Ambiguous(Ambiguity::ConnectionLost)
    );
}

#[test]
fn invalid_policies_are_rejected() {
    assert!(RetryPolicy::builder().max_attempts(0).build().is_err());
    assert!(
        RetryPolicy::builder()
            .deadline(Duration::ZERO)
            .build()
            .is_err()
    );
    let err = RetryPolicy::builder()
        .deadline(Duration::from_millis(5))
        .min_attempt_time(Duration::from_millis(5))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("min_attempt_time"), "{err}");
}
