//! Idempotent payments: a small payments API that never charges twice, whatever the client, the
//! network or the server does. It is the reference for idempotency keys (Stripe's design and the
//! IETF draft), atomic phases with recovery points (brandur's rocket-rides-atomic), an idempotent
//! payment provider, and the transactional outbox. `DESIGN.md` beside this crate is the
//! walkthrough.
//!
//! A `POST /v1/payments` goes: [`http::payments`] (the client from its API key, the
//! `Idempotency-Key`, the body) → [`service::Payments::create`] → [`store::PaymentStore::begin`]
//! (insert or find the key, one transaction) → replay, refuse, or drive the key through its
//! phases: record the payment, call the provider ([`provider::ProviderClient`]), record its
//! answer, then store the response and the outbox event together. `platform::outbox::Relay`
//! publishes the events to `payments.events`.
//!
//! # Layout
//! - [`domain`]: keys, payment requests, fingerprints, recovery points. No HTTP or SQL.
//! - [`store`]: the `PaymentStore` trait, with `postgres` and `sqlite` modules side by side, and
//!   `faulty`, the store behind the `database` fault switch.
//! - [`provider`]: the simulated card processor (its own HTTP server, test cards, fault switches)
//!   and the client that calls it.
//! - [`service`]: the protocol, the completer and the reaper, as `Payments`.
//! - [`http`]: the routes, the request body and the OpenAPI document (with the schema of the
//!   domain's `PaymentStatus`).
//! - [`error`]: `PaymentError` and the answer to each variant.
//! - [`settings`]: environment variables and their defaults.
//! - [`app`]: connects the database, starts or reaches the provider, and serves.

/// The name the service goes by: its PostgreSQL schema, SQLite file, metrics.
pub const SYSTEM: &str = "idempotency-demo";

pub mod app;
pub mod domain;
pub mod error;
pub mod http;
pub mod provider;
pub mod service;
pub mod settings;
pub mod store;

pub use self::{app::Application, settings::Settings};
