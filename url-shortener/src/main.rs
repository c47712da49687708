//! The URL shortener on its own. Run with
//!
//! ```text
//! cargo run --release -p url-shortener
//! ```
//!
//! and try
//!
//! ```text
//! curl -s -X POST localhost:8081/api/v1/keys -H 'content-type: application/json' -d '{"name":"me"}'
//! curl -s -X POST localhost:8081/api/v1/links -H "authorization: Bearer $KEY" \
//!      -H 'content-type: application/json' -d '{"url":"https://www.rust-lang.org"}'
//! curl -si localhost:8081/<code>
//! ```
//!
//! `cargo run --release` at the workspace root starts it inside the lab, with the other systems.

use url_shortener::{Application, Settings};

/// mimalloc rather than the system allocator: a redirect makes a few dozen small, short-lived
/// allocations (headers, the span, the cache entry), and glibc's malloc and free were a visible
/// share of its profile (DESIGN.md §8, with the command). The ceiling binary in the redirect
/// benchmark uses it too, so the comparison is fair.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    platform::telemetry::init();
    let app = Application::build(Settings::from_env()?).await?;
    app.run_until_stopped(platform::shutdown::signal()).await
}
