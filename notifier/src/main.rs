//! The notifier on its own. Run with
//!
//! ```text
//! cargo run --release -p notifier
//! ```
//!
//! and try
//!
//! ```text
//! curl -s -X PUT localhost:8083/v1/users/ada -H 'content-type: application/json' \
//!      -d '{"email": "ada@example.com", "phone": "+442071838750", "preferences": {"sms": false}}'
//! curl -s -X POST localhost:8083/v1/notifications -H 'content-type: application/json' \
//!      -d '{"user_id": "ada", "template": "welcome", "data": {"name": "Ada"}}'
//! ```

use notifier::{Application, Settings};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    platform::telemetry::init();
    let app = Application::build(Settings::from_env()?).await?;
    app.run_until_stopped(platform::shutdown::signal()).await
}
