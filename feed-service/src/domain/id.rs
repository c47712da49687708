//! User and post ids: 53-bit integers made by the snowflake generator (`src/ids.rs`), one
//! newtype each so that a user id is never passed where a post id is meant. An id has one
//! spelling: decimal digits, no sign, no leading zero, in a path and in JSON alike (where it is a
//! string, never a number: `src/http/mod.rs` says why).

use std::fmt;

/// The largest id: 2^53 - 1, the last integer a double (a JavaScript number, a Redis sorted-set
/// score) holds exactly.
pub const MAX_ID: u64 = (1 << 53) - 1;

macro_rules! snowflake_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u64);

        impl $name {
            /// An id the generator made or a row holds; `None` outside 1..=2^53-1.
            pub fn new(raw: u64) -> Option<Self> {
                (1..=MAX_ID).contains(&raw).then_some(Self(raw))
            }

            /// The canonical text: decimal digits, no sign, no leading zero.
            pub fn parse(text: &str) -> Option<Self> {
                let canonical = !text.is_empty()
                    && text.len() <= 16
                    && !text.starts_with('0')
                    && text.bytes().all(|b| b.is_ascii_digit());
                if !canonical {
                    return None;
                }
                text.parse().ok().and_then(Self::new)
            }

            pub fn get(self) -> u64 {
                self.0
            }

            /// As the database stores it (`BIGINT`, SQLite `INTEGER`): always in range, since
            /// ids stop at 2^53.
            pub fn to_db(self) -> i64 {
                self.0 as i64
            }

            pub fn from_db(value: i64) -> Option<Self> {
                u64::try_from(value).ok().and_then(Self::new)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

snowflake_id!(
    /// A user's id.
    UserId
);

snowflake_id!(
    /// A post's id. Ids are time-ordered, so `ORDER BY id DESC` is newest first and a post id is
    /// a position in every timeline.
    PostId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_has_one_spelling() {
        assert_eq!(PostId::parse("42").map(PostId::get), Some(42));
        for text in ["", "0", "042", "+42", "-42", "4 2", "4e2", "x"] {
            assert_eq!(PostId::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn ids_stop_at_two_to_the_fifty_third() {
        assert!(UserId::parse(&MAX_ID.to_string()).is_some());
        assert_eq!(UserId::parse(&(MAX_ID + 1).to_string()), None);
        assert_eq!(UserId::new(0), None);
        assert_eq!(UserId::from_db(-1), None);
    }
}
