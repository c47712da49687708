//! A fault-injecting TCP proxy, driven through Toxiproxy's HTTP API: put it between a system
//! and its PostgreSQL, Redis or broker, and break the real engine the way a network does. The
//! systems' own fault switches (`platform::fault`) fail calls at the trait; through a proxy the
//! client library meets the failure itself: a query that waits out its timeout, a pool that
//! cannot get a connection, a client that reconnects once the engine is back.
//!
//! ```text
//! curl -s -X POST localhost:8474/proxies -H "authorization: Bearer $SDLAB_ADMIN_TOKEN" \
//!      -H 'content-type: application/json' \
//!      -d '{"name": "rate-limiter-redis", "listen": "127.0.0.1:26379", "upstream": "127.0.0.1:6379"}'
//! # every answer from Redis half a second late
//! curl -s localhost:8474/proxies/rate-limiter-redis/toxics -H "authorization: Bearer $SDLAB_ADMIN_TOKEN" \
//!      -H 'content-type: application/json' -d '{"type": "latency", "attributes": {"latency": 500}}'
//! # Redis gone: the listener and every connection closed
//! curl -s localhost:8474/proxies/rate-limiter-redis -H "authorization: Bearer $SDLAB_ADMIN_TOKEN" \
//!      -H 'content-type: application/json' -d '{"enabled": false}'
//! ```
//!
//! The API is Toxiproxy's, paths, bodies and statuses ([`api`] lists them), so a client written
//! for one drives the other: the lab runs this one in its own process, and
//! `docker-compose.yml` runs Toxiproxy itself. Toxics are `latency`, `timeout` and `reset_peer`
//! ([`toxic`] says what each does).
//!
//! # Why not noxious
//! noxious 1.0.4, a Rust port of Toxiproxy, builds on this toolchain and has the toxics, but:
//! - its latency toxic sleeps before each chunk in turn, so chunks in flight add up: five bytes
//!   written 20 ms apart through 200 ms of latency arrive 200, 400, 600 and 800 ms later, where
//!   Toxiproxy delivers the last at about 280 ms. Through a multiplexed Redis connection (one
//!   connection, many commands in flight), "200 ms slower" would become "seconds slower";
//! - it has no `reset_peer`, serializes a toxic's stream as `direction`, and leaves enabling,
//!   disabling and naming proxies to its server crate, so the API layer would have had to
//!   rebuild most of what a proxy is anyway;
//! - it brings its own generation of the ecosystem: syn 1, thiserror 1, rand 0.8,
//!   tokio-util 0.6, on a two-core CI that builds everything.
//!
//! What is here instead is a proxy on tokio: per connection, each direction a reader and a
//! writer with a queue of stamped chunks between them ([`link`] says why), and a listener per
//! proxy that is closed, with its connections, when the proxy is disabled.
//!
//! # Layout
//! - [`api`]: the HTTP API, with the admin token and problem+json errors.
//! - [`proxy`]: the proxies by name, each a listener that can be disabled and enabled again.
//! - `link`: one connection through a proxy, each direction through its stream's toxics.
//! - [`toxic`]: the toxics, in Toxiproxy's JSON, and what each does.
//! - [`error`]: what a call fails with, and its status.

pub mod api;
pub mod error;
mod link;
pub mod proxy;
pub mod toxic;

use std::{future::Future, io, net::SocketAddr};

use platform::auth::AdminToken;
use tokio::net::TcpListener;

pub use self::{
    error::Error,
    proxy::{NewProxy, Proxies, ProxyUpdate, ProxyView},
};

/// Toxiproxy's port, which its clients try by default.
pub const DEFAULT_PORT: u16 = 8474;

/// The API, bound to its address, and the proxies it drives.
pub struct Server {
    listener: TcpListener,
    proxies: Proxies,
    admin: Option<AdminToken>,
}

impl Server {
    /// Binds the API on `addr`, which must be a loopback address: whoever reaches the API can
    /// take the engines down. `admin` opens it (without a token, every call is a 403).
    pub async fn bind(addr: SocketAddr, admin: Option<AdminToken>) -> io::Result<Self> {
        if !addr.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the proxy API listens on the loopback only, not on {addr}"),
            ));
        }
        Ok(Self {
            listener: TcpListener::bind(addr).await?,
            proxies: Proxies::new(),
            admin,
        })
    }

    pub fn addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The proxies, to create the first ones before the API serves.
    pub fn proxies(&self) -> &Proxies {
        &self.proxies
    }

    /// Serves the API until `shutdown` completes, then closes every proxy (listeners and
    /// connections): stop it after whatever connects through the proxies has stopped.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let app = api::router(self.proxies.clone(), self.admin);
        let served = platform::http::serve(self.listener, app, shutdown).await;
        self.proxies.stop_all().await;
        served
    }
}
