//! The ceiling for the redirect benchmark: a bare axum handler that answers every `GET /{code}`
//! with the same 302, and nothing else (no middleware, no cache, no counting). Whatever the real
//! redirect path costs is measured against this, on the same machine, in the same run, with the
//! same load tool (see `loadtests/bench-redirect.sh`).
//!
//! ```text
//! cargo run --release -p url-shortener --example redirect_ceiling -- 127.0.0.1:18080
//! ```

use axum::{
    Router,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};

/// The same allocator as the shortener's binary, so that the comparison measures the handler.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18080".into());
    let app = Router::new().route(
        "/{code}",
        get(|| async {
            (
                StatusCode::FOUND,
                [(header::LOCATION, "https://example.com/landing/page")],
            )
                .into_response()
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
