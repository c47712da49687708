//! Cache-aside for the redirect path, with negative caching.
//!
//! A redirect first asks the cache for the code. On a miss it reads the database and stores what
//! it found: the link, or the fact that there is none (a short-lived "absent" marker). The
//! negative entries are what keep a flood of random codes (a scanner, a typo storm) from reaching
//! the database more than once per code per minute.
//!
//! Entries hold only what the redirect needs (URL, expiry, limit), never the counters, which
//! change on every visit. A link's entry lives for the configured TTL, and never past the link's
//! expiry; delete, expiry and exhaustion remove it explicitly. Creating a link removes any
//! "absent" marker left for its code by an earlier miss.
//!
//! Cache errors never fail a redirect: they count as a miss and are logged and counted in
//! `shortener_cache_lookups_total{result="error"}`.

use std::{sync::Arc, time::Duration};

use platform::cache::Cache;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::{Link, ShortCode};

/// What the cache keeps for a code that has a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLink {
    pub url: String,
    #[serde(with = "time::serde::timestamp::milliseconds::option")]
    pub expires_at: Option<OffsetDateTime>,
    pub max_visits: Option<u32>,
}

impl From<&Link> for CachedLink {
    fn from(link: &Link) -> Self {
        Self {
            url: link.url.clone(),
            expires_at: link.expires_at,
            max_visits: link.max_visits,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum Entry {
    Link(CachedLink),
    Absent,
}

/// The outcome of a cache lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Link(CachedLink),
    /// A recent database read found no link with this code.
    Absent,
    Miss,
}

pub struct LinkCache {
    cache: Arc<dyn Cache>,
    ttl: Duration,
    negative_ttl: Duration,
}

impl LinkCache {
    pub fn new(cache: Arc<dyn Cache>, ttl: Duration, negative_ttl: Duration) -> Self {
        Self {
            cache,
            ttl,
            negative_ttl,
        }
    }

    pub async fn lookup(&self, code: &ShortCode) -> Lookup {
        let (lookup, result) = match self.cache.get(&key(code)).await {
            Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
                Ok(Entry::Link(link)) => (Lookup::Link(link), "hit"),
                Ok(Entry::Absent) => (Lookup::Absent, "negative_hit"),
                Err(err) => {
                    tracing::warn!(%err, %code, "unreadable cache entry; treating it as a miss");
                    (Lookup::Miss, "error")
                }
            },
            Ok(None) => (Lookup::Miss, "miss"),
            Err(err) => {
                tracing::warn!(%err, %code, "cache lookup failed; reading the database");
                (Lookup::Miss, "error")
            }
        };
        metrics::counter!("shortener_cache_lookups_total", "result" => result).increment(1);
        lookup
    }

    /// Caches a link for the TTL, cut short at its expiry.
    pub async fn put(&self, link: &Link, now: OffsetDateTime) {
        let ttl = match link.expires_at {
            Some(at) => match Duration::try_from(at - now) {
                Ok(left) if !left.is_zero() => left.min(self.ttl),
                _ => return,
            },
            None => self.ttl,
        };
        self.write(&link.code, &Entry::Link(CachedLink::from(link)), ttl)
            .await;
    }

    /// Remembers, briefly, that no link has this code.
    pub async fn put_absent(&self, code: &ShortCode) {
        self.write(code, &Entry::Absent, self.negative_ttl).await;
    }

    pub async fn invalidate(&self, code: &ShortCode) {
        if let Err(err) = self.cache.delete(&key(code)).await {
            // The entry lives until its TTL at most; the design doc lists this failure mode.
            tracing::warn!(%err, %code, "cache invalidation failed");
            metrics::counter!("shortener_cache_invalidation_errors_total").increment(1);
        }
    }

    async fn write(&self, code: &ShortCode, entry: &Entry, ttl: Duration) {
        let bytes = serde_json::to_vec(entry).expect("cache entries serialize");
        if let Err(err) = self.cache.set(&key(code), &bytes, ttl).await {
            tracing::warn!(%err, %code, "cache write failed");
        }
    }
}

fn key(code: &ShortCode) -> String {
    format!("link:{code}")
}
