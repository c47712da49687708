//! The rate limiter on its own. Run with
//!
//! ```text
//! export RATE_LIMITER_CALLER_KEY=sk_0000000000000000000000000000000000000001
//! cargo run -p rate-limiter                                   # decision API on :8082
//! cargo run -p rate-limiter -- --upstream http://localhost:8081   # and a gateway on :8092
//! cargo run -p rate-limiter -- --config my-rules.yaml
//! cargo run -p rate-limiter -- --help
//! curl -si localhost:8082/api/v1/check -H "authorization: Bearer $RATE_LIMITER_CALLER_KEY" \
//!      -H 'content-type: application/json' -d '{"rule": "per-user", "key": "user:42"}'
//! ```
//!
//! `--config` and `--upstream` override `RATE_LIMITER_CONFIG` and `RATE_LIMITER_UPSTREAM`
//! (see `settings.rs` for every variable).

use std::path::PathBuf;

use clap::Parser;
use rate_limiter::{Application, Settings, settings::Upstream};

/// A faster allocator than the system one for many small, short-lived allocations.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// Flags only, laid over the environment in `main`: `Settings::from_env()` stays the one reader
// of the variables, as the lab calls it with no command line at all. clap's `env` attribute would
// read the two variables a second time, in a second place that could drift from the first.
/// The rate limiter: a decision API, and with --upstream a gateway in front of that origin.
///
/// Each flag overrides the environment variable it names. The other settings come from the
/// environment only: RATE_LIMITER_ADDR, RATE_LIMITER_GATEWAY_ADDR,
/// RATE_LIMITER_OVER_LIMIT_ENTRIES, REDIS_URL and SDLAB_ADMIN_TOKEN (see
/// rate-limiter/src/settings.rs).
#[derive(Debug, Parser)]
#[command(name = "rate-limiter")]
struct Args {
    /// The rules file, TOML or YAML by its extension [overrides RATE_LIMITER_CONFIG; without
    /// either, the built-in rules.toml]
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Also serve a gateway that forwards to this origin, http://host:port [overrides
    /// RATE_LIMITER_UPSTREAM; without either, no gateway]
    #[arg(long, value_name = "ORIGIN")]
    upstream: Option<Upstream>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Before anything else, so that `--help` and a mistyped flag answer at once.
    let args = Args::parse();
    platform::telemetry::init();
    let settings = args.over(Settings::from_env()?);
    let application = Application::build(settings).await?;
    application
        .run_until_stopped(platform::shutdown::signal())
        .await
}

impl Args {
    /// `settings` with the flags that were given in place of their variables.
    fn over(self, mut settings: Settings) -> Settings {
        if let Some(path) = self.config {
            settings.rules_file = Some(path);
        }
        if let Some(upstream) = self.upstream {
            settings.upstream = Some(upstream);
        }
        settings
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("rate-limiter").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn flags_override_their_variables_and_leave_the_rest() {
        let mut from_env = Settings::for_tests();
        from_env.rules_file = Some("from-env.toml".into());
        from_env.upstream = Some("http://from-env:1".parse().unwrap());

        let given = parse(&[
            "--config",
            "rules.yaml",
            "--upstream",
            "http://upstream:8081",
        ]);
        let settings = given.unwrap().over(from_env.clone());
        assert_eq!(settings.rules_file, Some("rules.yaml".into()));
        assert_eq!(
            settings.upstream,
            Some("http://upstream:8081".parse().unwrap())
        );

        let settings = parse(&[]).unwrap().over(from_env.clone());
        assert_eq!(settings.rules_file, from_env.rules_file);
        assert_eq!(settings.upstream, from_env.upstream);
    }

    #[test]
    fn an_invalid_upstream_is_refused_naming_the_flag() {
        let err = parse(&["--upstream", "https://upstream"]).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("'--upstream <ORIGIN>'"), "{message}");
        assert!(message.contains("give an http:// origin"), "{message}");
    }
}
