//! Hydration: from a page of post ids to the posts, through a post cache
//! ([`platform::cache::Cache`]: Redis, or in-process), with one batched database lookup for
//! whatever the cache missed.
//!
//! A page of 20 ids is one cache read, `Cache::get_many` (Redis `MGET`): one command and one
//! round trip, where 20 `GET`s, even multiplexed onto one connection, would be 20 commands for
//! Redis to parse and answer and 20 futures for the service to drive. The misses are one
//! `WHERE id IN (…)` query, never one query per post, and are written back with `add`, which does
//! not overwrite: a delete writes a tombstone under the post's key, and a read that began before
//! the delete must not put the live post back over it. Posts the database no longer has alive,
//! and tombstones, are dropped from the page: a timeline may still name a post whose removal the
//! fan-out workers have not reached, and the reader never sees it.
//!
//! A cache that fails is not fatal: its misses go to the database (cache-aside), and the failure
//! is logged.

use std::{collections::HashMap, sync::Arc, time::Duration};

use platform::cache::Cache;
use serde::{Deserialize, Serialize};

use crate::{
    domain::{Handle, Post, PostId, UserId},
    store::{FeedStore, StoreError},
};

/// What the post cache holds under `post:<id>`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum Entry {
    Live {
        author: u64,
        handle: String,
        text: String,
        created_at_ms: i64,
    },
    Deleted,
}

impl Entry {
    fn of(post: &Post) -> Self {
        Self::Live {
            author: post.author.get(),
            handle: post.author_handle.as_str().to_owned(),
            text: post.text.clone(),
            created_at_ms: platform::db::unix_millis(post.created_at),
        }
    }

    /// The post, `None` for a tombstone; `Err` for an entry that does not read back.
    fn into_post(self, id: PostId) -> Result<Option<Post>, ()> {
        match self {
            Self::Deleted => Ok(None),
            Self::Live {
                author,
                handle,
                text,
                created_at_ms,
            } => Ok(Some(Post {
                id,
                author: UserId::new(author).ok_or(())?,
                author_handle: Handle::parse(&handle).map_err(|_| ())?,
                text,
                created_at: platform::db::from_unix_millis(created_at_ms),
            })),
        }
    }
}

pub struct PostCache {
    cache: Arc<dyn Cache>,
    store: Arc<dyn FeedStore>,
    ttl: Duration,
}

impl PostCache {
    pub fn new(cache: Arc<dyn Cache>, store: Arc<dyn FeedStore>, ttl: Duration) -> Self {
        Self { cache, store, ttl }
    }

    /// The live posts among `ids`, in the order of `ids`.
    pub async fn hydrate(&self, ids: &[PostId]) -> Result<Vec<Post>, StoreError> {
        let cached = self.cached(ids).await;
        let mut found: HashMap<PostId, Option<Post>> = HashMap::with_capacity(ids.len());
        let mut missed = Vec::new();
        for (id, entry) in ids.iter().zip(cached) {
            match entry {
                Some(post) => {
                    found.insert(*id, post);
                }
                None => missed.push(*id),
            }
        }
        metrics::counter!("feed_post_cache_total", "result" => "hit").increment(found.len() as u64);
        metrics::counter!("feed_post_cache_total", "result" => "miss")
            .increment(missed.len() as u64);
        if !missed.is_empty() {
            let posts = self.store.posts(&missed).await?;
            futures::future::join_all(posts.iter().map(|post| self.fill(post))).await;
            found.extend(posts.into_iter().map(|post| (post.id, Some(post))));
        }
        Ok(ids
            .iter()
            .filter_map(|id| found.get(id).cloned().flatten())
            .collect())
    }

    /// Replaces the post's entry with a tombstone, so that no read fills it again with the live
    /// post it may have read before the delete.
    pub async fn forget(&self, id: PostId) -> Result<(), StoreError> {
        let tombstone = serde_json::to_vec(&Entry::Deleted).expect("an entry serialises");
        self.cache.set(&key(id), &tombstone, self.ttl).await?;
        Ok(())
    }

    /// The cached entry of each id, in order: `Some(None)` for a tombstone, `None` for a miss.
    /// All of them in one `MGET`; a cache that fails is a miss for every id.
    async fn cached(&self, ids: &[PostId]) -> Vec<Option<Option<Post>>> {
        let keys: Vec<String> = ids.iter().map(|id| key(*id)).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let values = match self.cache.get_many(&keys).await {
            Ok(values) => values,
            Err(err) => {
                tracing::warn!(error = %platform::problem::error_chain(&err), "post cache read failed; reading the database");
                return vec![None; ids.len()];
            }
        };
        ids.iter()
            .zip(values)
            .map(|(id, bytes)| {
                serde_json::from_slice::<Entry>(&bytes?)
                    .ok()
                    .and_then(|entry| entry.into_post(*id).ok())
            })
            .collect()
    }

    async fn fill(&self, post: &Post) {
        let entry = serde_json::to_vec(&Entry::of(post)).expect("an entry serialises");
        if let Err(err) = self.cache.add(&key(post.id), &entry, self.ttl).await {
            tracing::warn!(error = %platform::problem::error_chain(&err), "post cache write failed");
        }
    }
}

fn key(id: PostId) -> String {
    format!("post:{id}")
}
