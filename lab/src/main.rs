//! `sdlab`: every system of the workspace in one process, on embedded backends unless
//! `DATABASE_URL`, `REDIS_URL` and `KAFKA_BROKERS` say otherwise. Run with
//!
//! ```text
//! cargo run --release
//! ```
//!
//! It prints where each system listens and a few curl lines to try. `cargo run --release --
//! walkthrough` instead sits a system's mock interview in the terminal (the `walkthrough`
//! crate). Each system is started through the same `Application::build` / `run_until_stopped`
//! its own binary uses, so the lab adds nothing a system does not do alone; Ctrl-C (or SIGTERM)
//! stops them all gracefully.
//!
//! # Breaking the real engines
//! With `DATABASE_URL` or `REDIS_URL` set, each system reaches its PostgreSQL and its Redis
//! through a TCP proxy of its own, named `<system>-<engine>` (`rate-limiter-redis`), which the
//! lab runs in this process behind Toxiproxy's HTTP API on `SDLAB_TOXIPROXY_ADDR`
//! (127.0.0.1:8474). The console shows them on each system's page as its `proxy-database` and
//! `proxy-redis` switches: disabled, a proxy closes its listener and every connection through
//! it, so the system's own client meets the outage (refused connections, a pool that cannot
//! fill, reconnects once it is back); a latency toxic delays every answer. The banner prints the
//! curl lines. `docker-compose.yml` runs Toxiproxy itself (`SDLAB_TOXIPROXY_URL`), where the
//! broker is proxied too; `SDLAB_PROXY_ENGINES=off` connects to the engines directly. On the
//! embedded backends there are no proxies: the systems' own switches (`/admin/faults`) serve.
//! [`engines`] says how, and why the lab's own proxies leave the broker alone.
//!
//! # Layout
//! - [`systems`]: builds the five systems and runs them until stopped.
//! - [`engines`]: the proxies between the systems and their real engines.
//! - [`demo`]: the data each start makes so that the banner's curl lines work.
//! - [`banner`]: what is printed once everything is up.

mod banner;
mod demo;
mod engines;
mod systems;

use clap::{Parser, Subcommand};

use self::{demo::Demo, systems::Systems};

/// Every system of the workspace in one process; with a subcommand, something else.
#[derive(Debug, Parser)]
#[command(name = "sdlab", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Walk through a system as a 45-minute mock interview (without a system: the list).
    Walkthrough(walkthrough::terminal::Args),
}

/// The allocator every system binary uses (see `url-shortener/src/main.rs` for why).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(Command::Walkthrough(args)) = Cli::parse().command {
        return walkthrough::terminal::run(args).await;
    }
    platform::telemetry::init();
    let stop = platform::shutdown::on_signal();
    let systems = Systems::build().await?;
    let demo = Demo::create(&systems).await?;
    banner::print(&systems, &demo);
    systems.run_until_stopped(stop).await
}
