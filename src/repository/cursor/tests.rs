use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;

use super::{
    CursorError, CursorKeys, CursorScope, HEADER_BYTES, MAC_BYTES, MAX_CURSOR_LEN, decode_key,
};
use crate::repository::Item;

const OLD_SECRET: [u8; 32] = [0x11; 32];
const NEW_SECRET: [u8; 32] = [0x22; 32];
const SCOPE: CursorScope<'static> = CursorScope {
    shape: "table=users;index=by_email;key=email = \"a@example.com\";order=asc",
    caller: "api-key-1",
};

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

const NOW: u64 = 1_700_000_000;

fn keys() -> CursorKeys {
    CursorKeys::new([NEW_SECRET]).unwrap()
}

/// A GSI page's `LastEvaluatedKey`: the table's key and the index's key, in
/// all three key types.
fn table_and_index_key() -> Item {
    Item::from([
        ("pk".to_owned(), AttributeValue::S("user#42".to_owned())),
        ("sk".to_owned(), AttributeValue::N("-12.5e3".to_owned())),
        (
            "gsi_pk".to_owned(),
            AttributeValue::B(Blob::new(vec![0, 255, 7])),
        ),
        (
            "gsi_sk".to_owned(),
            AttributeValue::S("ünïcode ✓".to_owned()),
        ),
    ])
}

#[test]
fn a_table_and_index_key_of_every_type_round_trips() {
    let keys = keys();
    let key = table_and_index_key();
    let cursor = keys.seal(&key, &SCOPE, at(NOW));
    assert!(
        cursor
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "URL-safe base64 without padding: {cursor}"
    );
    assert_eq!(keys.open(&cursor, &SCOPE, at(NOW)), Ok(key.clone()));
    // Attributes are sorted before encoding, so a HashMap's order does not
    // change the cursor.
    assert_eq!(keys.seal(&key, &SCOPE, at(NOW)), cursor);
}

#[test]
fn every_flipped_bit_is_refused() {
    let keys = keys();
    let cursor = keys.seal(&table_and_index_key(), &SCOPE, at(NOW));
    let sealed = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
    for bit in 0..sealed.len() * 8 {
        let mut flipped = sealed.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let result = keys.open(&URL_SAFE_NO_PAD.encode(&flipped), &SCOPE, at(NOW));
        assert!(
            matches!(result, Err(CursorError::Tampered | CursorError::Malformed)),
            "bit {bit}: {result:?}"
        );
    }
    // And in the text: any other character anywhere.
    for position in 0..cursor.len() {
        for replacement in ['A', 'z', '-', '_', '=', '+', '/', '.'] {
            let mut text = cursor.clone().into_bytes();
            if text[position] == replacement as u8 {
                continue;
            }
            text[position] = replacement as u8;
            let text = String::from_utf8(text).unwrap();
            let result = keys.open(&text, &SCOPE, at(NOW));
            assert!(
                matches!(result, Err(CursorError::Tampered | CursorError::Malformed)),
                "{replacement:?} at {position}: {result:?}"
            );
        }
    }
}

#[test]
fn every_truncation_and_extension_is_refused() {
    let keys = keys();
    let cursor = keys.seal(&table_and_index_key(), &SCOPE, at(NOW));
    for end in 0..cursor.len() {
        let result = keys.open(&cursor[..end], &SCOPE, at(NOW));
        assert!(
            matches!(result, Err(CursorError::Tampered | CursorError::Malformed)),
            "cut at {end}: {result:?}"
        );
    }
    for suffix in ["A", "AA", "AAA", "AAAA", "="] {
        let result = keys.open(&format!("{cursor}{suffix}"), &SCOPE, at(NOW));
        assert!(result.is_err(), "{suffix:?} appended: {result:?}");
    }
}

#[test]
fn a_cursor_expires_one_second_after_its_lifetime() {
    let keys = keys().lifetime(Duration::from_secs(60)).unwrap();
    let key = table_and_index_key();
    let cursor = keys.seal(&key, &SCOPE, at(NOW));
    assert_eq!(keys.open(&cursor, &SCOPE, at(NOW + 60)), Ok(key));
    assert_eq!(
        keys.open(&cursor, &SCOPE, at(NOW + 61)),
        Err(CursorError::Expired)
    );
}

#[test]
fn the_default_lifetime_is_fifteen_minutes() {
    let keys = keys();
    let cursor = keys.seal(&table_and_index_key(), &SCOPE, at(NOW));
    assert!(keys.open(&cursor, &SCOPE, at(NOW + 15 * 60)).is_ok());
    assert_eq!(
        keys.open(&cursor, &SCOPE, at(NOW + 15 * 60 + 1)),
        Err(CursorError::Expired)
    );
}

#[test]
fn a_cursor_only_continues_its_own_query() {
    let keys = keys();
    let cursor = keys.seal(&table_and_index_key(), &SCOPE, at(NOW));
    let other = CursorScope {
        shape: "table=users;index=by_email;key=email = \"b@example.com\";order=asc",
        ..SCOPE
    };
    assert_eq!(
        keys.open(&cursor, &other, at(NOW)),
        Err(CursorError::OtherQuery)
    );
}

