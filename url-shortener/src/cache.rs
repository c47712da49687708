//! Cache-aside for the redirect path, with negative caching.
//!
//! A redirect first asks the cache for the code. On a miss it reads the database and *fills* the
//! cache with what it found: the link, or the fact that there is none (a short-lived "absent"
//! marker). The negative entries are what keep a flood of random codes (a scanner, a typo storm)
//! from reaching the database more than once per code per minute.
//!
//! Entries hold only what the redirect needs (URL, expiry, limit), never the counters, which
//! change on every visit. A link's entry lives for the configured TTL, and never past the link's
//! expiry.
//!
//! Writers and readers must not undo each other. A fill is an *add* (stored only if the key is
//! empty, Redis `SET NX`), while writers overwrite:
//! - create writes the new link through ([`LinkCache::store`]), replacing any "absent" marker an
//!   earlier miss left;
//! - delete, expiry and exhaustion write a "gone" marker ([`LinkCache::mark_gone`]); codes are
//!   never reused, so it stays true.
//!
//! So a redirect that read the database just before a delete cannot put the deleted link back
//! (its fill finds the marker and stores nothing), and one that read "no such code" just before a
//! create cannot hide the new link.
//!
//! Cache errors never fail a redirect: they count as a miss and are logged and counted in
//! `shortener_cache_lookups_total{result="error"}`.

use std::{sync::Arc, time::Duration};

use metrics::Counter;
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
    lookups: LookupCounters,
}

/// `shortener_cache_lookups_total` by result, as handles taken once: the lookup is on every
/// redirect, and the `counter!` macro would hash its labels into the registry each time.
struct LookupCounters {
    hit: Counter,
    negative_hit: Counter,
    miss: Counter,
    error: Counter,
}

impl LookupCounters {
    fn new() -> Self {
        platform::metrics::install();
        let counter = |result: &'static str| metrics::counter!("shortener_cache_lookups_total", "result" => result);
        Self {
            hit: counter("hit"),
            negative_hit: counter("negative_hit"),
            miss: counter("miss"),
            error: counter("error"),
        }
    }
}

impl LinkCache {
    pub fn new(cache: Arc<dyn Cache>, ttl: Duration, negative_ttl: Duration) -> Self {
        Self {
            cache,
            ttl,
            negative_ttl,
            lookups: LookupCounters::new(),
        }
    }

