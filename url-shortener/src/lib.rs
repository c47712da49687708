//! A URL shortener (TinyURL, Bitly), built the way a senior engineer explains it in a
//! system-design interview: unique IDs leased in blocks and permuted into 7-character base62
//! codes, cache-aside reads with negative caching, 302 redirects, visits counted off the
//! redirect path, and an atomic check for links with a visit limit. `DESIGN.md` beside this
//! crate is the walkthrough, with the estimates and the measured numbers.
//!
//! A request to `GET /{code}` goes: [`http::redirect`] → [`service::Shortener::resolve`] →
//! [`cache::LinkCache`] (hit: done) → [`store::LinkStore`] on a miss → the visit is tallied in
//! [`visits::VisitRecorder`], which a background task flushes to the database every second.
//!
//! # Layout
//! - [`domain`]: codes, the ID permutation, target-URL rules, link availability, bot detection.
//!   No HTTP, SQL or cache in here.
//! - [`ids`]: the code generator: ID blocks leased from the database, permuted, encoded.
//! - [`store`]: the `LinkStore` trait, with `postgres` and `sqlite` modules side by side, and
//!   `faulty`: the store and the API keys behind the `database` fault switch.
//! - [`cache`]: cache-aside over `platform::cache::Cache`, with negative entries.
//! - [`visits`]: batched visit counting.
//! - [`service`]: the use cases, as `Shortener`.
//! - [`targets`]: target URLs as the service accepts them, with the DNS lookup that refuses names
//!   leading back to the shortener.
//! - [`http`]: one module per route group, and the OpenAPI document.
//! - [`error`]: `ShortenerError` and the status of each variant.
//! - [`settings`]: environment variables and their defaults.
//! - [`app`]: connects the backends (the one place they are chosen), puts each behind its fault
//!   switch (`/admin/faults/{database,redis}`), and serves.

/// The name the shortener goes by: its PostgreSQL schema, SQLite file, Redis namespace, metrics.
pub const SYSTEM: &str = "url-shortener";

pub mod app;
pub mod cache;
pub mod domain;
pub mod error;
pub mod http;
pub mod ids;
pub mod service;
pub mod settings;
pub mod store;
pub mod targets;
pub mod visits;

pub use self::{app::Application, settings::Settings};
