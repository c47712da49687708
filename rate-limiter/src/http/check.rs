//! `POST /api/v1/check`: may this client spend this much of this rule?
//!
//! ```text
//! POST /api/v1/check   {"rule": "per-user", "key": "user:42", "cost": 1}
//! 200 {"allowed": true,  "limit": 10, "remaining": 9, "reset_after_ms": 100, "retry_after_ms": 0, "delay_ms": 0}
//! 429 {"allowed": false, "limit": 10, "remaining": 0, "reset_after_ms": 1000, "retry_after_ms": 100, "delay_ms": 0}
//! ```
//!
//! `cost` defaults to 1. `cost: 0` is a peek: it answers whether one unit would be admitted now
//! and spends nothing. A cost above the rule's capacity is 422, since no wait would admit it.
//! A rule in shadow mode always answers 200; what it would have done is in `shadow_rejected` and
//! the metrics. Times are milliseconds rounded up, so a client that waits `retry_after_ms` is
//! never early. If the store fails, the rule's failure policy answers: 200 with no counts
//! (`failed_open: true`) or 503.
//!
//! Only a caller's key is answered (401 otherwise), and only about a rule it is granted (403
//! otherwise). A gateway's rule is refused like an unknown one (422), whoever asks: the budgets
//! the gateway counts are spent by its requests alone.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use platform::{
    extract::Json,
    problem::{FieldError, Problem},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AppState, Caller};
use crate::{
    headers::{self, ceil_millis},
    limiter::LimitError,
    rules::ClientKey,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// The rule's name, as in the configuration file (`GET /api/v1/rules` lists them).
    #[schema(example = "per-user", pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub rule: String,
    /// Whom the rule counts for: 1 to 256 bytes (UTF-8), no control characters.
    #[schema(
        example = "user:42",
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]+$"
    )]
    pub key: String,
    /// Units to spend, 1 by default; 0 asks without spending.
    #[schema(example = 1, minimum = 0)]
    pub cost: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResponse {
    pub allowed: bool,
    /// The rule's capacity: the most units a key can spend at once.
    pub limit: u64,
    /// Units left after this decision (never negative).
    pub remaining: u64,
    /// Milliseconds until the key is back to full capacity.
    pub reset_after_ms: u64,
    /// Milliseconds until the same request would be allowed; 0 when allowed.
    pub retry_after_ms: u64,
    /// Milliseconds to hold an allowed request before it goes ahead (leaky bucket); else 0.
    pub delay_ms: u64,
    /// Present for a rule in shadow mode: whether it would have rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_rejected: Option<bool>,
    /// Present when the store failed and the rule failed open: the counts above are unknown.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub failed_open: bool,
}

/// Decide whether a client may spend units of a rule.
#[utoipa::path(
    post,
    path = "/api/v1/check",
    tag = "decisions",
    request_body = CheckRequest,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Allowed", body = CheckResponse),
        (status = 429, description = "Rejected; `Retry-After` says for how long", body = CheckResponse),
        (status = 403, description = "The key is not granted this rule", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown rule (or the gateway's), invalid key, or a cost the rule can never admit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store failed and the rule fails closed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn check(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(request): Json<CheckRequest>,
) -> Result<Response, Problem> {
    let limiter = &state.limiter;
    let rule = limiter.rule(&request.rule)?.clone();
    if rule.matcher.is_some() {
        return Err(LimitError::UnknownRule(request.rule).into());
    }
    if !caller.may_check(&rule.name) {
        return Err(Problem::status(StatusCode::FORBIDDEN).with_detail(format!(
            "This API key may not check `{}`: the rules file grants it {}.",
            rule.name,
            granted(&caller)
        )));
    }
    let key = ClientKey::parse(&request.key)
        .map_err(|reason| Problem::invalid_field(FieldError::body("key", reason)))?;
    let verdict = limiter
        .check(&[(rule.clone(), key)], request.cost.unwrap_or(1))
        .await?;

    let outcome = &verdict.outcomes[0];
    let capacity = rule.algorithm.capacity();
    let body = match outcome.decision {
        Some(decision) => CheckResponse {
            allowed: verdict.allowed,
            limit: capacity,
            remaining: decision.status.remaining,
            reset_after_ms: ceil_millis(decision.status.reset_after),
            retry_after_ms: if verdict.allowed {
                0
            } else {
                ceil_millis(decision.retry_after)
            },
            delay_ms: ceil_millis(decision.delay),
            shadow_rejected: rule.shadow.then_some(!decision.allowed),
            failed_open: false,
        },
        None => CheckResponse {
            allowed: true,
            limit: capacity,
            remaining: 0,
            reset_after_ms: 0,
            retry_after_ms: 0,
            delay_ms: 0,
            shadow_rejected: None,
            failed_open: true,
        },
    };
    let status = if verdict.allowed {
        StatusCode::OK
    } else {
        StatusCode::TOO_MANY_REQUESTS
    };
    let mut response = (status, axum::Json(body)).into_response();
    headers::insert(response.headers_mut(), &verdict);
    Ok(response)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleResponse {
    pub name: String,
    /// `token_bucket`, `leaky_bucket`, `fixed_window`, `sliding_log` or `sliding_counter`.
    pub algorithm: String,
    /// The capacity: the most units a key can spend at once.
    pub limit: u64,
    /// Milliseconds from empty to full capacity.
    pub window_ms: u64,
    pub shadow: bool,
    /// `open` or `closed`.
    pub on_failure: String,
    pub timeout_ms: u64,
}

/// The rules the caller may check.
#[utoipa::path(
    get,
    path = "/api/v1/rules",
    tag = "decisions",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The rules this key may check, by name", body = Vec<RuleResponse>),
    )
)]
pub async fn list_rules(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> axum::Json<Vec<RuleResponse>> {
    let mut rules: Vec<RuleResponse> = state
        .limiter
        .rules()
        .filter(|rule| caller.may_check(&rule.name))
        .map(|rule| RuleResponse {
            name: rule.name.to_string(),
            algorithm: rule.algorithm.name().to_owned(),
            limit: rule.algorithm.capacity(),
            window_ms: ceil_millis(rule.algorithm.window()),
            shadow: rule.shadow,
            on_failure: match rule.failure.mode {
                crate::rules::FailMode::Open => "open",
                crate::rules::FailMode::Closed => "closed",
            }
            .to_owned(),
            timeout_ms: ceil_millis(rule.failure.timeout),
        })
        .collect();
    rules.sort_by(|a, b| a.name.cmp(&b.name));
    axum::Json(rules)
}

/// The rules `caller` may check, for a 403's detail.
fn granted(caller: &crate::rules::Caller) -> String {
    let names: Vec<String> = caller.rules().map(|rule| format!("`{rule}`")).collect();
    if names.is_empty() {
        "no rule".to_owned()
    } else {
        names.join(", ")
    }
}
