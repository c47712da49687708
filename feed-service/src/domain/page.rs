//! Where a page of a feed starts, and how long it is.
//!
//! Keyset pagination: a cursor is the id of the last post of the previous page, and the next
//! page holds the posts strictly below it. Posts published meanwhile are above every cursor
//! handed out before them (ids are time-ordered), so they never shift a page: no duplicates, no
//! gaps. An offset (`?page=3`) would shift by one for every new post, repeating the last post of
//! the previous page on the next.
//!
//! The cursor is opaque to clients (base64url of the id's eight bytes, big-endian), so that the
//! service can put more in it later without breaking anyone, for instance which part of a hybrid
//! timeline the page came from. Decoding is strict: every position has exactly one cursor.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::PostId;

/// The position a page starts below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(PostId);

impl Cursor {
    /// The cursor of the page that follows `last`, the last post of a page.
    pub fn after(last: PostId) -> Self {
        Self(last)
    }

    /// A cursor this service handed out; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes: [u8; 8] = URL_SAFE_NO_PAD.decode(text).ok()?.try_into().ok()?;
        PostId::new(u64::from_be_bytes(bytes)).map(Self)
    }

    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.get().to_be_bytes())
    }

    /// The page starts strictly below this post.
    pub fn below(self) -> PostId {
        self.0
    }
}

/// How many posts a page holds: 1 to 100, 20 unless asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u32);

impl Limit {
    pub const MAX: u32 = 100;

    pub fn parse(text: &str) -> Option<Self> {
        text.parse()
            .ok()
            .filter(|n| (1..=Self::MAX).contains(n))
            .map(Self)
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for Limit {
    fn default() -> Self {
        Self(20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MAX_ID;

    #[test]
    fn a_cursor_round_trips_and_is_url_safe() {
        for raw in [1, 73_014_444_264_448, MAX_ID] {
            let cursor = Cursor::after(PostId::new(raw).unwrap());

            let text = cursor.encode();

            assert_eq!(Cursor::parse(&text), Some(cursor));
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{text}"
            );
        }
    }

    #[test]
    fn anything_but_a_cursor_the_service_made_is_refused() {
        let valid = Cursor::after(PostId::new(42).unwrap()).encode();
        let cases = [
            String::new(),
            "not a cursor".to_owned(),
            format!("{valid}="),                                // padded
            URL_SAFE_NO_PAD.encode([1, 2, 3, 4]),               // too short
            URL_SAFE_NO_PAD.encode([0; 9]),                     // too long
            URL_SAFE_NO_PAD.encode(0u64.to_be_bytes()),         // id 0
            URL_SAFE_NO_PAD.encode((MAX_ID + 1).to_be_bytes()), // past 53 bits
            "42".to_owned(),                                    // an id, not a cursor
        ];
        for text in cases {
            assert_eq!(Cursor::parse(&text), None, "{text:?}");
        }
    }

    #[test]
    fn a_limit_is_1_to_100_and_20_by_default() {
        assert_eq!(Limit::default().get(), 20);
        assert_eq!(Limit::parse("100").map(Limit::get), Some(100));
        for bad in ["0", "101", "-1", "ten", "", "1.5", " 5"] {
            assert_eq!(Limit::parse(bad), None, "{bad:?}");
        }
    }
}
