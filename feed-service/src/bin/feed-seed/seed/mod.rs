//! The seed tool's graph and writers (`main.rs` beside this folder is the command): a social
//! graph whose follower counts follow a power law, and a stream of posts, written straight into
//! the service's database, for benchmarks and load tests.
//!
//! Benchmark code, so it lives with its binary and not in the service's library: the library's
//! public API is the service's, and nothing the service runs needs a graph generator. The API
//! tests compile this folder in as the binary does (`tests/api/seed.rs`), and run its tests.
//!
//! **The graph.** Who a user follows is drawn from a Zipf distribution over popularity ranks:
//! the user with rank `r` (user number `r`, counting from 0) is picked with probability
//! proportional to `1 / (r + 1)^s` ([`Plan::exponent`], 1 by default), the shape of follower
//! counts on Twitter (Kwak et al., "What is Twitter, a social network or a news media?", WWW
//! 2010). Each user follows between 1 and `2 × following - 1` others (uniformly, so `following`
//! on average), distinct, never themselves. On top of the draw, user 0, the most popular, is
//! followed by everyone: the ceiling of a power law on this many users (the draw alone gives it
//! 80 to 98 %), so a graph of 100,001 users has an author with exactly 100,000 followers, the
//! benchmark's celebrity. With the defaults, the top 1 % of users hold over half of the follows.
//!
//! **Posts** are spread evenly over the [`Plan::days`] before [`Plan::at`] (one slot each, at a
//! random moment inside it), by authors drawn uniformly: posting is far less skewed than being
//! followed. Their ids come from the service's own generator ([`Snowflake`]) on a clock set to
//! each post's time, so they are snowflakes like any other, time-ordered and below every id the
//! service makes after the seed. Users are created just before the first post.
//!
//! **Deterministic.** Everything comes from [`Plan::seed`] through [`SplitMix64`], a generator
//! written out here rather than `rand`'s `StdRng`, whose sequence may change between releases:
//! the same seed gives the same handles, tokens, follows and posts on any machine and version.
//! Ids and times also depend on `at`: the same seed *and* `at` give the same rows.
//!
//! **Tokens** are derived from the seed and the user's number ([`token`]), hashed into
//! `users.token_hash` as sign-up does, and the plan's sample of users is written to a JSON file
//! with them ([`Manifest`]), for a load test to act as those users. Anyone who knows the seed can
//! compute every token: this is benchmark data, never for a database real users use.
//!
//! **Consistent counts.** `users.follower_count` is written as the number of follow rows, as
//! `follow` and `unfollow` keep it; profiles count the rows themselves. A fraction
//! [`Plan::active`] of the users have read their feed at `at` (so fan-out counts them active);
//! the others never did. No outbox rows: the seeded posts are history, already in the database,
//! from which a timeline is built on its reader's first read.
//!
//! **Writing** ([`write()`]): everything in one transaction, PostgreSQL by `COPY` ([`postgres`]),
//! SQLite by prepared multi-row `INSERT`s ([`sqlite`]), then PostgreSQL's `VACUUM (ANALYZE)`, so
//! the planner knows the tables' new sizes and index-only scans need not visit the heap.

mod postgres;
mod sqlite;

use std::{collections::HashSet, sync::Arc, time::Duration};

use platform::{auth::ApiKey, clock::ManualClock, db::Database};
use serde::Serialize;
use time::OffsetDateTime;

use feed_service::{
    domain::{Handle, PostId, UserId},
    ids::{InstanceId, Snowflake},
};

/// What to generate. [`Plan::new`] is the benchmark's graph, at `at`.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Where every random choice comes from.
    pub seed: u64,
    pub users: u32,
    /// How many users a user follows, on average.
    pub following: u32,
    /// The Zipf exponent of popularity: 0 is uniform, larger is more skewed.
    pub exponent: f64,
    pub posts: u64,
    /// Posts are spread over this long before `at`.
    pub days: u32,
    /// The moment the seed pretends to be taken at: every time is before it.
    pub at: OffsetDateTime,
    /// The fraction of users who read their feed at `at`; the rest never did.
    pub active: f64,
    /// Users written to the manifest with their tokens (besides the celebrities).
    pub sample: u32,
    /// Authors with more followers than this are listed as celebrities
    /// (`FEED_CELEBRITY_THRESHOLD`).
    pub celebrity_threshold: u64,
    /// The instance number in the seeded ids (`FEED_INSTANCE_ID`).
    pub instance: InstanceId,
}

