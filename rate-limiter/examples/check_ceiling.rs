//! The ceiling for the decision-API benchmark: a bare axum handler that takes the same
//! `POST /api/v1/check` body, parses it, and answers a fixed decision, with no middleware and no
//! limiter. What the real decision API costs is measured against this, on the same machine, in
//! the same run, with the same load tool (see `loadtests/bench-rate-limiter.sh`).
//!
//! ```text
//! cargo run --release -p rate-limiter --example check_ceiling -- 127.0.0.1:18080
//! ```

use axum::{Json, Router, routing::post};
use serde::Deserialize;
use serde_json::{Value, json};

/// The same allocator as the limiter's binary, so that the comparison measures the handler.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Deserialize)]
#[allow(dead_code)] // parsed, as the real handler parses it, and dropped
struct CheckRequest {
    rule: String,
    key: String,
    cost: Option<u64>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18080".into());
    let app = Router::new().route(
        "/api/v1/check",
        post(|Json(_request): Json<CheckRequest>| async {
            Json::<Value>(json!({"allowed": true, "limit": 20, "remaining": 19,
                "reset_after_ms": 100, "retry_after_ms": 0, "delay_ms": 0}))
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
