//! The feed service on its own. Run with
//!
//! ```text
//! cargo run --release -p feed-service
//! ```
//!
//! and try (each sign-up answers with the user's id and token)
//!
//! ```text
//! curl -s localhost:8084/v1/users -H 'content-type: application/json' -d '{"handle": "ada"}'
//! curl -s localhost:8084/v1/users -H 'content-type: application/json' -d '{"handle": "grace"}'
//! curl -s -X PUT localhost:8084/v1/users/<ada's id>/following/<grace's id> -H "authorization: Bearer <ada's token>"
//! curl -s localhost:8084/v1/posts -H "authorization: Bearer <grace's token>" \
//!      -H 'content-type: application/json' -d '{"text": "Hello, world"}'
//! curl -s localhost:8084/v1/users/<ada's id>/feed?limit=20 -H "authorization: Bearer <ada's token>"
//! ```

use feed_service::{Application, Settings};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    platform::telemetry::init();
    let app = Application::build(Settings::from_env()?).await?;
    app.run_until_stopped(platform::shutdown::signal()).await
}
