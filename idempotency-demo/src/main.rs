//! The payments service on its own, with its provider simulator. Run with
//!
//! ```text
//! export PAYMENTS_DEMO_KEY=sk_0000000000000000000000000000000000000001
//! export SDLAB_ADMIN_TOKEN=sk_0000000000000000000000000000000000000002   # opens the fault switches
//! cargo run --release -p idempotency-demo
//! ```
//!
//! and try
//!
//! ```text
//! curl -si -X POST localhost:8085/v1/payments -H "authorization: Bearer $PAYMENTS_DEMO_KEY" \
//!      -H 'idempotency-key: order-1' -H 'content-type: application/json' \
//!      -d '{"amount": 2000, "currency": "usd", "source": "tok_visa"}'
//! curl -s -X PUT localhost:8095/v1/faults -H "authorization: Bearer $SDLAB_ADMIN_TOKEN" \
//!      -H 'content-type: application/json' -d '{"crash_after_charge_rate": 1}'
//! curl -s -X PUT localhost:8085/admin/faults/broker -H "authorization: Bearer $SDLAB_ADMIN_TOKEN" \
//!      -H 'content-type: application/json' -d '{"unreachable": true}'
//! ```
//!
//! `cargo run --release` at the workspace root starts it inside the lab, with the other systems.

use idempotency_demo::{Application, Settings};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    platform::telemetry::init();
    let app = Application::build(Settings::from_env()?).await?;
    tracing::info!(backends = %app.describe_backends(), "payments ready");
    app.run_until_stopped(platform::shutdown::signal()).await
}
