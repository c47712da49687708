//! The ceiling for the feed-read benchmark: a bare axum handler that answers every
//! `GET /v1/users/{id}/feed` with the same bytes, a first page the real service served (the
//! benchmark saves one), and does nothing else: no token, no cache, no database, no metrics. k6
//! reads it at the benchmark's rate in the same run as the service, so its p99 is the tail that
//! k6, the network stack and the two shared cores add to any answer of that size, which no feed
//! read can beat (see `loadtests/bench-feed.sh`).
//!
//! ```text
//! cargo run --release -p feed-service --example read_ceiling -- 127.0.0.1:18401 page.json
//! ```

use axum::{Router, http::header, routing::get};

/// The same allocator as the service's binary, so that the comparison measures the handler.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(page)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: read_ceiling <address> <a feed page, as the service answered it>");
    };
    let page = axum::body::Bytes::from(std::fs::read(&page)?);
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/v1/users/{id}/feed",
            get(move || {
                let page = page.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], page) }
            }),
        );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
