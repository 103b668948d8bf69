use std::time::Duration;

use super::*;

const KEY: &str = "k";

fn limits(capacity: u64) -> Limits {
    Limits::builder("lease-test")
        .limit(
            "second",
            crate::limiter::Quota::per_second(1)
                .burst(capacity)
                .unwrap(),
        )
        .build()
        .unwrap()
}

fn allowed(remaining: u64) -> Verdict {
    Verdict {
        outcome: Outcome::Allowed,
        remaining,
        reset_after: Duration::from_secs(1),
        limit: 1,
    }
}

fn book(max_tokens: u64) -> LeaseBook {
    LeaseBook::new(Leases::up_to(max_tokens).unwrap(), 100)
}

/// One request through the book as `decide_leased` sends it, with Redis
/// always admitting and answering `remaining`: whether it went to Redis.
fn request(book: &LeaseBook, limits: &Limits, remaining: u64) -> bool {
    if book.take(KEY, 1).is_some() {
        return false;
    }
    let asked = book.ask(KEY, limits, 1);
    book.record(KEY, asked, 1, &allowed(remaining), true);
    true
}

#[tokio::test(start_paused = true)]
async fn a_busy_subject_grows_its_lease_to_the_maximum() {
    let book = book(16);
    let limits = limits(1_000);
    let calls = (0..200).filter(|_| request(&book, &limits, 900)).count();
    // 1 (unknown), then leases of 2, 4, 8 and 16 tokens: 1 + 1 + 2 + 4 + 8
    // requests ramping up, then one call per 16 + 1 requests.
    assert!(calls <= 20, "{calls} calls for 200 requests");
    assert!(
        calls >= 200 / 17,
        "{calls}: a lease never exceeds 16 tokens"
    );
}

#[tokio::test(start_paused = true)]
async fn a_subject_slower_than_one_request_a_lifetime_is_never_leased() {
    let book = book(16);
    let limits = limits(1_000);
    for _ in 0..20 {
        assert!(request(&book, &limits, 900), "every request asks Redis");
        tokio::time::advance(Duration::from_millis(1_001)).await;
    }
    assert_eq!(book.ask(KEY, &limits, 1), 1, "asks only its cost");
}

#[tokio::test(start_paused = true)]
async fn leases_shrink_to_exact_calls_near_the_limit() {
    let book = book(16);
    let limits = limits(1_000);
    for _ in 0..100 {
        request(&book, &limits, 900);
    }
    assert!(
        book.ask(KEY, &limits, 1) > 1,
        "leased while far from the limit"
    );
    // Redis answers 3 left: a lease may ask at most half of that, 1: exact.
    while book.take(KEY, 1).is_some() {}
    book.record(KEY, 1, 1, &allowed(3), true);
    assert_eq!(book.take(KEY, 1), None);
    assert_eq!(book.ask(KEY, &limits, 1), 1);
    // A denial resets the size too.
    let denied = Verdict {
        outcome: Outcome::Denied {
            retry_after: Duration::from_millis(10),
        },
        ..allowed(0)
    };
    book.record(KEY, 1, 1, &denied, false);
    assert_eq!(book.ask(KEY, &limits, 1), 1);
}

#[tokio::test(start_paused = true)]
async fn a_lease_never_exceeds_an_eighth_of_the_smallest_capacity() {
    let book = book(1_000);
    let limits = limits(80);
    for _ in 0..100 {
        request(&book, &limits, 1_000_000);
    }
    assert!(
        book.ask(KEY, &limits, 1) <= 1 + 10,
        "{}",
        book.ask(KEY, &limits, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn verdicts_from_a_lease_count_its_tokens_and_its_age() {
    let book = book(16);
    let limits = limits(1_000);
    request(&book, &limits, 900);
    assert!(book.take(KEY, 1).is_none(), "no lease yet: ran out");
    let asked = book.ask(KEY, &limits, 1);
    assert_eq!(asked, 3, "its cost and a lease of 2");
    book.record(KEY, asked, 1, &allowed(500), true);
    tokio::time::advance(Duration::from_millis(300)).await;
    let verdict = book.take(KEY, 1).expect("one of 2 leased tokens");
    assert_eq!(verdict.remaining, 501, "500 in Redis, 1 still leased");
    assert_eq!(verdict.reset_after, Duration::from_millis(700));
    assert_eq!(verdict.limit, 1);
    book.give_back(KEY, 1);
    assert!(book.take(KEY, 1).is_some());
    assert!(book.take(KEY, 1).is_some(), "the given-back token");
    assert!(book.take(KEY, 1).is_none());
}

#[tokio::test(start_paused = true)]
async fn an_expired_lease_is_not_spent() {
    let book = book(16);
    let limits = limits(1_000);
    request(&book, &limits, 900);
    book.take(KEY, 1);
    let asked = book.ask(KEY, &limits, 1);
    book.record(KEY, asked, 1, &allowed(900), true);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(book.take(KEY, 1).is_none(), "a lifetime later");
}

#[test]
fn settings_are_checked() {
    assert!(Leases::up_to(1).is_err());
    let leases = Leases::up_to(2).unwrap();
    assert!(leases.lasting(Duration::from_millis(9)).is_err());
    assert!(leases.lasting(Duration::from_secs(61)).is_err());
    assert_eq!(
        leases
            .lasting(Duration::from_millis(250))
            .unwrap()
            .lifetime(),
        Duration::from_millis(250)
    );
}