impl Plan {
    /// The benchmark's graph: 100,001 users following 20 each on average, 10 posts each over a
    /// week, every user active.
    pub fn new(at: OffsetDateTime) -> Self {
        Self {
            seed: 1,
            users: 100_001,
            following: 20,
            exponent: 1.0,
            posts: 1_000_010,
            days: 7,
            at,
            active: 1.0,
            sample: 1_000,
            celebrity_threshold: 10_000,
            instance: InstanceId::new(0).expect("0 is an instance number"),
        }
    }

    /// Refuses what cannot make a graph.
    pub fn check(&self) -> Result<(), String> {
        if self.users < 2 {
            return Err("--users must be at least 2: one to follow, one to be followed".into());
        }
        if self.following == 0 {
            return Err("--following must be at least 1".into());
        }
        if !(self.exponent.is_finite() && self.exponent >= 0.0) {
            return Err("--exponent must be 0 or more".into());
        }
        if !(0.0..=1.0).contains(&self.active) {
            return Err("--active must be a fraction from 0 to 1".into());
        }
        if self.days == 0 {
            return Err("--days must be at least 1".into());
        }
        Ok(())
    }
}

/// A small, fast, deterministic generator: SplitMix64 (Steele, Lea and Flood, "Fast splittable
/// pseudorandom number generators", OOPSLA 2014), as Java's `SplittableRandom`. Not for secrets:
/// the tokens it makes are meant to be reproducible.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A stream of `seed` kept apart from the others by `stream` (follows, posts, a user's token).
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut mixer = Self(seed ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        Self(mixer.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; its bias is below 2^-32 for these sizes).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The streams of one seed.
const FOLLOWS: u64 = 1;
const POSTS: u64 = 2;
const ACTIVE: u64 = 3;
const SAMPLE: u64 = 4;
/// User `n`'s token is stream `TOKENS + n`.
const TOKENS: u64 = 1 << 32;

/// User number `index`'s token under `seed`: `sk_` and 40 hex digits, as `ApiKey::generate`
/// makes, but from the seed.
pub fn token(seed: u64, index: u32) -> ApiKey {
    let mut rng = SplitMix64::new(seed, TOKENS + u64::from(index));
    let bytes: Vec<u8> = (0..3)
        .flat_map(|_| rng.next_u64().to_be_bytes())
        .take(20)
        .collect();
    ApiKey::parse(&format!("sk_{}", hex::encode(&bytes))).expect("40 hex digits make a key")
}

/// User number `index`'s handle.
pub fn handle(index: u32) -> Handle {
    Handle::parse(&format!("user{index}")).expect("user and digits make a handle")
}

/// A user of the graph, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedUser {
    pub id: UserId,
    /// The numbers (indexes into [`Graph::users`]) of those this user follows, ascending.
    pub following: Vec<u32>,
    pub followers: u64,
    /// Read their feed at [`Plan::at`], or never.
    pub active: bool,
}

/// The users and who follows whom; posts come after, from [`Graph::posts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    pub plan_seed: u64,
    pub users: Vec<SeedUser>,
    /// When every user was created: just before the first post.
    pub created_at: OffsetDateTime,
}

/// A post to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedPost {
    pub id: PostId,
    pub author: UserId,
    pub text: String,
    pub created_at: OffsetDateTime,
}

impl Graph {
    /// Draws the graph of `plan` (see the module's documentation for how).
    pub fn generate(plan: &Plan) -> Self {
        let n = plan.users;
        let window = Duration::from_secs(u64::from(plan.days) * 86_400);
        // A minute before the first post: room for the ids of a million users made in a burst
        // (256 a millisecond, `src/ids.rs`) to stay below every post's.
        let created_at = whole_millis(plan.at - window - Duration::from_secs(60));
        let ids = Snowflake::new(plan.instance, Arc::new(ManualClock::new(created_at)));
        let popularity = Zipf::new(n, plan.exponent);

        let mut rng = SplitMix64::new(plan.seed, FOLLOWS);
        let mut followers = vec![0u64; n as usize];
        let mut following_of = Vec::with_capacity(n as usize);
        let mut chosen = HashSet::new();
        for user in 0..n {
            // At most half of the others, so the draw below always finishes quickly.
            let most = (n - 1).div_ceil(2).max(1);
            let wanted = (1 + rng.below(u64::from(2 * plan.following - 1)) as u32).min(most);
            chosen.clear();
            if user != 0 {
                chosen.insert(0);
            }
            let mut attempts = 0;
            while (chosen.len() as u32) < wanted {
                // Popular users are drawn again and again once taken; after enough tries, any
                // user will do.
                let pick = match attempts < 20 * wanted {
                    true => popularity.sample(&mut rng),
                    false => rng.below(u64::from(n)) as u32,
                };
                attempts += 1;
                if pick != user {
                    chosen.insert(pick);
                }
            }
            let mut following: Vec<u32> = chosen.iter().copied().collect();
            following.sort_unstable();
            for followee in &following {
                followers[*followee as usize] += 1;
            }
            following_of.push(following);
        }

        let mut active = SplitMix64::new(plan.seed, ACTIVE);
        let users = following_of
            .into_iter()
            .zip(followers)
            .map(|(following, followers)| SeedUser {
                id: ids.user_id(),
                following,
                followers,
                active: active.unit() < plan.active,
            })
            .collect();
        Self {
            plan_seed: plan.seed,
            users,
            created_at,
        }
    }

