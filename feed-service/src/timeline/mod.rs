//! Home timelines: how a reader's feed is built. The seam where the strategies stand side by
//! side, chosen in one place ([`for_strategy`]) by `FEED_STRATEGY`.
//!
//! - [`pull`], fan-out on read: nothing is done when someone posts; a read merges the newest
//!   posts of the reader and of everyone they follow, from the database. Cheap writes, and a read
//!   that costs more the more authors the reader follows.
//! - push, fan-out on write ([`cached`], with the workers in `src/fanout.rs`): a post is
//!   published to a topic through the outbox, and workers insert its id into each active
//!   follower's timeline, a sorted set capped at 800 ids and scored by post id ([`cache`]). A
//!   read is one range of one sorted set, hydrated through a post cache ([`hydrate`]); a post
//!   costs one write per follower.
//! - hybrid ([`cached`] too): push, except for authors above a follower threshold, whose posts
//!   are merged in at read time as pull does, so a celebrity's post costs no fan-out.
//!
//! Every strategy answers the same question in the same terms: the reader's posts strictly below
//! a post id, newest first. So a cursor is a post id whatever built the page, and the strategies
//! can be checked against each other for the same graph and posts.

pub mod cache;
pub mod cached;
pub mod celebrities;
pub mod hydrate;
mod pull;

use std::{fmt, str::FromStr, sync::Arc, time::Duration};

use async_trait::async_trait;
use platform::clock::Clock;
use time::OffsetDateTime;

use self::{cache::TimelineCache, celebrities::Celebrities, hydrate::PostCache};
pub use self::{cached::Cached, pull::Pull};
use crate::{
    domain::{Post, PostId, UserId},
    store::{FeedStore, StoreError},
};

/// How home timelines are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Fan-out on read.
    Pull,
    /// Fan-out on write.
    Push,
    /// Fan-out on write, except for celebrities, whose posts are merged in on read.
    Hybrid,
}

impl Strategy {
    pub const ALL: [Self; 3] = [Self::Pull, Self::Push, Self::Hybrid];
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "pull" => Ok(Self::Pull),
            "push" => Ok(Self::Push),
            "hybrid" => Ok(Self::Hybrid),
            _ => Err("expected pull, push or hybrid".to_owned()),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pull => "pull (fan-out on read)",
            Self::Push => "push (fan-out on write)",
            Self::Hybrid => "hybrid (fan-out on write, celebrities on read)",
        })
    }
}

/// What push and hybrid are tuned by (`settings.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineSettings {
    /// Post ids per timeline (`FEED_TIMELINE_CAP`).
    pub cap: usize,
    /// Authors with more followers than this are not fanned out, in hybrid
    /// (`FEED_CELEBRITY_THRESHOLD`).
    pub celebrity_threshold: u64,
    /// Readers who have not read their feed for this long are skipped by fan-out
    /// (`FEED_ACTIVE_WINDOW`).
    pub active_window: Duration,
}

impl TimelineSettings {
    /// Whether an author with `followers` is fanned out under `strategy`.
    pub fn fans_out_to(&self, strategy: Strategy, followers: u64) -> bool {
        match strategy {
            Strategy::Pull => false,
            Strategy::Push => true,
            Strategy::Hybrid => followers <= self.celebrity_threshold,
        }
    }

    /// Last reads before this are inactive.
    pub fn active_since(&self, now: OffsetDateTime) -> OffsetDateTime {
        now - self.active_window
    }
}

#[async_trait]
pub trait Timelines: Send + Sync + 'static {
    fn strategy(&self) -> Strategy;

    /// Up to `limit` posts of `reader`'s home timeline (their own posts and those of everyone
    /// they follow, none deleted), strictly below `below` (from the newest if `None`), newest
    /// first.
    async fn page(
        &self,
        reader: UserId,
        below: Option<PostId>,
        limit: u32,
    ) -> Result<Vec<Post>, StoreError>;

    /// Whether posts and deletes must be announced to fan-out workers (an outbox event each).
    fn fans_out(&self) -> bool {
        false
    }

    /// Under hybrid, the follower count above which an author is a celebrity: an unfollow that
    /// takes an author down to it is announced to the fan-out workers too.
    fn celebrity_threshold(&self) -> Option<u64> {
        None
    }

    /// `reader` now follows `author`, who has `followers` since if the follow is new (`None`
    /// for a repeat): a timeline backfills the author's recent posts. Called after the follow
    /// commits, and by every repeat of it, so that a repeat finishes what a failed call left.
    async fn followed(
        &self,
        _reader: UserId,
        _author: UserId,
        _followers: Option<u64>,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// `reader` no longer follows `author`, who has `followers` since if they did: a timeline
    /// drops the author's posts.
    async fn unfollowed(
        &self,
        _reader: UserId,
        _author: UserId,
        _followers: Option<u64>,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// `post` committed, by an author with `followers` then. The hybrid puts a celebrity's post
    /// in their recent posts at once (the fan-out worker does it too, so a failure here is only a
    /// delay).
    async fn posted(&self, _post: &Post, _followers: u64) -> Result<(), StoreError> {
        Ok(())
    }

    /// `post` by `author` was deleted: caches forget it at once (the workers take it out of
    /// timelines).
    async fn deleted(&self, _post: PostId, _author: UserId) -> Result<(), StoreError> {
        Ok(())
    }
}

/// What the cached strategies are built from; pull needs only the store.
pub struct Caches {
    pub timelines: Arc<dyn TimelineCache>,
    pub posts: Arc<PostCache>,
    /// The hybrid's celebrities (`None` under push).
    pub celebrities: Option<Arc<Celebrities>>,
    pub clock: Arc<dyn Clock>,
    pub settings: TimelineSettings,
}

/// The one place that chooses the strategy.
pub fn for_strategy(
    strategy: Strategy,
    store: Arc<dyn FeedStore>,
    caches: Caches,
) -> Arc<dyn Timelines> {
    match strategy {
        Strategy::Pull => Arc::new(Pull::new(store)),
        Strategy::Push | Strategy::Hybrid => Arc::new(Cached::new(
            strategy,
            store,
            caches.timelines,
            caches.posts,
            caches.celebrities,
            caches.clock,
            caches.settings,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_strategies_parse_by_name_and_nothing_else_does() {
        assert_eq!("pull".parse::<Strategy>(), Ok(Strategy::Pull));
        assert_eq!("push".parse::<Strategy>(), Ok(Strategy::Push));
        assert_eq!("hybrid".parse::<Strategy>(), Ok(Strategy::Hybrid));
        assert!("fanout".parse::<Strategy>().is_err());
    }
}
