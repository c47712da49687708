//! The shortener's behaviour through its HTTP API, on the backends the environment selects:
//! embedded SQLite and the in-process cache by default, PostgreSQL and Redis when `DATABASE_URL`
//! and `REDIS_URL` are set (CI runs both). One test binary, so the suite links once.

mod concurrency;
mod faults;
mod helpers;
mod keys;
mod links;
mod redirects;
mod service;
mod targets;
