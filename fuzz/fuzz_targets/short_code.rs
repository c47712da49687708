//! `ShortCode::parse` and `ShortCode::parse_alias` (url-shortener/src/domain/code.rs) on any
//! text, and the generated codes on any number.
//!
//! Checked on every input:
//! - the redirect path accepts exactly 1 to 64 of `A-Z a-z 0-9 _ -`, and keeps the text as is;
//! - an accepted alias is 3 to 64 of those characters, not one of the service's own paths in any
//!   case, and is a code the redirect path accepts; a refused alias is refused for the right
//!   reason;
//! - a generated code is seven base62 characters that read back as its number, and a seven
//!   character base62 code reads as the number that generates it.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use url_shortener::domain::{AliasError, CODE_SPACE, ShortCode, code::GENERATED_LEN};

/// The top-level paths the shortener serves itself: `/api/…` (url-shortener/src/http/mod.rs),
/// and what platform/src/http.rs merges into every service.
const OWN_PATHS: &[&str] = &["api", "docs", "healthz", "readyz", "metrics"];

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    number: u64,
    text: &'a str,
}

fn is_code_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fuzz_target!(|input: Input<'_>| {
    let text = input.text;
    let well_formed = text.bytes().all(is_code_byte);

    let code = ShortCode::parse(text);
    assert_eq!(
        code.is_some(),
        well_formed && (1..=64).contains(&text.len()),
        "{text:?}"
    );
    if let Some(code) = &code {
        assert_eq!(code.as_str(), text);
        assert_eq!(code.to_string(), text);
    }

    match ShortCode::parse_alias(text) {
        Ok(alias) => {
            assert!((3..=64).contains(&text.len()) && well_formed, "{text:?}");
            assert!(
                !OWN_PATHS.iter().any(|own| own.eq_ignore_ascii_case(text)),
                "{text:?} shadows one of the service's paths"
            );
            assert_eq!(alias.as_str(), text);
            assert_eq!(
                code.as_ref(),
                Some(&alias),
                "an alias the redirect path refuses"
            );
        }
        Err(AliasError::Length) => assert!(!(3..=64).contains(&text.len())),
        Err(AliasError::Characters) => {
            assert!((3..=64).contains(&text.len()) && !well_formed)
        }
        Err(AliasError::Reserved(word)) => {
            assert_eq!(word, text);
            assert!(well_formed);
        }
    }

    let number = input.number % CODE_SPACE;
    let generated = ShortCode::from_number(number);
    assert_eq!(generated.as_str().len(), GENERATED_LEN);
    assert_eq!(generated.to_number(), Some(number));
    assert_eq!(
        ShortCode::parse(generated.as_str()).as_ref(),
        Some(&generated)
    );

    if let Some(code) = code {
        let base62 = text.len() == GENERATED_LEN && text.bytes().all(|b| b.is_ascii_alphanumeric());
        match code.to_number() {
            Some(n) => {
                assert!(base62 && n < CODE_SPACE, "{text:?} reads as {n}");
                assert_eq!(ShortCode::from_number(n), code);
            }
            None => assert!(!base62, "{text:?} is a generated code"),
        }
    }
});
