//! Users as others see them: a handle, and how many follow and are followed.

use std::fmt;

use time::OffsetDateTime;

use super::{Invalid, UserId};

/// A user's public name: 1 to 30 of `a-z 0-9 _`, unique. Lower case only, rather than case kept
/// and compared without it: then the stored form, the unique index and what people type are the
/// same string, and `Ada` and `ada` cannot be two people.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Handle(String);

impl Handle {
    pub const MAX_LEN: usize = 30;

    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let valid = (1..=Self::MAX_LEN).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        valid
            .then(|| Self(text.to_owned()))
            .ok_or_else(|| Invalid::new("handle", "must be 1 to 30 of a-z 0-9 _"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The user a request acts for, known from its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: UserId,
    pub handle: Handle,
}

/// A user's public profile: their handle, and how many follow them and how many they follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub id: UserId,
    pub handle: Handle,
    /// How many users follow this one.
    pub followers: u64,
    /// How many users this one follows.
    pub following: u64,
    pub created_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_is_1_to_30_lowercase_letters_digits_or_underscores() {
        for good in ["ada", "grace_hopper", "a", "x1", &"z".repeat(30)] {
            assert!(Handle::parse(good).is_ok(), "{good:?}");
        }
        for bad in ["", "Ada", "ada lovelace", "ada-l", "adä", &"z".repeat(31)] {
            assert_eq!(Handle::parse(bad).unwrap_err().field, "handle", "{bad:?}");
        }
    }
}
