//! Short codes: the part after the slash in `http://localhost:8081/<code>`.
//!
//! Two kinds share one namespace:
//! - generated codes, exactly 7 base62 characters, made from a unique number (see
//!   [`crate::ids`]); 62^7 ≈ 3.5 trillion of them;
//! - custom aliases chosen by the user: 3 to 64 of `A-Z a-z 0-9 _ -`, minus the words the service
//!   routes itself (`api`, `docs`, `healthz`, …).
//!
//! Codes are case-sensitive, as base62 needs them to be: `abc1234` and `ABC1234` are two links.

use std::fmt;

/// The base62 digits in ascending order.
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Length of a generated code.
pub const GENERATED_LEN: usize = 7;

/// How many generated codes exist: 62^7.
pub const CODE_SPACE: u64 = 62u64.pow(GENERATED_LEN as u32);

const ALIAS_MIN: usize = 3;
const MAX_LEN: usize = 64;

/// Paths the service serves itself; an alias with one of these names would be unreachable.
const RESERVED: &[&str] = &[
    "api",
    "docs",
    "healthz",
    "readyz",
    "metrics",
    "openapi.json",
];

/// A code that is well-formed (which says nothing about whether a link has it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShortCode(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AliasError {
    #[error("must be {ALIAS_MIN} to {MAX_LEN} characters long")]
    Length,
    #[error("may only contain letters, digits, '_' and '-'")]
    Characters,
    #[error("{0:?} is reserved")]
    Reserved(String),
}

impl ShortCode {
    /// Accepts any code a link could have, generated or custom. Used on the redirect path, where
    /// anything else is simply not found (and is answered without touching cache or database).
    pub fn parse(value: &str) -> Option<Self> {
        (!value.is_empty() && value.len() <= MAX_LEN && value.bytes().all(is_code_byte))
            .then(|| Self(value.to_owned()))
    }

    /// Accepts a custom alias chosen by a user.
    pub fn parse_alias(value: &str) -> Result<Self, AliasError> {
        if !(ALIAS_MIN..=MAX_LEN).contains(&value.len()) {
            return Err(AliasError::Length);
        }
        if !value.bytes().all(is_code_byte) {
            return Err(AliasError::Characters);
        }
        if RESERVED.iter().any(|word| word.eq_ignore_ascii_case(value)) {
            return Err(AliasError::Reserved(value.to_owned()));
        }
        Ok(Self(value.to_owned()))
    }

    /// The generated code for a number below [`CODE_SPACE`]: base62, left-padded with `0` to
    /// seven characters so that every generated code has the same length.
    pub fn from_number(mut number: u64) -> Self {
        assert!(number < CODE_SPACE, "{number} is outside the code space");
        let mut digits = [b'0'; GENERATED_LEN];
        for digit in digits.iter_mut().rev() {
            *digit = ALPHABET[(number % 62) as usize];
            number /= 62;
        }
        Self(String::from_utf8(digits.to_vec()).expect("base62 digits are ASCII"))
    }

    /// The number a generated code stands for; `None` for anything that is not seven base62
    /// characters.
    pub fn to_number(&self) -> Option<u64> {
        if self.0.len() != GENERATED_LEN {
            return None;
        }
        self.0.bytes().try_fold(0u64, |acc, byte| {
            let digit = ALPHABET.iter().position(|&a| a == byte)? as u64;
            Some(acc * 62 + digit)
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShortCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_code_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_space_is_62_to_the_7th() {
        assert_eq!(CODE_SPACE, 3_521_614_606_208);
    }

    #[test]
    fn numbers_become_seven_base62_characters_and_back() {
        for number in [0, 1, 61, 62, 3_843, 123_456_789, CODE_SPACE - 1] {
            let code = ShortCode::from_number(number);
            assert_eq!(code.as_str().len(), GENERATED_LEN);
            assert_eq!(code.to_number(), Some(number), "{code}");
        }
        assert_eq!(ShortCode::from_number(0).as_str(), "0000000");
        assert_eq!(ShortCode::from_number(61).as_str(), "000000z");
        assert_eq!(ShortCode::from_number(CODE_SPACE - 1).as_str(), "zzzzzzz");
    }

    #[test]
    #[should_panic(expected = "outside the code space")]
    fn a_number_past_the_code_space_has_no_code() {
        ShortCode::from_number(CODE_SPACE);
    }

    #[test]
    fn aliases_of_the_allowed_characters_and_lengths_are_accepted() {
        for alias in ["abc", "summer-sale_2026", &"x".repeat(64)] {
            assert!(ShortCode::parse_alias(alias).is_ok(), "{alias}");
        }
    }

    #[test]
    fn aliases_that_are_too_short_too_long_or_oddly_spelled_are_rejected() {
        assert_eq!(ShortCode::parse_alias("ab"), Err(AliasError::Length));
        assert_eq!(
            ShortCode::parse_alias(&"x".repeat(65)),
            Err(AliasError::Length)
        );
        assert_eq!(ShortCode::parse_alias("a/b/c"), Err(AliasError::Characters));
        assert_eq!(ShortCode::parse_alias("café"), Err(AliasError::Characters));
        assert_eq!(ShortCode::parse_alias("a b c"), Err(AliasError::Characters));
    }

    #[test]
    fn aliases_that_shadow_the_services_own_paths_are_reserved() {
        assert!(matches!(
            ShortCode::parse_alias("docs"),
            Err(AliasError::Reserved(_))
        ));
        assert!(matches!(
            ShortCode::parse_alias("HEALTHZ"),
            Err(AliasError::Reserved(_))
        ));
    }

    #[test]
    fn the_redirect_path_accepts_any_well_formed_code_and_nothing_else() {
        assert!(ShortCode::parse("aB3_-").is_some());
        assert!(ShortCode::parse("").is_none());
        assert!(ShortCode::parse("favicon.ico").is_none());
        assert!(ShortCode::parse(&"x".repeat(65)).is_none());
    }
}
