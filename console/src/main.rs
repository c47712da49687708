//! The console alone, watching the systems `CONSOLE_TARGETS` names (the lab's by default):
//!
//! ```text
//! cargo run --release -p console
//! ```
//!
//! `console walkthrough …` is the lab's `walkthrough` subcommand: the console runs each
//! demonstration its pages ask for so, in a process of its own (`walkthrough::view::Demos`).

use console::{Application, Settings};

/// The allocator every sdlab binary uses (see `url-shortener/src/main.rs` for why).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(args) = walkthrough::terminal::from_command_line() {
        return walkthrough::terminal::run(args).await;
    }
    platform::telemetry::init();
    let stop = platform::shutdown::on_signal();
    let app = Application::build(Settings::from_env()?).await?;
    tracing::info!(address = %app.local_addr(), "the console is up");
    app.run_until_stopped(stop.cancelled_owned()).await
}
