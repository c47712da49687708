//! `IdempotencyKey::parse` (idempotency-demo/src/domain/key.rs) on any header value.
//!
//! Checked on every input:
//! - an accepted key is 1 to 255 characters of printable ASCII;
//! - it is the key a separate reading of the header gives: RFC 8941 §4.2.5 for a quoted value,
//!   the value itself (space and tab trimmed) for a bare one;
//! - written back as a structured-field string it parses to the same key, and so does its bare
//!   form where the bare form can say it (no leading quote, no leading or trailing space).

#![no_main]

use idempotency_demo::domain::IdempotencyKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|header: &[u8]| {
    let parsed = IdempotencyKey::parse(header);
    let expected = reference(header);
    assert_eq!(
        parsed.as_ref().ok().map(IdempotencyKey::as_str),
        expected.as_deref(),
        "the parser and the reference disagree on {header:?}"
    );
    let Ok(key) = parsed else { return };

    let text = key.as_str();
    assert!((1..=IdempotencyKey::MAX_LEN).contains(&text.len()));
    assert!(text.bytes().all(|b| (0x20..=0x7e).contains(&b)));
    assert_eq!(key.to_string(), text);

    let quoted = IdempotencyKey::parse(sf_string(text).as_bytes());
    assert_eq!(quoted.as_ref(), Ok(&key), "the quoted form of {text:?}");

    if !text.starts_with('"') && !text.starts_with(' ') && !text.ends_with(' ') {
        let bare = IdempotencyKey::parse(text.as_bytes());
        assert_eq!(bare.as_ref(), Ok(&key), "the bare form of {text:?}");
    }
});

/// The key as the header defines it, written from the RFCs rather than from the parser: optional
/// whitespace (RFC 9110 OWS) around the value; a value that starts with `"` is an sf-string,
/// whose characters are %x20-21 / %x23-5B / %x5D-7E or a `\` escaping `"` or `\`, and which
/// ends at its closing quote; anything else is taken whole.
fn reference(header: &[u8]) -> Option<String> {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = header
        .iter()
        .position(|b| !is_ows(b))
        .unwrap_or(header.len());
    let end = header
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    let value = &header[start..end];

    let key: Vec<u8> = match value.split_first() {
        Some((b'"', rest)) => {
            let mut key = Vec::new();
            let mut i = 0;
            loop {
                match rest.get(i)? {
                    b'\\' => {
                        let escaped = *rest.get(i + 1)?;
                        if escaped != b'"' && escaped != b'\\' {
                            return None;
                        }
                        key.push(escaped);
                        i += 2;
                    }
                    // The closing quote ends the value: nothing may follow it.
                    b'"' => {
                        if i + 1 != rest.len() {
                            return None;
                        }
                        break;
                    }
                    &b if (0x20..=0x7e).contains(&b) => {
                        key.push(b);
                        i += 1;
                    }
                    _ => return None,
                }
            }
            key
        }
        _ => value.to_vec(),
    };
    let printable = key.iter().all(|b| (0x20..=0x7e).contains(b));
    (printable && (1..=255).contains(&key.len())).then(|| String::from_utf8(key).unwrap())
}

/// `key` as an RFC 8941 sf-string.
fn sf_string(key: &str) -> String {
    let mut out = String::from("\"");
    for c in key.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}