    pub async fn lookup(&self, code: &ShortCode) -> Lookup {
        let (lookup, counter) = match self.cache.get(&key(code)).await {
            Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
                Ok(Entry::Link(link)) => (Lookup::Link(link), &self.lookups.hit),
                Ok(Entry::Absent) => (Lookup::Absent, &self.lookups.negative_hit),
                Err(err) => {
                    tracing::warn!(%err, %code, "unreadable cache entry; treating it as a miss");
                    (Lookup::Miss, &self.lookups.error)
                }
            },
            Ok(None) => (Lookup::Miss, &self.lookups.miss),
            Err(err) => {
                tracing::warn!(%err, %code, "cache lookup failed; reading the database");
                (Lookup::Miss, &self.lookups.error)
            }
        };
        counter.increment(1);
        lookup
    }

    /// After a miss: caches the link read from the database, unless a writer got there first.
    pub async fn fill(&self, link: &Link, now: OffsetDateTime) {
        if let Some(ttl) = self.ttl_for(link, now) {
            self.write(
                &link.code,
                &Entry::Link(CachedLink::from(link)),
                ttl,
                Write::IfEmpty,
            )
            .await;
        }
    }

    /// After a miss that found nothing: remembers it briefly, unless a writer got there first.
    pub async fn fill_absent(&self, code: &ShortCode) {
        self.write(code, &Entry::Absent, self.negative_ttl, Write::IfEmpty)
            .await;
    }

    /// A new link: written through, replacing whatever a miss left for its code.
    pub async fn store(&self, link: &Link, now: OffsetDateTime) {
        if let Some(ttl) = self.ttl_for(link, now) {
            self.write(
                &link.code,
                &Entry::Link(CachedLink::from(link)),
                ttl,
                Write::Always,
            )
            .await;
        }
    }

    /// A link that stopped redirecting for good (deleted, expired, used up).
    pub async fn mark_gone(&self, code: &ShortCode) {
        self.write(code, &Entry::Absent, self.ttl, Write::Always)
            .await;
    }

    /// The TTL, cut short at the link's expiry; `None` if it has expired.
    fn ttl_for(&self, link: &Link, now: OffsetDateTime) -> Option<Duration> {
        match link.expires_at {
            Some(at) => match Duration::try_from(at - now) {
                Ok(left) if !left.is_zero() => Some(left.min(self.ttl)),
                _ => None,
            },
            None => Some(self.ttl),
        }
    }

    async fn write(&self, code: &ShortCode, entry: &Entry, ttl: Duration, mode: Write) {
        let bytes = serde_json::to_vec(entry).expect("cache entries serialize");
        let key = key(code);
        let written = match mode {
            Write::Always => self.cache.set(&key, &bytes, ttl).await,
            Write::IfEmpty => self.cache.add(&key, &bytes, ttl).await.map(drop),
        };
        if let Err(err) = written {
            // A writer that fails leaves the old entry until its TTL: section 7 of DESIGN.md.
            tracing::warn!(%err, %code, "cache write failed");
            metrics::counter!("shortener_cache_write_errors_total").increment(1);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Write {
    Always,
    IfEmpty,
}

fn key(code: &ShortCode) -> String {
    format!("link:{code}")
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use platform::cache::MemoryCache;
    use time::macros::datetime;

    use super::*;
    use crate::domain::OwnerId;

    const NOW: OffsetDateTime = datetime!(2026-11-21 12:00 UTC);

    fn link_cache() -> LinkCache {
        let cache = Arc::new(MemoryCache::new(NonZeroUsize::new(100).unwrap()));
        LinkCache::new(cache, Duration::from_secs(600), Duration::from_secs(60))
    }

    fn link(code: &str) -> Link {
        Link {
            code: ShortCode::parse(code).unwrap(),
            url: "https://example.com/".into(),
            owner: OwnerId(1),
            created_at: NOW,
            expires_at: None,
            max_visits: None,
            visits: 0,
            bot_visits: 0,
        }
    }

    #[tokio::test]
    async fn a_fill_from_a_read_that_began_before_a_delete_does_not_bring_the_link_back() {
        let cache = link_cache();
        let read_before_the_delete = link("abc1234");

        cache.mark_gone(&read_before_the_delete.code).await;
        cache.fill(&read_before_the_delete, NOW).await;

        assert_eq!(
            cache.lookup(&read_before_the_delete.code).await,
            Lookup::Absent
        );
    }

    #[tokio::test]
    async fn a_miss_recorded_just_before_a_create_does_not_hide_the_new_link() {
        let cache = link_cache();
        let created = link("abc1234");

        cache.store(&created, NOW).await;
        cache.fill_absent(&created.code).await;

        assert!(matches!(cache.lookup(&created.code).await, Lookup::Link(_)));
    }

    #[tokio::test]
    async fn a_create_replaces_an_earlier_absent_marker() {
        let cache = link_cache();
        let created = link("abc1234");

        cache.fill_absent(&created.code).await;
        cache.store(&created, NOW).await;

        assert!(matches!(cache.lookup(&created.code).await, Lookup::Link(_)));
    }

    #[tokio::test]
    async fn an_expired_link_is_not_cached() {
        let cache = link_cache();
        let mut expired = link("abc1234");
        expired.expires_at = Some(NOW);

        cache.fill(&expired, NOW).await;

        assert_eq!(cache.lookup(&expired.code).await, Lookup::Miss);
    }
}
