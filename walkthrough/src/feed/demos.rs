//! The feed's deep-dive claims, shown happening against a feed started for the walkthrough,
//! through its HTTP API. The witnesses are the feeds themselves, `/metrics`
//! (`feed_fanout_inserts_total`: timeline inserts made by fan-out; `feed_fanout_events_total`:
//! each post event and how it was handled; `feed_store_queries_total{call}`: what reached the
//! database, counted where every store call passes, `feed-service/src/store/faulty.rs`), and the
//! timelines cache itself, read as the service reads it.
//!
//! The stage runs the feed hybrid, as the lab does, so both paths exist: fan-out on write for
//! ordinary authors, merge on read for celebrities. Two settings differ from the lab's: the
//! celebrity threshold is a few followers instead of 10,000 (`FEED_CELEBRITY_THRESHOLD`), so that
//! a celebrity takes a handful of sign-ups, and the posts topic is the run's own. Beside it runs a
//! second instance, pull, on the same database, so that one reader's feed can be read both ways.

use std::{
    hash::{BuildHasher, RandomState},
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use async_trait::async_trait;
use feed_service::{
    domain::{PostId, UserId},
    ids::InstanceId,
    timeline::{Strategy, cache::TimelineCache},
};
use serde_json::{Value, json};

use crate::stage::{self, Servers, Shown, Stage};

/// The demonstrations, by the ids WALKTHROUGH.toml's claims name.
pub const DEMOS: &[&str] = &[
    "celebrity-no-fanout",
    "ordinary-fanout",
    "follow-backfills",
    "push-against-pull",
];

/// Authors with more followers than this are celebrities on the stage (10,000 in the lab).
const THRESHOLD: usize = 4;

/// Reads of one feed through each instance in the push-against-pull demonstration.
const READS: usize = 100;

/// How long an asynchronous outcome (a fan-out) is waited for before the claim counts as broken.
const PATIENCE: Duration = Duration::from_secs(15);

const INSERTS: &str = "feed_fanout_inserts_total";
const PENDING: &str = "feed_fanout_pending";
const CREATED_CELEBRITY: &str =
    "feed_fanout_events_total{event=\"post.created\",outcome=\"celebrity\"}";
const CREATED_FANNED_OUT: &str =
    "feed_fanout_events_total{event=\"post.created\",outcome=\"fanned_out\"}";
const QUERIES: &str = "feed_store_queries_total";
const HOME_PAGE: &str = "feed_store_queries_total{call=\"home_page\"}";
const TIMELINE_HITS: &str = "feed_timeline_reads_total{result=\"hit\"}";
const POST_CACHE_HITS: &str = "feed_post_cache_total{result=\"hit\"}";
const CELEBRITIES_FROM_CACHE: &str = "feed_celebrity_reads_total{source=\"cache\"}";

/// A user the demonstrations made, with the token that acts as them.
#[derive(Debug, Clone)]
struct User {
    id: String,
    handle: String,
    token: String,
}

/// The feed started for the walkthrough (hybrid), and a pull instance on the same database.
pub struct Live {
    servers: Servers,
    url: String,
    pull_url: String,
    backends: String,
    client: reqwest::Client,
    /// The hybrid instance's timelines cache, to show what fan-out and backfill put there.
    timelines: Arc<dyn TimelineCache>,
    /// Makes this run's handles its own, on a database that keeps them.
    run: String,
    users: usize,
}

impl Live {
    /// The feed as `FEED_*` and the backend variables configure it, hybrid, on a free port,
    /// with its own posts topic; and a pull instance beside it.
    pub async fn start() -> anyhow::Result<Self> {
        let run = format!("{:08x}", RandomState::new().hash_one(0u8) as u32);
        let mut servers = Servers::new()?;
        let mut settings = feed_service::Settings::from_env()?;
        settings.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        settings.strategy = Strategy::Hybrid;
        settings.timelines.celebrity_threshold = THRESHOLD as u64;
        // A topic (and so a consumer group) of this run's own: a lab running on the same broker
        // would otherwise take a share of the events, and fan them out with its own threshold.
        settings.fanout.topic = format!("walkthrough.{run}.posts");
        servers.embed("feed-service", &mut settings.backends);

        let mut pull = settings.clone();
        pull.strategy = Strategy::Pull;
        pull.instance = InstanceId::new(
            (u64::from(settings.instance.get()) + 1) % (u64::from(InstanceId::MAX) + 1),
        )
        .expect("a number within the range");

        let app = feed_service::Application::build(settings).await?;
        let pull = feed_service::Application::build(pull).await?;
        let (url, pull_url) = (
            format!("http://{}", app.local_addr()),
            format!("http://{}", pull.local_addr()),
        );
        let backends = format!(
            "{}; celebrities above {THRESHOLD} followers (FEED_CELEBRITY_THRESHOLD, 10,000 in the \
             lab); and a second instance, pull, on the same database at {pull_url}",
            app.describe_backends()
        );
        let timelines = app.timelines().clone();
        servers.spawn(app.run_until_stopped(servers.until()));
        servers.spawn(pull.run_until_stopped(servers.until()));
        Ok(Self {
            servers,
            url,
            pull_url,
            backends,
            client: stage::client(),
            timelines,
            run,
            users: 0,
        })
    }

    /// `POST /v1/users`: a user of this run, `role` and a number in their handle.
    async fn sign_up(&mut self, role: &str) -> anyhow::Result<User> {
        self.users += 1;
        let handle = format!("{role}{}_{}", self.users, self.run);
        let user: Value = self
            .client
            .post(format!("{}/v1/users", self.url))
            .json(&json!({ "handle": handle }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let field = |name: &str| {
            user[name]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("the sign-up answer has no {name}"))
        };
        Ok(User {
            id: field("id")?,
            handle: field("handle")?,
            token: field("token")?,
        })
    }

    /// A user who has read their feed once: their timeline is built, and fan-out counts them
    /// active (it skips readers who have not read within the active window).
    async fn reader(&mut self, role: &str) -> anyhow::Result<User> {
        let user = self.sign_up(role).await?;
        self.feed(&self.url, &user).await?;
        Ok(user)
    }

    /// `PUT /v1/users/{reader}/following/{author}`.
    async fn follow(&self, reader: &User, author: &User) -> anyhow::Result<()> {
        self.client
            .put(format!(
                "{}/v1/users/{}/following/{}",
                self.url, reader.id, author.id
            ))
            .bearer_auth(&reader.token)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// `POST /v1/posts`: the new post's id.
    async fn post(&self, author: &User, text: &str) -> anyhow::Result<String> {
        let post: Value = self
            .client
            .post(format!("{}/v1/posts", self.url))
            .bearer_auth(&author.token)
            .json(&json!({ "text": text }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        post["id"]
            .as_str()
            .map(str::to_owned)
            .context("the new post has no id")
    }

    /// `GET /v1/users/{id}/feed` on the instance at `url`: the first page's post ids.
    async fn feed(&self, url: &str, reader: &User) -> anyhow::Result<Vec<String>> {
        let page: Value = self
            .client
            .get(format!("{url}/v1/users/{}/feed", reader.id))
            .bearer_auth(&reader.token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let posts = page["data"].as_array().context("a page has data")?;
        Ok(posts
            .iter()
            .filter_map(|post| post["id"].as_str().map(str::to_owned))
            .collect())
    }

    /// The post ids in `reader`'s cached timeline, newest first (empty if it is not built).
    async fn timeline(&self, reader: &User) -> anyhow::Result<Vec<String>> {
        let reader = UserId::parse(&reader.id).context("a user id")?;
        let slice = self.timelines.range(reader, None, 10_000).await?;
        Ok(slice
            .map(|slice| slice.ids.iter().map(PostId::to_string).collect())
            .unwrap_or_default())
    }

    async fn metric(&self, series: &str) -> anyhow::Result<f64> {
        stage::metric(&self.client, &self.url, series).await
    }

    /// Waits until `series` has grown past `from` and no fan-out work is pending: the events
    /// posted so far are handled. A bounded poll; false if it did not happen in time.
    async fn until_handled(&self, series: &str, from: f64) -> anyhow::Result<bool> {
        let waited = Instant::now();
        loop {
            if self.metric(series).await? > from && self.metric(PENDING).await? == 0.0 {
                return Ok(true);
            }
            if waited.elapsed() > PATIENCE {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every event announced so far is handled, so that what is counted next is the
    /// next post's alone.
    async fn drained(&self) -> anyhow::Result<()> {
        let waited = Instant::now();
        while self.metric(PENDING).await? != 0.0 {
            anyhow::ensure!(
                waited.elapsed() < PATIENCE,
                "the fan-out did not drain within {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// A celebrity's post: in every follower's feed at once, with no timeline insert.
    async fn celebrity_no_fanout(&mut self, shown: &mut Shown) -> anyhow::Result<()> {
        let star = self.sign_up("star").await?;
        let mut fans = Vec::new();
        for _ in 0..THRESHOLD + 2 {
            let fan = self.reader("fan").await?;
            self.follow(&fan, &star).await?;
            fans.push(fan);
        }
        shown.say(format!(
            "{} has {} followers, over the threshold of {THRESHOLD}: a celebrity. Each follower \
             has read their feed once, so fan-out would count them active.",
            star.handle,
            fans.len()
        ));
        self.drained().await?;
        let (inserts, handled) = (
            self.metric(INSERTS).await?,
            self.metric(CREATED_CELEBRITY).await?,
        );

        let post = self.post(&star, "A celebrity's post.").await?;
        let mut seen = 0;
        for fan in &fans {
            if self.feed(&self.url, fan).await?.first() == Some(&post) {
                seen += 1;
            }
        }
        shown.say(format!(
            "POST /v1/posts as {} made {post}; each follower's feed, read right after the POST \
             answered: {seen} of {} have it first",
            star.handle,
            fans.len()
        ));
        let done = self.until_handled(CREATED_CELEBRITY, handled).await?;
        let inserts = self.metric(INSERTS).await? - inserts;
        let mut in_timelines = 0;
        for fan in &fans {
            if self.timeline(fan).await?.contains(&post) {
                in_timelines += 1;
            }
        }
        shown.say(format!(
            "the fan-out worker handled its post.created as a celebrity's (feed_fanout_events_total\
             {{outcome=\"celebrity\"}} +1): feed_fanout_inserts_total +{inserts}; the post is in \
             {in_timelines} of {} followers' cached timelines, and merged into their feeds at \
             read time from the author's own recent posts",
            fans.len()
        ));
        shown.check(
            seen == fans.len(),
            "a celebrity's post is in every follower's feed as soon as it is posted",
        );
        shown.check(
            done && inserts == 0.0 && in_timelines == 0,
            "it cost zero fan-out writes",
        );
        Ok(())
    }

    /// An ordinary post: one timeline insert per active follower, and the author's own.
    async fn ordinary_fanout(&mut self, shown: &mut Shown) -> anyhow::Result<()> {
        // A reader too, so that their own timeline, which fan-out writes first, is built.
        let author = self.reader("author").await?;
        let mut active = Vec::new();
        for _ in 0..THRESHOLD - 1 {
            let reader = self.reader("reader").await?;
            self.follow(&reader, &author).await?;
            active.push(reader);
        }
        let away = self.sign_up("away").await?;
        self.follow(&away, &author).await?;
        shown.say(format!(
            "{} has {} followers, not over the threshold of {THRESHOLD}: an ordinary author. {} \
             of them have read their feed; {} never has.",
            author.handle,
            active.len() + 1,
            active.len(),
            away.handle
        ));
        self.drained().await?;
        let (inserts, handled) = (
            self.metric(INSERTS).await?,
            self.metric(CREATED_FANNED_OUT).await?,
        );

        let posted = Instant::now();
        let post = self.post(&author, "An ordinary post.").await?;
        let done = self.until_handled(CREATED_FANNED_OUT, handled).await?;
        let lag = posted.elapsed();
        let inserts = self.metric(INSERTS).await? - inserts;
        let mut in_timelines = 0;
        for reader in active.iter().chain([&author]) {
            if self.timeline(reader).await?.contains(&post) {
                in_timelines += 1;
            }
        }
        let away_had_it = self.timeline(&away).await?.contains(&post);
        shown.say(format!(
            "POST /v1/posts as {} made {post}; its fan-out was handled {} ms after the POST was \
             sent: feed_fanout_inserts_total +{inserts}, and the post is in {in_timelines} cached \
             timelines (the {} active followers' and the author's own)",
            author.handle,
            lag.as_millis(),
            active.len()
        ));
        let mut in_feeds = 0;
        for reader in &active {
            if self.feed(&self.url, reader).await?.first() == Some(&post) {
                in_feeds += 1;
            }
        }
        let away_feed = self.feed(&self.url, &away).await?;
        shown.say(format!(
            "{in_feeds} of {} active followers' feeds have it first; {} was skipped by the \
             fan-out (a timeline of theirs holds it: {away_had_it}), and their first read built \
             their timeline from the database: their feed has it {}",
            active.len(),
            away.handle,
            if away_feed.first() == Some(&post) {
                "first"
            } else {
                "NOT"
            }
        ));
        shown.check(
            done && inserts == (active.len() + 1) as f64
                && in_timelines == active.len() + 1
                && !away_had_it,
            format!(
                "an ordinary post made one timeline insert per active follower ({}) and one for \
                 its author",
                active.len()
            ),
        );
        shown.check(
            in_feeds == active.len() && away_feed.first() == Some(&post),
            "it is in every follower's feed, the inactive one's too once they read",
        );
        Ok(())
    }

    /// Following an ordinary author puts their earlier posts in the new follower's timeline.
    async fn follow_backfills(&mut self, shown: &mut Shown) -> anyhow::Result<()> {
        let author = self.sign_up("writer").await?;
        let mut earlier = Vec::new();
        for n in 1..=3 {
            earlier.push(self.post(&author, &format!("Earlier post {n}.")).await?);
        }
        earlier.reverse();
        let newcomer = self.reader("newcomer").await?;
        self.drained().await?;
        let before = self.feed(&self.url, &newcomer).await?;
        shown.say(format!(
            "{} posted 3 times; {} follows no one: their feed holds {} posts",
            author.handle,
            newcomer.handle,
            before.len()
        ));
        let inserts = self.metric(INSERTS).await?;

        self.follow(&newcomer, &author).await?;
        let feed = self.feed(&self.url, &newcomer).await?;
        let timeline = self.timeline(&newcomer).await?;
        let inserts = self.metric(INSERTS).await? - inserts;
        shown.say(format!(
            "PUT /v1/users/{}/following/{} answered; the very next read of the feed: [{}]",
            newcomer.id,
            author.id,
            feed.join(", ")
        ));
        shown.say(format!(
            "{}'s cached timeline now holds [{}], put there by the follow itself \
             (feed_fanout_inserts_total +{inserts}: no fan-out was involved)",
            newcomer.handle,
            timeline.join(", ")
        ));
        shown.check(
            before.is_empty() && feed == earlier,
            "a new follower's feed has the followee's earlier posts at once, newest first",
        );
        shown.check(
            timeline == earlier && inserts == 0.0,
            "the follow backfilled them into the follower's timeline, without fan-out",
        );
        Ok(())
    }

    /// One reader, their follows and posts, read through the hybrid instance and the pull one.
    async fn push_against_pull(&mut self, shown: &mut Shown) -> anyhow::Result<()> {
        let reader = self.reader("reader").await?;
        let star = self.sign_up("star").await?;
        self.follow(&reader, &star).await?;
        for _ in 0..THRESHOLD {
            let fan = self.sign_up("fan").await?;
            self.follow(&fan, &star).await?;
        }
        let mut authors = Vec::new();
        for _ in 0..3 {
            let author = self.sign_up("writer").await?;
            self.follow(&reader, &author).await?;
            authors.push(author);
        }
        for round in 1..=8 {
            for author in &authors {
                self.post(author, &format!("Post {round} of {}.", author.handle))
                    .await?;
            }
            if round % 2 == 0 {
                self.post(&star, &format!("Post {} of the star.", round / 2))
                    .await?;
            }
        }
        self.drained().await?;
        shown.say(format!(
            "{} follows 3 ordinary authors (8 posts each, fanned out into their timeline) and a \
             celebrity (4 posts, merged at read time): 28 posts, one database, two instances",
            reader.handle
        ));
        // One read each to warm what a first read fills: the token's account, the post cache,
        // the reader's list of celebrities and the celebrity's recent posts.
        let hybrid_page = self.feed(&self.url, &reader).await?;
        let pull_page = self.feed(&self.pull_url, &reader).await?;

        let hybrid = self.reads(&self.url, &reader, &hybrid_page).await?;
        let pull = self.reads(&self.pull_url, &reader, &hybrid_page).await?;
        for (name, reads) in [("hybrid", &hybrid), ("pull", &pull)] {
            shown.say(format!(
                "{name:<6} {READS} reads of the first page: p50 {}, p90 {}, max {} (measured \
                 here, not checked); database queries +{}, of which home_page +{}; timeline hits \
                 +{}, post cache hits +{}, celebrities merged from their cache +{}",
                ms(reads.percentile(0.5)),
                ms(reads.percentile(0.9)),
                ms(reads.percentile(1.0)),
                reads.queries,
                reads.home_pages,
                reads.timeline_hits,
                reads.post_cache_hits,
                reads.celebrities_from_cache,
            ));
        }
        shown.check(
            hybrid_page.len() == 20
                && hybrid_page == pull_page
                && hybrid.same_page == READS
                && pull.same_page == READS,
            "both instances serve the same page of 20, every time",
        );
        shown.check(
            hybrid.queries == 0.0 && hybrid.timeline_hits == READS as f64,
            "a hybrid read of a page the caches hold sends no query to the database",
        );
        shown.check(
            pull.home_pages == READS as f64 && pull.queries == READS as f64,
            "a pull read is one database query, every time",
        );
        Ok(())
    }

    /// [`READS`] reads of `reader`'s first page at `url`, one after another, timed, with what
    /// the metrics say they touched.
    async fn reads(&self, url: &str, reader: &User, expected: &[String]) -> anyhow::Result<Reads> {
        let before = self.touched().await?;
        let mut took = Vec::with_capacity(READS);
        let mut same_page = 0;
        for _ in 0..READS {
            let started = Instant::now();
            let page = self.feed(url, reader).await?;
            took.push(started.elapsed());
            same_page += usize::from(page == expected);
        }
        let after = self.touched().await?;
        took.sort_unstable();
        Ok(Reads {
            took,
            same_page,
            queries: after[0] - before[0],
            home_pages: after[1] - before[1],
            timeline_hits: after[2] - before[2],
            post_cache_hits: after[3] - before[3],
            celebrities_from_cache: after[4] - before[4],
        })
    }

    /// The counters of what a read touches. Both instances run in this process, whose metrics
    /// are one registry, so each instance's reads are counted by reading before and after them.
    async fn touched(&self) -> anyhow::Result<[f64; 5]> {
        let mut values = [0.0; 5];
        for (value, series) in values.iter_mut().zip([
            QUERIES,
            HOME_PAGE,
            TIMELINE_HITS,
            POST_CACHE_HITS,
            CELEBRITIES_FROM_CACHE,
        ]) {
            *value = self.metric(series).await?;
        }
        Ok(values)
    }
}

/// One instance's reads: how long each took, sorted, and what they touched.
struct Reads {
    took: Vec<Duration>,
    same_page: usize,
    queries: f64,
    home_pages: f64,
    timeline_hits: f64,
    post_cache_hits: f64,
    celebrities_from_cache: f64,
}

impl Reads {
    fn percentile(&self, p: f64) -> Duration {
        let at = ((self.took.len() as f64 * p).ceil() as usize).clamp(1, self.took.len());
        self.took[at - 1]
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1_000.0)
}

#[async_trait]
impl Stage for Live {
    fn url(&self) -> String {
        self.url.clone()
    }

    fn backends(&self) -> String {
        self.backends.clone()
    }

    async fn demonstrate(&mut self, demo: &str, shown: &mut Shown) -> anyhow::Result<()> {
        match demo {
            "celebrity-no-fanout" => self.celebrity_no_fanout(shown).await,
            "ordinary-fanout" => self.ordinary_fanout(shown).await,
            "follow-backfills" => self.follow_backfills(shown).await,
            "push-against-pull" => self.push_against_pull(shown).await,
            other => anyhow::bail!("the feed has no demonstration {other:?}"),
        }
    }

    async fn stop(self: Box<Self>) -> anyhow::Result<()> {
        self.servers.stop().await
    }
}
