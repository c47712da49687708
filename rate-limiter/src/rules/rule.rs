//! What a rule is: a name, an algorithm with its limit, shadow mode, a failure policy, and for
//! the gateway and the tower layer, which requests the rule applies to and whom it counts.
//!
//! Built once from the rules file (`file.rs`); everything downstream holds parsed, valid values.

use std::{fmt, time::Duration};

use axum::http::{HeaderName, Method};

use crate::algorithm::Algorithm;

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: RuleName,
    pub algorithm: Algorithm,
    /// Decide and record, never reject: how a new limit is tried on live traffic before it is
    /// enforced.
    pub shadow: bool,
    pub failure: FailurePolicy,
    /// Which gateway requests the rule applies to; `None` for rules only the decision API uses.
    pub matcher: Option<Matcher>,
}

impl Rule {
    pub fn new(name: RuleName, algorithm: Algorithm) -> Self {
        Self {
            name,
            algorithm,
            shadow: false,
            failure: FailurePolicy::default(),
            matcher: None,
        }
    }

    /// Whether this rule can reject a request (that is, it is not in shadow mode).
    pub fn enforced(&self) -> bool {
        !self.shadow
    }
}

/// What a rule does when its store (Redis) fails or does not answer within `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailurePolicy {
    pub mode: FailMode,
    pub timeout: Duration,
}

impl Default for FailurePolicy {
    /// Open, after 50 ms: a limiter exists to protect a service, and a limiter outage that
    /// rejected every request would be the outage it was meant to prevent (Stripe's limiters
    /// fail open; Envoy's default is open after 20 ms).
    fn default() -> Self {
        Self {
            mode: FailMode::Open,
            timeout: Duration::from_millis(50),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Admit the request, and count it in `ratelimit_decisions_total{outcome="failed_open"}`.
    Open,
    /// Reject the request with 503: for limits that protect something that must not be
    /// overrun (a paid upstream quota, a login endpoint against credential stuffing).
    Closed,
}

/// A rule's name: 1 to 64 ASCII letters, digits, `-`, `_` or `.`. It appears in headers as a
/// structured-field string and in Redis keys, so nothing else is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleName(String);

impl RuleName {
    pub fn parse(name: &str) -> Result<Self, String> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(format!(
                "`{name}` is not a rule name: use 1 to 64 letters, digits, `-`, `_` or `.`"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// So that a map keyed by rule name can be searched with the `&str` of a request, without
/// allocating. (`Hash` is derived, and hashes the inner `String` exactly as a `str`.)
impl std::borrow::Borrow<str> for RuleName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The client a rule counts for: `user:42`, an IP address, a hashed API key. 1 to 256 bytes, no
/// control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey(String);

impl ClientKey {
    pub const MAX_LEN: usize = 256;

    pub fn parse(key: &str) -> Result<Self, &'static str> {
        if key.is_empty() {
            return Err("the key must not be empty");
        }
        if key.len() > Self::MAX_LEN {
            return Err("the key must be at most 256 bytes");
        }
        if key.chars().any(char::is_control) {
            return Err("the key must not contain control characters");
        }
        Ok(Self(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which requests through the gateway or the layer a rule applies to, and whom it counts.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The path must start with this (`/` matches everything).
    pub path_prefix: String,
    /// Empty: every method.
    pub methods: Vec<Method>,
    pub client: ClientSource,
}

impl Matcher {
    /// Whether a request is the rule's business. The prefix matches whole path segments
    /// (`/login` covers `/login` and `/login/2fa`, not `/login-help`), unless it ends in `/`.
    /// A rule on `GET` also covers `HEAD`, which servers answer with the `GET` handler: leaving
    /// it out would let a client read every header of a limited resource for free.
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        let path_matches = path
            .strip_prefix(self.path_prefix.as_str())
            .is_some_and(|rest| {
                self.path_prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/')
            });
        let method_matches = self.methods.is_empty()
            || self.methods.contains(method)
            || (method == Method::HEAD && self.methods.contains(&Method::GET));
        path_matches && method_matches
    }
}

/// Where the gateway finds the client a request is counted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientSource {
    /// The peer's IP address.
    Ip,
    /// The bearer token of `Authorization`, hashed (a limiter has no business storing
    /// credentials); requests without one are counted by IP.
    ApiKey,
    /// The value of a header (`x-user-id` set by an authenticating proxy); requests without it
    /// are counted by IP.
    Header(HeaderName),
}
