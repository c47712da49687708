//! `sdlab`: every system of the workspace in one process, on embedded backends unless
//! `DATABASE_URL`, `REDIS_URL` and `KAFKA_BROKERS` say otherwise. Run with
//!
//! ```text
//! cargo run --release
//! ```
//!
//! It prints where each system listens and a few curl lines to try. Each system is started through
//! the same `Application::build` / `run_until_stopped` its own binary uses, so the lab adds
//! nothing a system does not do alone; Ctrl-C (or SIGTERM) stops them all gracefully.
//!
//! # Layout
//! - [`systems`]: builds the five systems and runs them until stopped.
//! - [`demo`]: the data each start makes so that the banner's curl lines work.
//! - [`banner`]: what is printed once everything is up.

mod banner;
mod demo;
mod systems;

use self::{demo::Demo, systems::Systems};

/// The allocator every system binary uses (see `url-shortener/src/main.rs` for why).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    platform::telemetry::init();
    let stop = platform::shutdown::on_signal();
    let systems = Systems::build().await?;
    let demo = Demo::create(&systems).await?;
    banner::print(&systems, &demo);
    systems.run_until_stopped(stop).await
}
