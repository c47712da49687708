//! A rate limiter: five algorithms, exact under concurrency, in process or on Redis.
//!
//! Two faces over one [`limiter::Limiter`]: a decision API (`POST /api/v1/check`, as Envoy's
//! rate-limit service offers), and a gateway that applies the rules per route and per client in
//! front of an upstream. Rules come from a TOML or YAML file. See `DESIGN.md` for the walkthrough.
//!
//! # Layout
//! - [`algorithm`]: token bucket (GCRA), leaky bucket, fixed window, sliding log and sliding
//!   counter, as pure functions of (state, now, cost).
//! - [`store`]: where the state lives: [`store::MemoryStore`] in process, [`store::RedisStore`]
//!   shared by every instance through one Lua script (`store/lua/limiter.lua`), concurrent
//!   requests batched into one call; [`store::FaultyStore`] puts either behind the `redis` fault
//!   switch.
//! - [`limiter`]: rules over a store: all-or-nothing across rules, failure policies, the cache
//!   of keys over their limit.
//! - [`rules`]: what a rule is, and the rules file (TOML or YAML) it is read from.
//! - [`headers`]: `RateLimit-Policy`, `RateLimit`, `Retry-After`.
//! - [`layer`]: the rules with a `match`, as a tower layer in front of any axum router: whom a
//!   request is counted for, and the 429 it gets before the handler runs.
//! - [`gateway`]: the reverse proxy to one upstream, behind that layer, on a listener of its own.
//! - [`http`]: the decision API; [`error`]: its problem responses.
//! - [`app`], [`settings`]: building and running the service, with the settings it takes
//!   from the environment.

/// The name the limiter goes by: its Redis namespace, metrics, logs.
pub const SYSTEM: &str = "rate-limiter";

pub mod algorithm;
pub mod app;
pub mod error;
pub mod gateway;
pub mod headers;
pub mod http;
pub mod layer;
pub mod limiter;
pub mod rules;
pub mod settings;
pub mod store;

pub use app::Application;
pub use settings::Settings;
