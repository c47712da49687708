//! The feed service's behaviour through its HTTP API, on embedded SQLite by default and on
//! PostgreSQL when `DATABASE_URL` is set (CI runs both). One test binary, so the suite links once.

mod helpers;

mod feed;
mod follows;
mod instances;
mod posts;
mod users;
