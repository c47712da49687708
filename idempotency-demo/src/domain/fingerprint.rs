//! The request fingerprint: what makes two requests with one key "the same request".
//!
//! A key replays only the request it was first used with. The fingerprint is the SHA-256 of the
//! method, the path and the *parsed* body, re-serialised in one fixed form:
//!
//! ```text
//! sha256("POST\n/v1/payments\n" + {"amount":2000,"currency":"USD","source":"tok_visa","description":null})
//! ```
//!
//! Hashing the parsed request rather than the raw bytes is what makes JSON key order, whitespace
//! and a missing versus `null` description not matter, and `usd` the same as `USD`. Any change to
//! what the payment would be (amount, currency, source, description), to the path or to the
//! method gives another fingerprint, and the retry is refused with a 422.

use axum::http::Method;
use sha2::{Digest, Sha256};

use super::PaymentRequest;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(pub String);

impl Fingerprint {
    pub fn of(method: &Method, path: &str, request: &PaymentRequest) -> Self {
        let mut hash = Sha256::new();
        hash.update(method.as_str());
        hash.update("\n");
        hash.update(path);
        hash.update("\n");
        // Struct fields serialise in declaration order, so the form is fixed.
        hash.update(serde_json::to_vec(request).expect("a request serialises"));
        Self(hex::encode(hash.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CreatePayment;

    fn request(json: &str) -> PaymentRequest {
        let body: CreatePayment = serde_json::from_str(json).unwrap();
        PaymentRequest::parse(body).unwrap()
    }

    fn fingerprint(json: &str) -> Fingerprint {
        Fingerprint::of(&Method::POST, "/v1/payments", &request(json))
    }

    #[test]
    fn key_order_whitespace_and_currency_case_do_not_matter() {
        let a = fingerprint(r#"{"amount":2000,"currency":"usd","source":"tok_visa"}"#);
        let b =
            fingerprint("{ \"source\" : \"tok_visa\",\n \"currency\": \"USD\", \"amount\": 2000 }");
        assert_eq!(a, b);
    }

    #[test]
    fn a_missing_description_is_the_same_as_null() {
        let a = fingerprint(r#"{"amount":1,"currency":"eur","source":"tok_visa"}"#);
        let b =
            fingerprint(r#"{"amount":1,"currency":"eur","source":"tok_visa","description":null}"#);
        assert_eq!(a, b);
    }

    #[test]
    fn any_change_to_the_payment_path_or_method_changes_it() {
        let base = r#"{"amount":2000,"currency":"usd","source":"tok_visa"}"#;
        let original = fingerprint(base);
        for other in [
            r#"{"amount":2001,"currency":"usd","source":"tok_visa"}"#,
            r#"{"amount":2000,"currency":"eur","source":"tok_visa"}"#,
            r#"{"amount":2000,"currency":"usd","source":"tok_mastercard"}"#,
            r#"{"amount":2000,"currency":"usd","source":"tok_visa","description":"x"}"#,
        ] {
            assert_ne!(fingerprint(other), original, "{other}");
        }
        assert_ne!(
            Fingerprint::of(&Method::POST, "/v1/refunds", &request(base)),
            original
        );
        assert_ne!(
            Fingerprint::of(&Method::PUT, "/v1/payments", &request(base)),
            original
        );
    }
}
