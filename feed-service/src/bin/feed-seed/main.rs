//! The seed tool: a power-law social graph and a stream of posts, written straight into the feed
//! service's database, and a manifest of users with their tokens for load tests
//! (`seed/mod.rs` says how the graph is drawn). Run it before starting the service:
//!
//! ```text
//! cargo run --release -p feed-service --bin feed-seed -- --users 100001 --reset
//! DATABASE_URL=postgres://… REDIS_URL=redis://… cargo run --release -p feed-service --bin feed-seed -- --reset
//! ```
//!
//! It writes where the service reads: `$SDLAB_DATA_DIR/feed-service.sqlite`, or PostgreSQL's
//! `feed_service` schema when `DATABASE_URL` is set. `--reset` replaces what is there (and, with
//! `REDIS_URL`, deletes the service's cached timelines and posts); without it a database that
//! holds users is refused. The manifest goes to `--out` (`$SDLAB_DATA_DIR/feed-seed.json`).

mod seed;

use std::{path::PathBuf, time::Instant};

use anyhow::{Context, bail};
use feed_service::{Settings, app::SCHEMA, store};
use platform::db::Database;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::seed::{Graph, Manifest, Plan};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: feed-seed [--users N] [--following N] [--exponent S] [--posts N] \
[--days N] [--seed N] [--at RFC3339] [--active FRACTION] [--sample N] [--celebrity-threshold N] \
[--out PATH] [--reset]

  --users N                 users (100001: the first is followed by the 100,000 others)
  --following N             follows per user on average (20)
  --exponent S              Zipf exponent of popularity (1.0)
  --posts N                 posts, spread evenly over --days (10 per user)
  --days N                  the posts' window, ending at --at (7)
  --seed N                  every random choice (1); the same seed and --at give the same rows
  --at RFC3339              when the seed is taken (now, to the second)
  --active FRACTION         users who read their feed at --at; the rest never did (1.0)
  --sample N                users written to the manifest besides the top user and the
                            celebrities (1000)
  --celebrity-threshold N   followers above which the manifest lists a celebrity
                            (FEED_CELEBRITY_THRESHOLD, 10000)
  --out PATH                the manifest ($SDLAB_DATA_DIR/feed-seed.json)
  --reset                   replace the users, follows, posts and cached timelines there are";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    platform::telemetry::init();
    let settings = Settings::from_env()?;
    let now = OffsetDateTime::now_utc();
    let mut plan = Plan {
        celebrity_threshold: settings.timelines.celebrity_threshold,
        instance: settings.instance,
        ..Plan::new(
            now.replace_nanosecond(0)
                .expect("zero is a valid nanosecond"),
        )
    };
    let mut posts = None;
    let mut out = platform::config::data_dir()?.join("feed-seed.json");
    let mut reset = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--users" => plan.users = number(&arg, &value()?)?,
            "--following" => plan.following = number(&arg, &value()?)?,
            "--exponent" => plan.exponent = number(&arg, &value()?)?,
            "--posts" => posts = Some(number(&arg, &value()?)?),
            "--days" => plan.days = number(&arg, &value()?)?,
            "--seed" => plan.seed = number(&arg, &value()?)?,
            "--at" => {
                plan.at = OffsetDateTime::parse(&value()?, &Rfc3339)
                    .context("--at must be an RFC 3339 time, such as 2026-11-21T12:00:00Z")?
            }
            "--active" => plan.active = number(&arg, &value()?)?,
            "--sample" => plan.sample = number(&arg, &value()?)?,
            "--celebrity-threshold" => plan.celebrity_threshold = number(&arg, &value()?)?,
            "--out" => out = PathBuf::from(value()?),
            "--reset" => reset = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument `{other}` (try --help)"),
        }
    }
    plan.posts = posts.unwrap_or(u64::from(plan.users) * 10);
    plan.check().map_err(anyhow::Error::msg)?;

    let started = Instant::now();
    let graph = Graph::generate(&plan);
    let generated = started.elapsed();
    let database = Database::connect(&settings.backends.database, SCHEMA)
        .await
        .context("connecting to the database")?;
    database
        .migrate(store::MIGRATIONS)
        .await
        .context("migrating the database")?;
    let writing = Instant::now();
    let written = seed::write(&database, &plan, &graph, reset).await?;
    let wrote = writing.elapsed();
    database.close().await;
    if let (true, Some(url)) = (reset, &settings.backends.redis_url) {
        let forgotten = seed::forget_cached(url, &settings.cache_namespace)
            .await
            .context("deleting the cached timelines and posts in Redis")?;
        println!(
            "deleted {forgotten} cached timelines and posts under {}*",
            settings.cache_namespace
        );
    }

    let manifest = Manifest::of(&plan, &graph);
    if let Some(dir) = out.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&out, serde_json::to_vec_pretty(&manifest)?)
        .with_context(|| format!("writing {}", out.display()))?;

    let seconds = |duration: std::time::Duration| duration.as_secs_f64();
    println!(
        "seeded {} users, {} follows and {} posts into {} in {:.1} s \
         (generating {:.1} s, writing {:.1} s)",
        written.users,
        written.follows,
        written.posts,
        settings.backends.database,
        seconds(started.elapsed()),
        seconds(generated),
        seconds(wrote),
    );
    println!(
        "the most followed 1% hold {:.0}% of follows; {} users have more than {} followers; \
         the top user, {}, has {}",
        manifest.top_1_percent_share * 100.0,
        manifest.celebrities.len(),
        plan.celebrity_threshold,
        manifest.top.handle,
        manifest.top.followers,
    );
    println!(
        "manifest: {} (the top user, {} celebrities and {} sampled users, with their tokens)",
        out.display(),
        manifest.celebrities.len(),
        manifest.sample.len()
    );
    Ok(())
}

fn number<T: std::str::FromStr>(name: &str, text: &str) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|err| anyhow::anyhow!("{name} {text:?}: {err}"))
}
