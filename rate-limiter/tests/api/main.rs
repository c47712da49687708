//! The rate limiter's behaviour on the store the environment selects: in process by default,
//! Redis when `REDIS_URL` is set (CI runs both). One test binary, so the suite links once.

mod concurrency;
mod exactness;
mod failure;
mod faults;
mod gateway;
mod helpers;
mod http;
mod rules;
