//! The ceiling the decision API is measured against: a bare axum handler that takes the same
//! `POST /api/v1/check` body, parses it, and answers a fixed decision, with no middleware and no
//! limiter. Shared by the over-the-network benchmark (`examples/check_ceiling.rs`) and the
//! in-process one (`benches/http_stack.rs`), so both compare with the same thing.

use axum::{Json, Router, routing::post};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[allow(dead_code)] // parsed, as the real handler parses it, and dropped
struct CheckRequest {
    rule: String,
    key: String,
    cost: Option<u64>,
}

pub fn router() -> Router {
    Router::new().route(
        "/api/v1/check",
        post(|Json(_request): Json<CheckRequest>| async {
            Json::<Value>(json!({"allowed": true, "limit": 20, "remaining": 19,
                "reset_after_ms": 100, "retry_after_ms": 0, "delay_ms": 0}))
        }),
    )
}
