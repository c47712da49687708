//! The notifier's API, on the embedded database or on PostgreSQL when `DATABASE_URL` is set.

mod helpers;

mod auth;
mod crashes;
mod delivery;
mod faults;
mod intake;
mod races;
mod receipts;
mod retries;
mod users;
