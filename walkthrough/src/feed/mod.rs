//! The feed service as a [`Subject`]: what its walkthrough reads from the feed itself rather than
//! from its WALKTHROUGH.toml (the tables of its migrations, the Redis keys and the topic message
//! as the code defines them, what DESIGN.md §11 measured), its estimate ([`estimate`]) and its
//! live demonstrations ([`demos`]).

pub mod demos;
pub mod estimate;

use std::fmt::Write as _;

use async_trait::async_trait;

use self::estimate::Measured;
use super::{
    Subject,
    estimate::{Inputs, cells},
    stage::Stage,
};

pub const TEXT: &str = include_str!("../../../feed-service/WALKTHROUGH.toml");
const DESIGN: &str = include_str!("../../../feed-service/DESIGN.md");
pub use self::demos::DEMOS;

/// The PostgreSQL migrations, in the order they run (SQLite's make the same tables).
pub(crate) const MIGRATIONS: [(&str, &str); 2] = [
    (
        "feed-service/migrations/postgres/20261201000001_feed.sql",
        include_str!("../../../feed-service/migrations/postgres/20261201000001_feed.sql"),
    ),
    (
        "feed-service/migrations/postgres/20261202000001_timelines.sql",
        include_str!("../../../feed-service/migrations/postgres/20261202000001_timelines.sql"),
    ),
];

/// Where the code names the Redis keys and the topic's message, and the items that do.
pub(crate) const KEYS: [(&str, &str, &[&str]); 6] = [
    (
        "feed-service/src/settings.rs",
        include_str!("../../../feed-service/src/settings.rs"),
        &["cache_namespace: format!(\"{SYSTEM}:\")", "\"feed.posts\""],
    ),
    (
        "feed-service/src/timeline/cache/redis.rs",
        include_str!("../../../feed-service/src/timeline/cache/redis.rs"),
        &["fn key(&self, reader: UserId)"],
    ),
    (
        "feed-service/src/app.rs",
        include_str!("../../../feed-service/src/app.rs"),
        &["format!(\"{}authors:\""],
    ),
    (
        "feed-service/src/timeline/hydrate.rs",
        include_str!("../../../feed-service/src/timeline/hydrate.rs"),
        &["fn key(id: PostId)", "enum Entry {"],
    ),
    (
        "feed-service/src/timeline/celebrities.rs",
        include_str!("../../../feed-service/src/timeline/celebrities.rs"),
        &[
            "const EPOCH_KEY",
            "fn stamp_key",
            "fn list_key",
            "struct Followed {",
        ],
    ),
    (
        "feed-service/src/fanout.rs",
        include_str!("../../../feed-service/src/fanout.rs"),
        &["pub enum PostEvent {"],
    ),
];

pub struct FeedService;

#[async_trait(?Send)]
impl Subject for FeedService {
    fn text(&self) -> &'static str {
        TEXT
    }

    fn inputs(&self) -> Inputs {
        estimate::inputs()
    }

    fn estimate(&self, inputs: &Inputs) -> String {
        estimate::render(inputs, measured().as_ref())
    }

    fn data_model(&self) -> String {
        format!("{}\n{}", render_tables(), render_keys())
    }

    fn demos(&self) -> &'static [&'static str] {
        DEMOS
    }

    async fn stage(&self) -> anyhow::Result<Box<dyn Stage>> {
        Ok(Box::new(demos::Live::start().await?))
    }
}

/// The tables, indexes and columns the PostgreSQL migrations make, with their comments.
pub fn render_tables() -> String {
    let mut out = String::from("Tables (the PostgreSQL migrations; SQLite's alike):\n");
    for (path, migration) in MIGRATIONS {
        let _ = writeln!(out, "  {path}:");
        let mut in_table = false;
        for line in migration.lines() {
            in_table |= line.starts_with("CREATE TABLE");
            if in_table || line.starts_with("CREATE INDEX") || line.starts_with("ALTER TABLE") {
                let _ = writeln!(out, "    {line}");
            }
            if in_table && line.starts_with(");") {
                in_table = false;
            }
        }
    }
    out
}

