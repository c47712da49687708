//! A news feed, Twitter's and Instagram's home timeline: users follow each other, post short
//! texts, and read a feed of their own posts and those of everyone they follow, newest first, a
//! page at a time. `DESIGN.md` beside this crate is the walkthrough.
//!
//! The database (users, follows, posts) is the source of truth. A home feed is built by a
//! strategy behind one seam ([`timeline::Timelines`]), chosen by `FEED_STRATEGY`: fan-out on read
//! (pull), a keyset query merging the authors' newest posts on every read; fan-out on write
//! (push), timelines of post ids cached in Redis sorted sets and kept up to date by workers that
//! consume post events; and the hybrid, push except for celebrities, whose posts are merged in
//! on read. The same workload can be measured under each. Ids are 53-bit snowflakes ([`ids`]):
//! time-ordered, so a post id is a position in every feed and a cursor is just one.
//!
//! # Layout
//! - [`domain`]: ids, handles, post text, posts, profiles, cursors and page limits. No HTTP or
//!   SQL.
//! - [`ids`]: the snowflake generator: 41 bits of milliseconds, 8 of sequence, 4 of instance.
//! - [`store`]: the `FeedStore` trait, with `postgres` and `sqlite` modules side by side, and
//!   `faulty`, the `database` fault switch in front of either.
//! - [`timeline`]: the `Timelines` seam and its strategies: `pull`, and `cached` (push and
//!   hybrid) over the timelines cache (`timeline::cache`, Redis or in-process) and the post cache
//!   (`timeline::hydrate`).
//! - [`fanout`]: post events, and the workers that fan them out into timelines.
//! - [`service`]: the use cases and who may do each, as `Feed`.
//! - [`http`]: the routes, the JSON of their requests and answers, the token extractor and the
//!   OpenAPI document.
//! - [`error`]: `FeedError` and the answer to each variant.
//! - [`settings`]: environment variables and their defaults.
//! - [`app`]: connects the backends, picks the store and the strategy, puts each dependency behind
//!   its fault switch (`/admin/faults`: `database`, `redis`, `fanout-worker`), serves and runs
//!   the fan-out.
//!
//! The seed tool, which writes a power-law graph for benchmarks, is a binary with its own modules
//! (`src/bin/feed-seed/`), not part of this library.

/// The name the feed service goes by: its SQLite file, metrics.
pub const SYSTEM: &str = "feed-service";

pub mod app;
pub mod domain;
pub mod error;
pub mod fanout;
pub mod http;
pub mod ids;
pub mod service;
pub mod settings;
pub mod store;
pub mod timeline;

pub use self::{app::Application, settings::Settings};
