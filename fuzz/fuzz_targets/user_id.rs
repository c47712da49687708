//! The ids that arrive in paths and bodies: the notifier's `UserId::parse`
//! (notifier/src/domain/user.rs), the feed's `Handle::parse` (feed-service/src/domain/user.rs),
//! its `UserId::parse` and `PostId::parse` (feed-service/src/domain/id.rs) and its page
//! `Cursor::parse` (feed-service/src/domain/page.rs), on any text and any number.
//!
//! Checked on every input:
//! - each accepts exactly what its documentation says, and keeps the text as given;
//! - a feed id has one spelling: an accepted id prints as the text it was parsed from, every id
//!   in 1..=2^53-1 parses from its decimal text and survives the database's `i64`, and nothing
//!   else is an id;
//! - a cursor has one spelling too: an accepted cursor encodes to the text it was parsed from,
//!   and every id's cursor parses back to it.

#![no_main]

use arbitrary::Arbitrary;
use feed_service::domain::{Cursor, Handle, MAX_ID, PostId, UserId as FeedUserId};
use libfuzzer_sys::fuzz_target;
use notifier::domain::UserId as NotifierUserId;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    number: u64,
    text: &'a str,
}

fuzz_target!(|input: Input<'_>| {
    let text = input.text;

    // The notifier: 1 to 64 of `A-Z a-z 0-9 _ - . :`.
    let notifier_id = NotifierUserId::parse(text);
    let plain = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
    assert_eq!(
        notifier_id.is_some(),
        plain && (1..=64).contains(&text.len()),
        "{text:?}"
    );
    if let Some(id) = notifier_id {
        assert_eq!(id.as_str(), text);
    }

    // The feed's handle: 1 to 30 of `a-z 0-9 _`.
    let handle = Handle::parse(text);
    let lower = text
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    assert_eq!(
        handle.is_ok(),
        lower && (1..=Handle::MAX_LEN).contains(&text.len()),
        "{text:?}"
    );
    match handle {
        Ok(handle) => {
            assert_eq!(handle.as_str(), text);
            assert_eq!(handle.to_string(), text);
        }
        Err(invalid) => assert_eq!(invalid.field, "handle"),
    }

    // The feed's ids: the decimal text of a number in 1..=2^53-1, and no other text.
    let canonical = text
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=MAX_ID).contains(n) && n.to_string() == text);
    assert_eq!(
        FeedUserId::parse(text).map(FeedUserId::get),
        canonical,
        "{text:?}"
    );
    assert_eq!(PostId::parse(text).map(PostId::get), canonical, "{text:?}");

    let number = input.number;
    match PostId::new(number) {
        Some(id) => {
            assert!((1..=MAX_ID).contains(&number));
            assert_eq!(PostId::parse(&id.to_string()), Some(id));
            assert_eq!(PostId::from_db(id.to_db()), Some(id));
            let cursor = Cursor::after(id);
            assert_eq!(Cursor::parse(&cursor.encode()), Some(cursor));
        }
        None => assert!(!(1..=MAX_ID).contains(&number)),
    }
    if let Ok(signed) = i64::try_from(number) {
        for value in [signed, -signed] {
            let id = PostId::from_db(value);
            assert_eq!(
                id.is_some(),
                (1..=MAX_ID as i64).contains(&value),
                "{value}"
            );
        }
    }

    // The feed's page cursor: the encoding of a post id, in one spelling only.
    if let Some(cursor) = Cursor::parse(text) {
        assert_eq!(
            cursor.encode(),
            text,
            "{text:?} is another spelling of a cursor"
        );
        assert!((1..=MAX_ID).contains(&cursor.below().get()));
    }
});
