//! The ceiling for the decision-API benchmark: a bare axum handler that takes the same
//! `POST /api/v1/check` body, parses it, and answers a fixed decision, with no middleware and no
//! limiter ([`ceiling::router`]). What the real decision API costs is measured against this, on
//! the same machine, in the same run, with the same load tool (see
//! `loadtests/bench-rate-limiter.sh`).
//!
//! ```text
//! cargo run --release -p rate-limiter --example check_ceiling -- 127.0.0.1:18080
//! ```

#[path = "../benches/support/ceiling.rs"]
mod ceiling;

/// The same allocator as the limiter's binary, so that the comparison measures the handler.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18080".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, ceiling::router()).await
}
