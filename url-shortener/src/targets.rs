//! Target URLs as the service accepts them: the domain's checks on the text
//! ([`TargetUrl::parse`]), then, when the host is a name that could lead back to the shortener,
//! a DNS lookup of that name ([`TargetUrl::check_addresses`]).
//!
//! The lookup is made once, when the link is created, and it is a check against mistakes and
//! casual loops (`http://loop.example:8081/`, a name whose A record is 127.0.0.1), not a
//! guarantee: whoever controls a name's DNS can change its answer after the link exists, and the
//! browser, not the shortener, resolves it on each visit. What such a loop costs is bounded all the
//! same: browsers stop after about 20 redirects, each one a cached answer. DESIGN.md ("Security")
//! has the trade-off.

use std::{net::IpAddr, sync::Arc, time::Duration};

use async_trait::async_trait;

use crate::domain::{ServedAt, TargetUrl, TargetUrlError};

/// How long a lookup may take before the link is judged without it. The lookup is on the path of
/// `POST /api/v1/links`, so it is bounded well under a client's patience.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Resolves host names: the system resolver in production, a table in tests (which then need no
/// network, and can make a name resolve to loopback).
#[async_trait]
pub trait Resolver: Send + Sync {
    /// The addresses `host` has now; none if it has none, or if the lookup failed.
    async fn lookup(&self, host: &str) -> Vec<IpAddr>;
}

/// The operating system's resolver (`getaddrinfo`: `/etc/hosts`, then DNS), with a timeout.
pub struct SystemResolver;

#[async_trait]
impl Resolver for SystemResolver {
    async fn lookup(&self, host: &str) -> Vec<IpAddr> {
        match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, 0))).await {
            Ok(Ok(addrs)) => addrs.map(|addr| addr.ip()).collect(),
            // A name that does not resolve now does not lead here now. Refusing it instead would
            // make creating links depend on the health of every target's DNS.
            Ok(Err(err)) => {
                tracing::debug!(host, error = %err, "the target's host does not resolve");
                Vec::new()
            }
            Err(_) => {
                tracing::warn!(host, "looking up the target's host timed out");
                Vec::new()
            }
        }
    }
}

/// Where the shortener answers, and how to find where a name leads.
pub struct Targets {
    served_at: ServedAt,
    resolver: Arc<dyn Resolver>,
}

impl Targets {
    pub fn new(served_at: ServedAt, resolver: Arc<dyn Resolver>) -> Self {
        Self {
            served_at,
            resolver,
        }
    }

    /// `input` as a target URL, or why it is refused.
    pub async fn parse(&self, input: &str) -> Result<TargetUrl, TargetUrlError> {
        let url = TargetUrl::parse(input, &self.served_at)?;
        if let Some(name) = url.name_to_look_up(&self.served_at) {
            let addresses = self.resolver.lookup(name).await;
            url.check_addresses(&addresses, &self.served_at)?;
        }
        Ok(url)
    }
}
