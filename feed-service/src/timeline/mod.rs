//! Home timelines: how a reader's feed is built. The seam where the strategies stand side by
//! side, chosen in one place ([`for_strategy`]) by `FEED_STRATEGY`.
//!
//! - [`pull`], fan-out on read (built): nothing is done when someone posts; a read merges the
//!   newest posts of the reader and of everyone they follow, from the database. Cheap writes, and
//!   a read that costs more the more authors the reader follows.
//! - push, fan-out on write (planned): a post is published to a topic, and workers insert its id
//!   into each follower's timeline, a Redis sorted set capped at 800 ids and scored by post id
//!   (exact, since ids stop at 2^53). A read is one range of one sorted set, hydrated through a
//!   post cache; a post costs one write per follower.
//! - hybrid (planned): push, except for authors above a follower threshold, whose posts are
//!   merged in at read time as pull does, so a celebrity's post costs no fan-out.
//!
//! Every strategy answers the same question in the same terms: the reader's posts strictly below
//! a post id, newest first. So a cursor is a post id whatever built the page, and the strategies
//! can be checked against each other for the same graph and posts.

mod pull;

use std::{fmt, str::FromStr, sync::Arc};

use async_trait::async_trait;

pub use self::pull::Pull;
use crate::{
    domain::{Post, PostId, UserId},
    store::{FeedStore, StoreError},
};

/// How home timelines are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Fan-out on read.
    Pull,
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "pull" => Ok(Self::Pull),
            "push" | "hybrid" => Err(format!(
                "{text} is planned but not built yet; pull is the one strategy so far"
            )),
            _ => Err("expected pull".to_owned()),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pull => "pull (fan-out on read)",
        })
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
}

/// The one place that chooses the strategy.
pub fn for_strategy(strategy: Strategy, store: Arc<dyn FeedStore>) -> Arc<dyn Timelines> {
    match strategy {
        Strategy::Pull => Arc::new(Pull::new(store)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_is_the_one_strategy_and_the_planned_ones_are_refused_by_name() {
        assert_eq!("pull".parse::<Strategy>(), Ok(Strategy::Pull));
        for planned in ["push", "hybrid"] {
            let refusal = planned.parse::<Strategy>().unwrap_err();
            assert!(refusal.contains("planned"), "{refusal}");
        }
        assert!("fanout".parse::<Strategy>().is_err());
    }
}