/// The Redis keys (and the in-process caches', which take the same names) and the topic's
/// message, as the code that makes them reads.
pub fn render_keys() -> String {
    let mut out = String::from(
        "Keys and topic (the code that names them; every key after the namespace, in Redis or in \
         process):\n",
    );
    for (path, source, markers) in KEYS {
        let _ = writeln!(out, "  {path}:");
        for marker in markers {
            match item(source, marker) {
                Some(item) => {
                    for line in item {
                        let _ = writeln!(out, "    {line}");
                    }
                }
                None => {
                    let _ = writeln!(out, "    ({marker} is no longer there: see the file)");
                }
            }
        }
    }
    out
}

/// The lines of the item whose line contains `marker`: its doc comment and attributes, then the
/// line, and for a line that opens a block, every line to the one that closes it at the same
/// indentation. A line in the middle of something (a struct field) comes alone. The lines are
/// given without the indentation of the first.
fn item<'a>(source: &'a str, marker: &str) -> Option<Vec<&'a str>> {
    let lines: Vec<&str> = source.lines().collect();
    let at = lines.iter().position(|line| line.contains(marker))?;
    let mut start = at;
    while start > 0 && {
        let above = lines[start - 1].trim_start();
        above.starts_with("///") || above.starts_with("#[")
    } {
        start -= 1;
    }
    let mut end = at;
    if lines[at].trim_end().ends_with('{') {
        let indent = &lines[at][..lines[at].len() - lines[at].trim_start().len()];
        let close = format!("{indent}}}");
        end = (at..lines.len()).find(|&i| lines[i].trim_end() == close)?;
    }
    let base = lines[start].len() - lines[start].trim_start().len();
    Some(
        lines[start..=end]
            .iter()
            .map(|line| &line[base.min(line.len() - line.trim_start().len())..])
            .collect(),
    )
}