#[test]
fn a_cursor_only_serves_its_own_caller() {
    let keys = keys();
    let cursor = keys.seal(&table_and_index_key(), &SCOPE, at(NOW));
    for caller in ["api-key-2", "", "API-KEY-1"] {
        let other = CursorScope { caller, ..SCOPE };
        assert_eq!(
            keys.open(&cursor, &other, at(NOW)),
            Err(CursorError::OtherCaller),
            "{caller:?}"
        );
    }
    let anonymous = CursorScope {
        caller: "",
        ..SCOPE
    };
    let cursor = keys.seal(&table_and_index_key(), &anonymous, at(NOW));
    assert!(keys.open(&cursor, &anonymous, at(NOW)).is_ok());
    assert_eq!(
        keys.open(&cursor, &SCOPE, at(NOW)),
        Err(CursorError::OtherCaller)
    );
}

#[test]
fn checks_run_in_the_documented_order() {
    let keys = keys();
    let cursor = keys.seal(&table_and_index_key(), &SCOPE, at(NOW));
    let elsewhere = CursorScope {
        shape: "other",
        caller: "other",
    };
    let later = at(NOW + 16 * 60);
    // Expiry before the query, the query before the caller.
    assert_eq!(
        keys.open(&cursor, &elsewhere, later),
        Err(CursorError::Expired)
    );
    assert_eq!(
        keys.open(&cursor, &elsewhere, at(NOW)),
        Err(CursorError::OtherQuery)
    );
    // The MAC before everything it vouches for.
    let stranger = CursorKeys::new([[0x33; 32]]).unwrap();
    assert_eq!(
        stranger.open(&cursor, &elsewhere, later),
        Err(CursorError::Tampered)
    );
}

#[test]
fn a_retired_secret_opens_while_listed_and_is_refused_once_removed() {
    let key = table_and_index_key();
    let before = CursorKeys::new([OLD_SECRET]).unwrap();
    let old_cursor = before.seal(&key, &SCOPE, at(NOW));

    let rotating = CursorKeys::new([NEW_SECRET, OLD_SECRET]).unwrap();
    assert_eq!(rotating.open(&old_cursor, &SCOPE, at(NOW)), Ok(key.clone()));
    // The first secret signs: the new cursor outlives the old secret.
    let new_cursor = rotating.seal(&key, &SCOPE, at(NOW));
    assert_ne!(new_cursor, old_cursor);

    let after = CursorKeys::new([NEW_SECRET]).unwrap();
    assert_eq!(
        after.open(&old_cursor, &SCOPE, at(NOW)),
        Err(CursorError::Tampered)
    );
    assert_eq!(after.open(&new_cursor, &SCOPE, at(NOW)), Ok(key));
}

#[test]
fn short_secrets_and_empty_lists_are_refused() {
    assert!(CursorKeys::new([[0u8; 31]]).is_err());
    assert!(CursorKeys::new([NEW_SECRET.as_slice(), &[0u8; 31]]).is_err());
    assert!(CursorKeys::new(Vec::<Vec<u8>>::new()).is_err());
    assert!(CursorKeys::new([[0u8; 32]]).is_ok());
    let message = CursorKeys::new([b"short"]).unwrap_err().to_string();
    assert!(message.contains("at least 32"), "{message}");
}

#[test]
fn lifetimes_outside_one_second_to_seven_days_are_refused() {
    for bad in [
        Duration::ZERO,
        Duration::from_millis(999),
        Duration::from_secs(7 * 86_400 + 1),
    ] {
        assert!(keys().lifetime(bad).is_err(), "{bad:?}");
    }
    for good in [Duration::from_secs(1), Duration::from_secs(7 * 86_400)] {
        assert!(keys().lifetime(good).is_ok(), "{good:?}");
    }
}

#[test]
fn debug_shows_the_count_and_no_secret() {
    let keys = CursorKeys::new([b"correct horse battery staple, 32+ bytes long"; 2]).unwrap();
    let printed = format!("{keys:?}");
    assert!(printed.contains("secrets: 2"), "{printed}");
    assert!(!printed.contains("horse"), "{printed}");
}

#[test]
fn every_error_tells_the_client_what_to_do() {
    for error in [
        CursorError::Malformed,
        CursorError::Tampered,
        CursorError::Expired,
        CursorError::OtherQuery,
        CursorError::OtherCaller,
    ] {
        let text = error.to_string();
        assert!(text.contains("without a cursor"), "{text}");
    }
}

/// Text that would decode and fail its MAC (version byte 1, then filler).
fn unsigned_cursor(chars: usize) -> String {
    let bytes = chars * 3 / 4;
    let mut sealed = vec![1u8; bytes];
    sealed[1..].fill(b'x');
    let text = URL_SAFE_NO_PAD.encode(sealed);
    assert_eq!(text.len(), chars);
    text
}

