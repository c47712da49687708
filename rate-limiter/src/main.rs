//! The rate limiter on its own. Run with
//!
//! ```text
//! cargo run -p rate-limiter                                   # decision API on :8082
//! cargo run -p rate-limiter -- --upstream http://localhost:8081   # and a gateway on :8092
//! cargo run -p rate-limiter -- --config my-rules.yaml
//! curl -si localhost:8082/api/v1/check -H 'content-type: application/json' \
//!      -d '{"rule": "per-user", "key": "user:42"}'
//! ```
//!
//! `--config` and `--upstream` override `RATE_LIMITER_CONFIG` and `RATE_LIMITER_UPSTREAM`
//! (see `settings.rs` for every variable).

use anyhow::{Context, bail};
use rate_limiter::{Application, Settings};

/// A faster allocator than the system one for many small, short-lived allocations.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    platform::telemetry::init();
    let mut settings = Settings::from_env()?;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => {
                settings.rules_file = Some(args.next().context("--config needs a path")?.into())
            }
            "--upstream" => {
                let origin = args.next().context("--upstream needs an origin")?;
                settings.upstream = Some(origin.parse().map_err(anyhow::Error::msg)?);
            }
            "-h" | "--help" => {
                println!(
                    "usage: rate-limiter [--config rules.toml|rules.yaml] [--upstream http://host:port]"
                );
                return Ok(());
            }
            other => bail!("unknown argument `{other}` (try --help)"),
        }
    }
    let application = Application::build(settings).await?;
    application
        .run_until_stopped(platform::shutdown::signal())
        .await
}
