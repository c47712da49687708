//! Shared infrastructure for the sdlab systems.
//!
//! Every system in the workspace (the URL shortener, the rate limiter, the notifier, the feed
//! service, the idempotency demo) is its own crate with its own domain. What they share is the
//! plumbing around that domain, and it lives here so that there is one way to do each of these
//! things across the workspace. Nothing in this crate knows what a link, a payment or a post is:
//! a system's domain never moves here.
//!
//! # Layout
//! - [`config`]: typed reading of environment variables, and the backend URLs every system
//!   understands (`DATABASE_URL`, `REDIS_URL`, `KAFKA_BROKERS`).
//! - [`db`]: the relational database, PostgreSQL when configured and an embedded SQLite file
//!   otherwise, with per-system schemas and migrations for both.
//! - [`cache`]: a key/value cache with TTLs behind one trait, Redis when configured and a
//!   bounded in-process LRU otherwise, and a near cache (`TieredCache`) that keeps hot Redis
//!   entries in process for a second.
//! - [`topic`]: partitioned topics with consumer groups, manual commits and pausable
//!   partitions, Kafka (rdkafka, idempotent producer) when configured and otherwise an embedded
//!   transport with the same semantics, kept in a SQLite file so that it survives restarts.
//! - [`group`]: requests that arrive together served by one call (a group commit, a read of
//!   many keys in one statement), each caller answered with its own result.
//! - [`outbox`]: the transactional outbox: events written in a system's own transaction, and the
//!   relay that publishes them to their topics, at least once, without skipping a late commit,
//!   and deletes them a day later.
//! - [`http`]: the middleware stack every service gets (request ids, tracing, metrics, panics,
//!   timeouts) and `serve` with graceful shutdown.
//! - [`problem`] and [`extract`]: RFC 9457 `application/problem+json` errors, and extractors
//!   (a JSON body, a query string, path parameters) whose rejections are problems that name the
//!   offending field or parameter.
//! - [`auth`]: bearer API keys: generation, the request extractor, and `ApiKeys`, which stores
//!   a key's hash, name and creation time in a system's own table, on either engine.
//! - [`fault`]: fault switches for a system's own dependencies (latency, unreachable), set over
//!   HTTP with the admin token, passed through by the code that calls the dependency.
//! - [`health`]: `/healthz` (liveness) and `/readyz` (readiness, probing each backend, each
//!   required or optional).
//! - [`metrics`]: the process-wide Prometheus recorder and the `/metrics` route.
//! - [`telemetry`]: tracing-subscriber setup.
//! - [`shutdown`]: SIGINT/SIGTERM as a future.
//! - [`clock`]: wall-clock time behind a trait, so tests control it.
//! - [`openapi`]: `/openapi.json` and a Swagger UI page embedded in the binary (no network).
//! - `testing` (feature `testing`): fresh, isolated backends and topics per test, real or
//!   embedded following the same environment variables.

pub mod auth;
pub mod cache;
pub mod clock;
pub mod config;
pub mod db;
pub mod extract;
pub mod fault;
pub mod group;
pub mod health;
pub mod http;
pub mod metrics;
pub mod openapi;
pub mod outbox;
pub mod problem;
pub mod shutdown;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod topic;