    /// The plan's posts, oldest first, made as they are asked for (a million posts' texts need
    /// not be in memory at once). Their ids come from a generator whose clock is set to each
    /// post's time; they start a minute after the users', so the two never meet.
    pub fn posts<'a>(&'a self, plan: &'a Plan) -> impl Iterator<Item = SeedPost> + 'a {
        let mut rng = SplitMix64::new(plan.seed, POSTS);
        let window_ms = u64::from(plan.days) * 86_400_000;
        let start = plan.at - Duration::from_millis(window_ms);
        let clock = ManualClock::new(start);
        let ids = Snowflake::new(plan.instance, Arc::new(clock.clone()));
        let users = &self.users;
        (0..plan.posts).map(move |n| {
            // Post n's slot is [n, n + 1) of `posts` equal slots of the window.
            let offset = ((n as f64 + rng.unit()) * window_ms as f64 / plan.posts as f64) as u64;
            let created_at = start + Duration::from_millis(offset.min(window_ms - 1));
            clock.set(created_at);
            let author = rng.below(u64::from(plan.users)) as u32;
            SeedPost {
                id: ids.post_id(),
                author: users[author as usize].id,
                text: text(&mut rng, n, author),
                created_at,
            }
        })
    }

    /// The users above the plan's threshold, most followed first.
    pub fn celebrities(&self, threshold: u64) -> Vec<u32> {
        let mut celebrities: Vec<u32> = (0..self.users.len() as u32)
            .filter(|user| self.users[*user as usize].followers > threshold)
            .collect();
        celebrities.sort_by_key(|user| std::cmp::Reverse(self.users[*user as usize].followers));
        celebrities
    }

    /// `sample` users chosen uniformly (without repeats), in number order.
    pub fn sample(&self, sample: u32) -> Vec<u32> {
        let n = self.users.len() as u32;
        let mut rng = SplitMix64::new(self.plan_seed, SAMPLE);
        let mut chosen = HashSet::new();
        while (chosen.len() as u32) < sample.min(n) {
            chosen.insert(rng.below(u64::from(n)) as u32);
        }
        let mut sample: Vec<u32> = chosen.into_iter().collect();
        sample.sort_unstable();
        sample
    }

    /// How many follows there are.
    pub fn follows(&self) -> u64 {
        self.users
            .iter()
            .map(|user| user.following.len() as u64)
            .sum()
    }

    /// The share of all follows held by the most followed `fraction` of users.
    pub fn share_of_top(&self, fraction: f64) -> f64 {
        let mut counts: Vec<u64> = self.users.iter().map(|user| user.followers).collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top = ((counts.len() as f64 * fraction).ceil() as usize).max(1);
        counts[..top].iter().sum::<u64>() as f64 / self.follows().max(1) as f64
    }
}

/// Post `n` by user `author`: 40 to 200 characters of words, deterministic.
fn text(rng: &mut SplitMix64, n: u64, author: u32) -> String {
    const WORDS: [&str; 16] = [
        "feed",
        "timeline",
        "fan-out",
        "celebrity",
        "cache",
        "cursor",
        "redis",
        "post",
        "follow",
        "hybrid",
        "push",
        "pull",
        "snowflake",
        "shard",
        "replica",
        "latency",
    ];
    let length = 40 + rng.below(161) as usize;
    let mut text = format!("post {n} by user{author}:");
    while text.len() < length {
        text.push(' ');
        text.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    text
}

fn whole_millis(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_millisecond(at.millisecond())
        .expect("the current millisecond is valid")
}

/// Ranks `0..n` drawn with probability proportional to `1 / (rank + 1)^s`, by inverting the
/// cumulative weights (one binary search a draw).
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: u32, exponent: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=n)
            .map(|rank| {
                total += f64::from(rank).powf(-exponent);
                total
            })
            .collect();
        Self { cumulative }
    }

    fn sample(&self, rng: &mut SplitMix64) -> u32 {
        let target = rng.unit() * self.cumulative.last().copied().unwrap_or(0.0);
        let rank = self.cumulative.partition_point(|weight| *weight <= target);
        rank.min(self.cumulative.len() - 1) as u32
    }
}

