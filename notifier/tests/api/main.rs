//! The notifier's API, on the embedded database or on PostgreSQL when `DATABASE_URL` is set.

mod helpers;

mod intake;
mod users;
