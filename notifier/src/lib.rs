//! A notification system (email, SMS, push, webhooks) built the way Alex Xu's chapter and Uber's
//! reliable-reprocessing design describe it. `DESIGN.md` beside this crate is the walkthrough.
//!
//! Built so far: users with contacts and per-channel preferences, templates rendered per channel
//! with minijinja, and intake that stores each notification durably (with an idempotency key)
//! before answering 202. The pipeline that delivers them (topics keyed by user, a router, channel
//! workers, retry topics and dead letters) comes next.
//!
//! # Layout
//! - [`domain`]: channels, templates, users and preferences, notifications. No HTTP or SQL.
//! - [`store`]: the `NotificationStore` trait, with `postgres` and `sqlite` modules side by side.
//! - [`providers`]: delivery per channel; so far the webhook sender (HMAC-signed, SSRF-guarded).
//! - [`service`]: the use cases, as `Notifier`.
//! - [`http`]: the routes and the OpenAPI document.
//! - [`error`]: `NotifierError` and the answer to each variant.
//! - [`settings`]: environment variables and their defaults.
//! - [`app`]: connects the database and serves.

pub mod app;
pub mod domain;
pub mod error;
pub mod http;
pub mod providers;
pub mod service;
pub mod settings;
pub mod store;

pub use self::{app::Application, settings::Settings};
