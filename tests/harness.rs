//! The harness itself: a missing server is a failure that says how to start it.

mod common;

use std::net::TcpListener;

#[test]
fn an_unreachable_server_fails_with_the_command_that_starts_it() {
    // A port that was free a moment ago and has nobody listening now.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("redis://127.0.0.1:{port}");

    let message = common::check_reachable("Redis", &url, 6379).expect_err("nothing listens there");
    assert!(message.contains(&url), "{message}");
    assert!(message.contains(common::START_COMMAND), "{message}");
    assert!(message.contains(common::TEST_COMMAND), "{message}");
}

#[test]
fn a_listening_server_is_reachable() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    assert_eq!(common::check_reachable("DynamoDB", &url, 80), Ok(()));
}

#[test]
fn host_and_port_come_out_of_every_url_form_the_harness_reads() {
    assert_eq!(
        common::host_port("http://127.0.0.1:8000", 80),
        "127.0.0.1:8000"
    );
    assert_eq!(
        common::host_port("http://localhost:4566/", 80),
        "localhost:4566"
    );
    assert_eq!(
        common::host_port("redis://127.0.0.1", 6379),
        "127.0.0.1:6379"
    );
    assert_eq!(
        common::host_port("redis://:secret@127.0.0.1:7001/0", 6379),
        "127.0.0.1:7001"
    );
    assert_eq!(common::host_port("redis://[::1]:6380", 6379), "[::1]:6380");
    assert_eq!(
        common::host_port("https://dynamodb.eu-west-1.amazonaws.com", 443),
        "dynamodb.eu-west-1.amazonaws.com:443"
    );
}

#[test]
fn unique_names_differ_within_a_process() {
    let a = common::unique_name("dg-x");
    let b = common::unique_name("dg-x");
    assert_ne!(a, b);
    assert!(
        a.starts_with(&format!("dg-x-{}-", std::process::id())),
        "{a}"
    );
}
