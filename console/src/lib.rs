//! sdlab's web console: every system watched live from one page, at http://localhost:8080.
//!
//! The console knows the systems only as a user does, over HTTP: their `/metrics` and `/readyz`
//! (and, on their pages, their APIs). So the same console watches the lab and any deployment
//! whose URLs it is given (`CONSOLE_TARGETS`), and no system imports it.
//!
//! # Layout
//! - [`settings`]: the targets (each system's base URLs, one per replica) and the window.
//! - [`scrape`]: reads every target once a second.
//! - [`signals`]: turns two scrapes into rates, error rates, latency percentiles and each
//!   system's headline number.
//! - [`window`]: the last 15 minutes of those, per system and per replica, in memory.
//! - [`load`]: runs a system's k6 scenario from its page, one run at a time.
//! - [`toxiproxy`]: the real engines' switches, proxies driven through the Toxiproxy API.
//! - [`http`]: the pages (server-rendered, `templates/`), the JSON they refresh from, and the
//!   assets (`assets/`, with uPlot vendored).
//! - [`app`]: binds, scrapes and serves.

/// The name the console goes by in its own metrics and logs.
pub const SYSTEM: &str = "console";

pub mod app;
pub mod http;
pub mod load;
pub mod scrape;
pub mod settings;
pub mod signals;
pub mod toxiproxy;
pub mod window;

pub use self::{app::Application, settings::Settings};
