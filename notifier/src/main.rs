//! The notifier on its own. Run with a caller's key of your choosing
//!
//! ```text
//! NOTIFIER_CALLER_KEY=sk_0000000000000000000000000000000000000001 cargo run --release -p notifier
//! ```
//!
//! and try
//!
//! ```text
//! export KEY=sk_0000000000000000000000000000000000000001
//! curl -s -X PUT localhost:8083/v1/users/ada -H "authorization: Bearer $KEY" \
//!      -H 'content-type: application/json' \
//!      -d '{"email": "ada@example.com", "phone": "+442071838750", "preferences": {"sms": false}}'
//! curl -s -X POST localhost:8083/v1/notifications -H "authorization: Bearer $KEY" \
//!      -H 'content-type: application/json' \
//!      -d '{"user_id": "ada", "template": "welcome", "data": {"name": "Ada"}}'
//! ```
//!
//! With `SDLAB_ADMIN_TOKEN` set, break the broker (`DESIGN.md` §12) and watch the outbox fill:
//!
//! ```text
//! curl -s -X PUT localhost:8083/admin/faults/broker -H "authorization: Bearer $SDLAB_ADMIN_TOKEN" \
//!      -H 'content-type: application/json' -d '{"unreachable": true}'
//! curl -s localhost:8083/metrics | grep outbox_pending
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
