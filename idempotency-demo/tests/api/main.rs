//! The payments API's behaviour, on the embedded database or on PostgreSQL when `DATABASE_URL` is
//! set, against the provider simulator over real HTTP.

mod helpers;

mod concurrency;
mod faults;
mod idempotency;
mod outbox;
mod payments;
mod recovery;