/// A user a load test can act as.
#[derive(Debug, Clone, Serialize)]
pub struct SeededUser {
    pub id: String,
    pub handle: String,
    pub token: String,
    pub followers: u64,
    pub following: usize,
}

/// What a seed wrote, for load tests: `feed-seed.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub seed: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub users: u32,
    pub follows: u64,
    pub posts: u64,
    pub celebrity_threshold: u64,
    /// The share of follows held by the most followed 1 % of users.
    pub top_1_percent_share: f64,
    /// The most followed user, followed by every other: the benchmark's celebrity, whatever the
    /// threshold.
    pub top: SeededUser,
    /// Every user above the threshold, most followed first.
    pub celebrities: Vec<SeededUser>,
    /// [`Plan::sample`] users drawn uniformly, celebrities possibly among them.
    pub sample: Vec<SeededUser>,
}

impl Manifest {
    pub fn of(plan: &Plan, graph: &Graph) -> Self {
        let user = |index: u32| {
            let seeded = &graph.users[index as usize];
            SeededUser {
                id: seeded.id.to_string(),
                handle: handle(index).to_string(),
                token: token(plan.seed, index).expose().to_owned(),
                followers: seeded.followers,
                following: seeded.following.len(),
            }
        };
        Self {
            seed: plan.seed,
            at: plan.at,
            users: plan.users,
            follows: graph.follows(),
            posts: plan.posts,
            celebrity_threshold: plan.celebrity_threshold,
            top_1_percent_share: graph.share_of_top(0.01),
            top: user(0),
            celebrities: graph
                .celebrities(plan.celebrity_threshold)
                .into_iter()
                .map(user)
                .collect(),
            sample: graph.sample(plan.sample).into_iter().map(user).collect(),
        }
    }
}

/// How many rows went in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    pub users: u64,
    pub follows: u64,
    pub posts: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("the database holds {0} users already: pass --reset to replace them")]
    NotEmpty(u64),
    #[error("rows refer to rows that are not there: {0}")]
    Dangling(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

/// Writes `graph` and `plan`'s posts into `database` (migrated), in one transaction. Refuses a
/// database that holds users unless `reset`, which first deletes every user, follow, post and
/// outbox row in the same transaction.
pub async fn write(
    database: &Database,
    plan: &Plan,
    graph: &Graph,
    reset: bool,
) -> Result<Written, SeedError> {
    match database {
        Database::Postgres(pool) => postgres::write(pool, plan, graph, reset).await,
        Database::Sqlite(pool) => sqlite::write(pool, plan, graph, reset).await,
    }
}

/// Deletes every key under `namespace` in Redis (timelines and cached posts), so that a
/// reseeded database is not read through a cache of the previous one. The in-process caches need
/// no such step: they go with the process, which is started after the seed.
pub async fn forget_cached(redis_url: &str, namespace: &str) -> Result<u64, redis::RedisError> {
    let client = redis::Client::open(redis_url)?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let mut cursor = 0u64;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{namespace}*"))
            .arg("COUNT")
            .arg(1_000)
            .query_async(&mut connection)
            .await?;
        if !keys.is_empty() {
            deleted += keys.len() as u64;
            let () = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut connection)
                .await?;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// Rows go to the database this many at a time (a `COPY` message, a multi-row `INSERT`).
const CHUNK: usize = 500;

/// The rows of the users table, in number order.
struct UserRow {
    id: i64,
    handle: String,
    token_hash: String,
    follower_count: i64,
    last_read_at: Option<OffsetDateTime>,
}

fn user_rows<'a>(plan: &'a Plan, graph: &'a Graph) -> impl Iterator<Item = UserRow> + 'a {
    graph
        .users
        .iter()
        .enumerate()
        .map(move |(index, user)| UserRow {
            id: user.id.to_db(),
            handle: handle(index as u32).to_string(),
            token_hash: token(plan.seed, index as u32).hash(),
            follower_count: user.followers as i64,
            last_read_at: user.active.then_some(plan.at),
        })
}

/// The follow rows as `(follower, followee)` ids, by follower then followee: the primary key's
/// order, so each insert appends to its index.
fn follow_rows(graph: &Graph) -> impl Iterator<Item = (i64, i64)> + '_ {
    graph.users.iter().flat_map(move |user| {
        user.following
            .iter()
            .map(move |followee| (user.id.to_db(), graph.users[*followee as usize].id.to_db()))
    })
}

#[cfg(test)]
mod tests;
