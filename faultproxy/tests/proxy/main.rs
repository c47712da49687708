//! The proxy through its API, as the console drives it: the contract of the API, what each
//! toxic does to real connections, and an engine (Redis when `REDIS_URL` is set) going away and
//! coming back.

mod api;
mod engine;
mod helpers;
mod toxics;
