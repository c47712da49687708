//! Fan-out on read: a home timeline is a query, run on every read.
//!
//! Nothing is stored per reader, so there is nothing to keep up to date: a post, a delete, a
//! follow or an unfollow shows in the next read of every feed it touches, with no worker, lag or
//! backfill. The price is paid on reads, which are fifty times more frequent than posts
//! (DESIGN.md §1): each read merges one index range per author the reader follows. At Twitter's
//! 300,000 reads a second that merge is what timelines were precomputed to avoid; the hybrid
//! strategy keeps it only for authors with so many followers that precomputing costs more.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Strategy, Timelines};
use crate::{
    domain::{Post, PostId, UserId},
    store::{FeedStore, StoreError},
};

pub struct Pull {
    store: Arc<dyn FeedStore>,
}

impl Pull {
    pub fn new(store: Arc<dyn FeedStore>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl Timelines for Pull {
    fn strategy(&self) -> Strategy {
        Strategy::Pull
    }

    async fn page(
        &self,
        reader: UserId,
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Vec<Post>, StoreError> {
        self.store.home_page(reader, below, limit).await
    }
}