#[test]
fn an_overlong_cursor_is_refused_before_decoding() {
    let keys = keys();
    // At the bound, it decodes, and only the MAC refuses it...
    let at_bound = unsigned_cursor(MAX_CURSOR_LEN);
    assert_eq!(
        keys.open(&at_bound, &SCOPE, at(NOW)),
        Err(CursorError::Tampered)
    );
    // ...past it, the same text is refused unread.
    let over = unsigned_cursor(MAX_CURSOR_LEN + 2);
    assert_eq!(
        keys.open(&over, &SCOPE, at(NOW)),
        Err(CursorError::Malformed)
    );
    let huge = "A".repeat(10 * 1024 * 1024);
    assert_eq!(
        keys.open(&huge, &SCOPE, at(NOW)),
        Err(CursorError::Malformed)
    );
}

#[test]
fn the_largest_key_dynamodb_returns_fits_the_bound_exactly() {
    // 255 four-byte characters: the longest key attribute name.
    let name = |c: char| std::iter::repeat_n(c, 255).collect::<String>();
    let key = Item::from([
        (name('𝄞'), AttributeValue::S("p".repeat(2048))),
        (name('𝄢'), AttributeValue::B(Blob::new(vec![9; 2048]))),
        (name('𝅘'), AttributeValue::S("s".repeat(1024))),
        (name('𝅗'), AttributeValue::S("t".repeat(1024))),
    ]);
    let keys = keys();
    let cursor = keys.seal(&key, &SCOPE, at(NOW));
    assert_eq!(cursor.len(), MAX_CURSOR_LEN);
    assert_eq!(keys.open(&cursor, &SCOPE, at(NOW)), Ok(key));
}

#[test]
fn a_key_dynamodb_cannot_return_seals_into_a_malformed_cursor() {
    let keys = keys();
    let mut five = table_and_index_key();
    five.insert("extra".to_owned(), AttributeValue::S("x".to_owned()));
    let impossible = [
        Item::new(),
        Item::from([("pk".to_owned(), AttributeValue::Bool(true))]),
        Item::from([("pk".to_owned(), AttributeValue::S(String::new()))]),
        Item::from([("pk".to_owned(), AttributeValue::S("x".repeat(2049)))]),
        Item::from([("p".repeat(256), AttributeValue::S("x".to_owned()))]),
        Item::from([(
            "pk".to_owned(),
            AttributeValue::Ss(vec!["a".to_owned(), "b".to_owned()]),
        )]),
        five,
    ];
    for key in impossible {
        let cursor = keys.seal(&key, &SCOPE, at(NOW));
        assert_eq!(
            keys.open(&cursor, &SCOPE, at(NOW)),
            Err(CursorError::Malformed),
            "{key:?}"
        );
    }
}

#[test]
fn the_payload_layout_is_as_documented() {
    let keys = keys();
    let cursor = keys.seal(&table_and_index_key(), &SCOPE, at(NOW));
    let sealed = URL_SAFE_NO_PAD.decode(cursor).unwrap();
    assert_eq!(sealed[0], 1, "version");
    let expiry = u64::from_be_bytes(sealed[1..9].try_into().unwrap());
    assert_eq!(expiry, NOW + 15 * 60, "expiry in clear, unix seconds");
    let encoded_key = &sealed[HEADER_BYTES..sealed.len() - MAC_BYTES];
    assert_eq!(decode_key(encoded_key), Some(table_and_index_key()));
}

fn key_value() -> impl Strategy<Value = AttributeValue> {
    prop_oneof![
        "[a-zA-Z0-9#:é✓ ]{1,40}".prop_map(AttributeValue::S),
        "-?[0-9]{1,38}(\\.[0-9]{1,5})?".prop_map(AttributeValue::N),
        prop::collection::vec(any::<u8>(), 1..40).prop_map(|b| AttributeValue::B(Blob::new(b))),
    ]
}

fn valid_key() -> impl Strategy<Value = Item> {
    prop::collection::hash_map("[a-zA-Z_][a-zA-Z0-9_.é-]{0,30}", key_value(), 1..=4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_valid_key_round_trips(key in valid_key(), shape in ".{0,80}", caller in ".{0,40}") {
        let keys = keys();
        let scope = CursorScope { shape: &shape, caller: &caller };
        let cursor = keys.seal(&key, &scope, at(NOW));
        prop_assert!(cursor.len() <= MAX_CURSOR_LEN);
        prop_assert_eq!(keys.open(&cursor, &scope, at(NOW)), Ok(key));
    }

    #[test]
    fn any_text_is_refused_without_panicking(text in ".{0,400}") {
        prop_assert!(keys().open(&text, &SCOPE, at(NOW)).is_err());
    }

    /// Past base64 and the version byte, garbage still only reaches the MAC.
    #[test]
    fn any_bytes_are_refused_without_panicking(mut bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Some(first) = bytes.first_mut() {
            *first = 1;
        }
        let text = URL_SAFE_NO_PAD.encode(&bytes);
        prop_assert!(keys().open(&text, &SCOPE, at(NOW)).is_err());
    }
}
