//! The request fingerprint: what makes two requests with one key "the same request".
//!
//! A key replays only the request it was first used with. The fingerprint is the SHA-256 of the
//! method, the path and the *parsed* request, re-serialised in one fixed form:
//!
//! ```text
//! sha256("POST\n/v1/payments\n" + {"amount":2000,"currency":"USD","source":"tok_visa","description":null})
//! ```
//!
//! Hashing the parsed request rather than the raw bytes is what makes JSON key order, whitespace
//! and a missing versus `null` description not matter, and `usd` the same as `USD`. Any change to
//! what the payment would be (amount, currency, source, description), to the path or to the
//! method gives another fingerprint, and the retry is refused with a 422.
//!
//! Only `POST /v1/payments` takes keys today, so the method and the path are the same in every
//! fingerprint; they stay in the hash because stored keys were fingerprinted with them (a key's
//! retry must hash to the same bytes), and because a second endpoint taking keys would then need
//! no change here for a key to never replay across endpoints.

use sha2::{Digest, Sha256};

use super::PaymentRequest;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(pub String);

impl Fingerprint {
    /// `method` as it appears on the request line (`POST`), `path` without the query.
    pub fn of(method: &str, path: &str, request: &PaymentRequest) -> Self {
        let mut hash = Sha256::new();
        hash.update(method);
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

    fn request(
        amount: i64,
        currency: &str,
        source: &str,
        description: Option<&str>,
    ) -> PaymentRequest {
        PaymentRequest::parse(amount, currency, source.into(), description.map(Into::into)).unwrap()
    }

    fn fingerprint(request: &PaymentRequest) -> Fingerprint {
        Fingerprint::of("POST", "/v1/payments", request)
    }

    #[test]
    fn the_hashed_bytes_are_the_method_the_path_and_the_request_in_field_order() {
        // Stored keys hold fingerprints of exactly this form: changing it would turn every
        // retry of a stored key into a 422.
        let form = "POST\n/v1/payments\n\
                    {\"amount\":2000,\"currency\":\"USD\",\"source\":\"tok_visa\",\"description\":null}";

        let fingerprint = fingerprint(&request(2000, "usd", "tok_visa", None));

        assert_eq!(fingerprint.0, hex::encode(Sha256::digest(form)));
    }

    #[test]
    fn the_currency_case_does_not_matter() {
        assert_eq!(
            fingerprint(&request(2000, "usd", "tok_visa", None)),
            fingerprint(&request(2000, "USD", "tok_visa", None))
        );
    }

    #[test]
    fn any_change_to_the_payment_path_or_method_changes_it() {
        let base = request(2000, "usd", "tok_visa", None);
        let original = fingerprint(&base);
        for other in [
            request(2001, "usd", "tok_visa", None),
            request(2000, "eur", "tok_visa", None),
            request(2000, "usd", "tok_mastercard", None),
            request(2000, "usd", "tok_visa", Some("x")),
        ] {
            assert_ne!(fingerprint(&other), original, "{other:?}");
        }
        assert_ne!(Fingerprint::of("POST", "/v1/refunds", &base), original);
        assert_ne!(Fingerprint::of("PUT", "/v1/payments", &base), original);
    }
}
