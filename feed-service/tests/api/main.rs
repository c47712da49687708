//! The feed service's behaviour through its HTTP API, on embedded SQLite, in-process caches and
//! the embedded topics by default, and on PostgreSQL, Redis and Kafka when `DATABASE_URL`,
//! `REDIS_URL` and `KAFKA_BROKERS` are set (CI runs both). One test binary, so the suite links
//! once.

mod helpers;

mod faults;
mod feed;
mod follows;
mod instances;
mod posts;
mod seed;
mod strategies;
mod users;
