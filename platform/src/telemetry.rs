//! Tracing setup: human-readable lines by default, JSON lines with `LOG_FORMAT=json`, filtered by
//! `RUST_LOG` (default `info`, with the chattiest dependencies turned down).
//!
//! Every request runs inside a span carrying its request id (see `http`), so each line a handler
//! logs can be traced back to the request that caused it.

use tracing::Subscriber;
use tracing_subscriber::{
    EnvFilter,
    fmt::{self, MakeWriter},
    prelude::*,
};

const DEFAULT_FILTER: &str = "info,sqlx=warn";

/// Installs the global subscriber, writing to stdout. Calling it twice is harmless (the second
/// call does nothing), so binaries and test helpers can both call it.
pub fn init() {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let _already_installed = subscriber(std::io::stdout, ansi).try_init();
}

/// The subscriber every binary installs, writing to `writer`. Public so that a benchmark can run
/// under exactly what production pays for logging (`tracing::subscriber::with_default`).
pub fn subscriber<W>(writer: W, ansi: bool) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        Box::new(registry.with(fmt::layer().json().flatten_event(true).with_writer(writer)))
    } else {
        Box::new(registry.with(fmt::layer().compact().with_ansi(ansi).with_writer(writer)))
    }
}
