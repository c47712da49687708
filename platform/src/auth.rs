//! Bearer API keys: how a client proves which account it acts for.
//!
//! A key is 160 random bits, shown to its owner once (`sk_` followed by 40 hex digits) and stored
//! only as its SHA-256. A plain, fast hash is the right tool here, unlike for passwords: the key
//! is random and long, so there is nothing for a slow hash (argon2, bcrypt) to protect against,
//! and hashing it on every request must stay cheap. A leaked table of hashes cannot be turned back
//! into keys.
//!
//! Clients send `Authorization: Bearer sk_…` (RFC 6750). The [`BearerKey`] extractor answers a
//! missing or malformed header with a 401 problem and `WWW-Authenticate: Bearer`; whether the key
//! belongs to anyone is the system's question, asked of its own store with [`ApiKey::hash`].

use std::fmt;

use axum::{
    extract::FromRequestParts,
    http::{HeaderValue, StatusCode, header, request::Parts},
};
use sha2::{Digest, Sha256};

use crate::problem::Problem;

const PREFIX: &str = "sk_";
const RANDOM_BYTES: usize = 20;

/// A secret API key. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// A new random key.
    pub fn generate() -> Self {
        let bytes: [u8; RANDOM_BYTES] = rand::random();
        Self(format!("{PREFIX}{}", hex::encode(bytes)))
    }

    /// Accepts anything shaped like a key; whether it exists is for the store to say.
    pub fn parse(value: &str) -> Option<Self> {
        let digits = value.strip_prefix(PREFIX)?;
        let well_formed = digits.len() == RANDOM_BYTES * 2
            && digits
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        well_formed.then(|| Self(value.to_owned()))
    }

    /// The secret itself, to show its owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the database stores and looks keys up by: the SHA-256 of the key, in hex.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(sk_…)")
    }
}

/// The API key from `Authorization: Bearer …`, not yet checked against any store.
#[derive(Debug, Clone)]
pub struct BearerKey(pub ApiKey);

impl<S: Send + Sync> FromRequestParts<S> for BearerKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Err(unauthorized(
                "Send your API key as `Authorization: Bearer sk_…`.",
            ));
        }
        let token = bearer_token(&parts.headers)
            .ok_or_else(|| unauthorized("The Authorization header must use the Bearer scheme."))?;
        ApiKey::parse(token)
            .map(BearerKey)
            .ok_or_else(|| unauthorized("The API key is not valid."))
    }
}

/// The 401 every system sends for a missing, malformed or unknown key.
pub fn unauthorized(detail: &str) -> Problem {
    Problem::status(StatusCode::UNAUTHORIZED)
        .with_detail(detail)
        .with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer realm="sdlab""#),
        )
}

/// The token of `Authorization: Bearer <token>`, if the header has that form (the scheme is
/// case-insensitive, RFC 9110 section 11.1).
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    async fn extract(authorization: Option<&str>) -> Result<BearerKey, Problem> {
        let mut builder = Request::builder();
        if let Some(value) = authorization {
            builder = builder.header(header::AUTHORIZATION, value);
        }
        let (mut parts, ()) = builder.body(()).unwrap().into_parts();
        BearerKey::from_request_parts(&mut parts, &()).await
    }

    #[test]
    fn generated_keys_parse_and_differ() {
        let a = ApiKey::generate();
        let b = ApiKey::generate();
        assert_ne!(a, b);
        assert_eq!(ApiKey::parse(a.expose()), Some(a));
    }

    #[test]
    fn the_hash_is_stable_and_is_not_the_key() {
        let key = ApiKey::generate();
        assert_eq!(key.hash(), key.hash());
        assert_eq!(key.hash().len(), 64);
        assert!(!key.hash().contains(&key.expose()[3..]));
    }

    #[test]
    fn debug_output_does_not_leak_the_secret() {
        let key = ApiKey::generate();
        assert!(!format!("{key:?}").contains(&key.expose()[3..]));
    }

    #[tokio::test]
    async fn a_bearer_key_is_extracted() {
        let key = ApiKey::generate();
        let extracted = extract(Some(&format!("Bearer {}", key.expose())))
            .await
            .unwrap();
        assert_eq!(extracted.0, key);
    }

    #[tokio::test]
    async fn a_missing_or_malformed_key_is_a_401_with_a_challenge() {
        for header in [None, Some("Basic dXNlcjpwYXNz"), Some("Bearer nope")] {
            let problem = extract(header).await.unwrap_err();
            assert_eq!(problem.status, 401, "{header:?}");
            let response = axum::response::IntoResponse::into_response(problem);
            assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
        }
    }
}
