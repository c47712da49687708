//! The `Idempotency-Key` request header.
//!
//! The IETF draft ("The Idempotency-Key HTTP Header Field") defines the value as a structured
//! field string: `Idempotency-Key: "8e03978e-40d5-43e8-bc93-6894a57f9324"`, quoted. Stripe, and
//! most clients written against it, send the bare value: `Idempotency-Key: 8e03978e-…`. Both are
//! accepted and mean the same key: a quoted value is unquoted (with the `\"` and `\\` escapes of
//! RFC 8941 §3.3.3), so `"abc"` and `abc` are one key, and a retry that switches forms replays.
//!
//! The key is 1 to 255 characters of printable ASCII (Stripe's limit). Anything else is a 400,
//! and nothing is stored: the client can fix the header and send again.

use std::fmt;

/// A client's idempotency key, unquoted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    /// Parses the header's value. The error says what is wrong, for the problem's detail.
    pub fn parse(header: &[u8]) -> Result<Self, &'static str> {
        let value = std::str::from_utf8(header)
            .map_err(|_| "must be printable ASCII")?
            .trim_matches(|c| c == ' ' || c == '\t');
        let key = match value.strip_prefix('"') {
            Some(quoted) => unquote(quoted)?,
            None => value.to_owned(),
        };
        if key.is_empty() {
            return Err("must not be empty");
        }
        if key.len() > Self::MAX_LEN {
            return Err("must be at most 255 characters");
        }
        if !key.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err("must be printable ASCII");
        }
        Ok(Self(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The rest of an sf-string after its opening quote: escapes resolved, the closing quote last.
fn unquote(rest: &str) -> Result<String, &'static str> {
    let mut key = String::with_capacity(rest.len());
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('"' | '\\')) => key.push(escaped),
                _ => return Err("a quoted key may only escape `\"` and `\\`"),
            },
            '"' if chars.as_str().is_empty() => return Ok(key),
            '"' => return Err("a quoted key must end at its closing quote"),
            other => key.push(other),
        }
    }
    Err("a quoted key must end with a quote")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<String, &'static str> {
        IdempotencyKey::parse(value.as_bytes()).map(|key| key.0)
    }

    #[test]
    fn a_bare_key_is_taken_as_it_is() {
        assert_eq!(parse("8e03978e-40d5-43e8").unwrap(), "8e03978e-40d5-43e8");
    }

    #[test]
    fn the_quoted_form_means_the_same_key() {
        assert_eq!(parse("\"abc\"").unwrap(), parse("abc").unwrap());
        assert_eq!(
            parse(r#""say \"hi\" \\ bye""#).unwrap(),
            r#"say "hi" \ bye"#
        );
    }

    #[test]
    fn empty_keys_are_refused_quoted_or_not() {
        assert!(parse("").is_err());
        assert!(parse("   ").is_err());
        assert!(parse("\"\"").is_err());
    }

    #[test]
    fn keys_longer_than_255_characters_are_refused() {
        assert!(parse(&"k".repeat(255)).is_ok());
        assert!(parse(&"k".repeat(256)).is_err());
    }

    #[test]
    fn keys_outside_printable_ascii_are_refused() {
        assert!(parse("tab\there").is_err());
        assert!(parse("caf\u{e9}").is_err());
        assert!(IdempotencyKey::parse(b"bad\x7f").is_err());
    }

    #[test]
    fn malformed_quoted_keys_are_refused() {
        assert!(parse("\"unterminated").is_err());
        assert!(parse("\"early\" end\"").is_err());
        assert!(parse(r#""bad \n escape""#).is_err());
    }
}