/// What DESIGN.md §11's latest table measured on PostgreSQL, Redis and Kafka: the push and
/// hybrid rows, found by the table's header. `None` if the table changed shape, in which case the
/// walkthrough points at the section instead of printing a stale number.
pub fn measured() -> Option<Measured> {
    let section = &DESIGN[DESIGN.find("## 11.")?..];
    let mut lines = section
        .lines()
        .skip_while(|l| !l.starts_with("| backends | strategy |"));
    let header = cells(lines.next()?);
    let column = |name: &str| header.iter().position(|c| *c == name);
    let (strategy, cpu) = (column("strategy")?, column("CPU per read: service, Redis")?);
    let (posts, writes) = (column("posts/s")?, column("fan-out writes per post")?);
    lines.next()?; // the |---| line
    let mut backends = String::new();
    let (mut push, mut hybrid) = (None, None);
    for line in lines.take_while(|l| l.starts_with('|')) {
        let row = cells(line);
        if !row.first()?.is_empty() {
            backends = (*row.first()?).to_owned();
        }
        if !backends.contains("Redis") {
            continue;
        }
        match *row.get(strategy)? {
            "push" => push = Some(row),
            "hybrid" => hybrid = Some(row),
            _ => {}
        }
    }
    let (push, hybrid) = (push?, hybrid?);
    let number = |cell: &str| cell.trim().replace(',', "").parse::<f64>().ok();
    let milliseconds =
        |cell: &str, at: usize| number(cell.split(',').nth(at)?.split(" ms").next()?);
    Some(Measured {
        push_read_cpu_ms: milliseconds(push.get(cpu)?, 0)?,
        hybrid_read_cpu_ms: milliseconds(hybrid.get(cpu)?, 0)?,
        redis_read_cpu_ms: milliseconds(push.get(cpu)?, 1)?,
        push_posts_per_sec: number(push.get(posts)?)?,
        fanout_writes_per_post: number(push.get(writes)?)?,
        workers: 2.0,
        source: format!("DESIGN.md §11's latest run on {backends}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{WIDTH, subject};

    /// The walkthrough as CI runs it: every phase in order, the estimates, the endpoints the
    /// running feed serves, the tables and keys, and every demonstration holding (on the real
    /// backends too, when `DATABASE_URL`, `REDIS_URL` and `KAFKA_BROKERS` are set). The one test
    /// of this module that starts the feed: its metrics are the process's.
    #[tokio::test(flavor = "multi_thread")]
    async fn all_prints_every_phase_in_order_and_every_claim_holds_live() {
        let out = &crate::all_checked("feed-service").await;

        for estimate in [
            "4,630/s average, 12,037/s at peak",
            "300,926/s average",
            "347,222/s average",
            "30,000,000 inserts under push, 0 under hybrid",
            "1,460,000,000,000",
            "292.0 TB",
            "12.0 TB",
            "120.0 GB",
            "partitions: ",
        ] {
            assert!(out.contains(estimate), "{estimate} missing:\n{out}");
        }
        for line in ["POST    /v1/posts", "GET     /v1/users/{id}/feed"] {
            assert!(out.contains(line), "{line} missing:\n{out}");
        }
        assert!(out.contains("CREATE TABLE posts ("), "{out}");
        assert!(out.contains("pub enum PostEvent {"), "{out}");
        // Prose is wrapped; the migrations' and the code's lines are printed as they are, and
        // so are the endpoints' summaries, as the OpenAPI document gives them (`stage.rs`).
        let endpoint = |line: &str| {
            ["GET ", "POST ", "PUT ", "DELETE "]
                .iter()
                .any(|method| line.starts_with(method))
        };
        let prose = out.lines().filter(|l| {
            let line = l.trim();
            !MIGRATIONS.iter().any(|(_, m)| m.contains(line))
                && !KEYS.iter().any(|(_, source, _)| source.contains(line))
                && !endpoint(line)
        });
        assert!(
            prose.clone().all(|l| l.chars().count() <= WIDTH),
            "{:?}",
            prose.max_by_key(|l| l.chars().count())
        );
    }

    #[test]
    fn a_changed_input_moves_the_printed_estimates() {
        let subject = subject("feed-service").unwrap();
        let mut inputs = subject.inputs();
        inputs.set("reads_per_post=650").unwrap();

        let out = subject.estimate(&inputs);

        assert!(out.contains("3,009,259/s average"), "{out}");
        assert!(!out.contains("300,926/s average"), "{out}");
    }

    #[test]
    fn the_measured_figures_are_design_md_section_11s_latest_push_and_hybrid_rows() {
        let measured = measured().expect("DESIGN.md §11's table is readable");

        assert!(measured.push_read_cpu_ms > 0.0, "{measured:?}");
        assert!(measured.hybrid_read_cpu_ms > 0.0, "{measured:?}");
        assert!(measured.redis_read_cpu_ms > 0.0, "{measured:?}");
        assert!(measured.push_posts_per_sec > 100.0, "{measured:?}");
        assert!(measured.fanout_writes_per_post > 1.0, "{measured:?}");
        assert!(measured.source.contains("Redis"), "{measured:?}");
    }

    #[test]
    fn the_tables_are_the_migrations_four_with_their_indexes() {
        let tables = render_tables();

        for table in ["users", "follows", "posts", "outbox"] {
            assert!(
                tables.contains(&format!("CREATE TABLE {table} (")),
                "{tables}"
            );
        }
        assert!(tables.contains("CREATE INDEX posts_by_author"), "{tables}");
        assert!(tables.contains("ADD COLUMN follower_count"), "{tables}");
        assert!(!tables.contains("UPDATE users"), "{tables}");
    }

    #[test]
    fn every_key_and_the_topic_message_are_found_in_the_code() {
        let keys = render_keys();

        assert!(!keys.contains("is no longer there"), "{keys}");
        for key in [
            "timeline:{reader}",
            "authors:",
            "post:{id}",
            "celebrities:epoch",
            "celebrities:of:{reader}",
            "pub enum PostEvent {",
            "\"feed.posts\"",
        ] {
            assert!(keys.contains(key), "{key} missing:\n{keys}");
        }
    }
}
