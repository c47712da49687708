//! The response headers of draft-ietf-httpapi-ratelimit-headers, and `Retry-After`.
//!
//! ```text
//! RateLimit-Policy: "per-user";q=100;w=60, "burst";q=10;w=1
//! RateLimit: "per-user";r=42;t=12, "burst";r=0;t=1
//! Retry-After: 1
//! ```
//!
//! Both fields are structured-field lists (RFC 9651) with one item per enforced rule: the rule's
//! name as a string, `q` the quota (capacity), `w` the window in seconds, `r` the units left and
//! `t` the seconds until the quota is fully back. Seconds are integers, so `t` and `Retry-After`
//! are rounded up: a client that waits what it is told never arrives early. Rules in shadow mode
//! are left out (a client should never see a limit that cannot reject it), and so is the
//! `RateLimit` item of a rule whose store failed open (nothing is known to report).

use std::{fmt::Write, time::Duration};

use axum::http::{HeaderMap, HeaderName, HeaderValue, header::RETRY_AFTER};

use crate::limiter::Verdict;

pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Seconds, rounded up.
pub fn ceil_secs(duration: Duration) -> u64 {
    duration.as_nanos().div_ceil(1_000_000_000) as u64
}

/// Milliseconds, rounded up.
pub fn ceil_millis(duration: Duration) -> u64 {
    duration.as_nanos().div_ceil(1_000_000) as u64
}

/// Adds `RateLimit-Policy`, `RateLimit` and, for a rejection, `Retry-After`.
pub fn insert(headers: &mut HeaderMap, verdict: &Verdict) {
    // Written straight into one string per field: this runs on every response.
    let (mut policy, mut current) = (String::new(), String::new());
    for outcome in verdict.outcomes.iter().filter(|o| o.rule.enforced()) {
        let rule = &outcome.rule;
        let separator = if policy.is_empty() { "" } else { ", " };
        let _ = write!(
            policy,
            "{separator}\"{}\";q={};w={}",
            rule.name,
            rule.algorithm.capacity(),
            ceil_secs(rule.algorithm.window()).max(1)
        );
        if let Some(decision) = outcome.decision {
            let separator = if current.is_empty() { "" } else { ", " };
            let _ = write!(
                current,
                "{separator}\"{}\";r={};t={}",
                rule.name,
                decision.status.remaining,
                ceil_secs(decision.status.reset_after)
            );
        }
    }
    for (name, value) in [(RATELIMIT_POLICY, policy), (RATELIMIT, current)] {
        if !value.is_empty() {
            headers.insert(
                name,
                HeaderValue::try_from(value).expect("rule names are header-safe"),
            );
        }
    }
    if !verdict.allowed {
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from(ceil_secs(verdict.retry_after())),
        );
    }
}
