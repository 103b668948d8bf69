//! The script's identity and the strict parsing of its replies.

use super::*;

#[test]
fn the_script_hash_is_the_sha1_of_its_text() {
    assert_eq!(RedisLimiter::script_sha1().len(), 40);
    assert!(
        SCRIPT_SOURCE.contains("redis.call('TIME')"),
        "server time, never ours"
    );
}

#[test]
fn replies_are_parsed_strictly() {
    let v = parse_reply(&[0, 2, 1500, 9000, 2, 0], 2).unwrap();
    assert_eq!(
        v.outcome,
        Outcome::Denied {
            retry_after: Duration::from_micros(1500)
        }
    );
    assert_eq!((v.remaining, v.limit), (2, 1));
    assert_eq!(
        parse_reply(&[-1, 0, 0, 0, 1, 0], 1).unwrap().outcome,
        Outcome::Never
    );
    for bad in [
        &[1, 0, 0, 0, 3, 0][..],
        &[1, 0, 0, 0, 0, 0],
        &[2, 0, 0, 0, 1, 0],
        &[1, 0],
    ] {
        assert!(parse_reply(bad, 2).is_none(), "{bad:?}");
    }
}
