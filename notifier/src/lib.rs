//! A notification system (email, SMS, push, webhooks) built the way Alex Xu's chapter and Uber's
//! reliable-reprocessing design describe it. `DESIGN.md` beside this crate is the walkthrough.
//!
//! Intake stores each notification (with its idempotency key and its outbox message) before
//! answering 202; a pipeline of topics keyed by user carries it to a router (preferences,
//! throttle), to one topic and worker pool per channel, through retry topics with growing delays,
//! and to dead letters that can be redriven. It also turns the payments service's events into
//! receipts. `pipeline/mod.rs` has the diagram.
//!
//! # Layout
//! - [`domain`]: channels, templates, users and preferences, notifications. No HTTP or SQL.
//! - [`store`]: the `NotificationStore` trait, with `postgres` and `sqlite` modules side by side,
//!   and `faulty`, the store behind the `database` fault switch.
//! - [`providers`]: delivery per channel: SMTP email, SMS and push through an HTTP provider,
//!   signed and SSRF-guarded webhooks; and the local stand-ins (a provider simulator, a mailbox).
//! - [`messages`]: the topics' names, the messages on them, and what becomes of one that does
//!   not parse.
//! - [`pipeline`]: the outbox relay, the router, and the channel and retry workers.
//! - [`events`]: consumers of other systems' events (the payments service's, for receipts): an
//!   inbound adapter, like `http`.
//! - [`service`]: the use cases, as `Notifier`.
//! - [`http`]: the routes and the OpenAPI document.
//! - [`error`]: `NotifierError` and the answer to each variant.
//! - [`settings`]: environment variables and their defaults.
//! - [`app`]: connects the database and the topics, starts the local providers, serves.

/// The name the notifier goes by: its PostgreSQL schema, SQLite file, metrics.
pub const SYSTEM: &str = "notifier";

pub mod app;
pub mod domain;
pub mod error;
pub mod events;
pub mod http;
pub mod messages;
pub mod pipeline;
pub mod providers;
pub mod service;
pub mod settings;
pub mod store;

pub use self::{app::Application, settings::Settings};
