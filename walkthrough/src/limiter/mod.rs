//! The rate limiter as a [`Subject`]: what its walkthrough reads from the limiter itself rather
//! than from its WALKTHROUGH.toml (the Redis keys its store writes, what DESIGN.md §11 measured),
//! its estimate ([`estimate`]) and its live demonstrations ([`demos`], checked with [`bounds`]).

pub mod bounds;
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

pub const TEXT: &str = include_str!("../../../rate-limiter/WALKTHROUGH.toml");
const DESIGN: &str = include_str!("../../../rate-limiter/DESIGN.md");
/// The Redis store, whose module doc says how keys are named and how long they live.
const REDIS_STORE: &str = include_str!("../../../rate-limiter/src/store/redis.rs");
/// The script that reads and writes every key.
const SCRIPT: &str = include_str!("../../../rate-limiter/src/store/lua/limiter.lua");
/// The in-process store, whose module doc says how it holds the same state.
const MEMORY_STORE: &str = include_str!("../../../rate-limiter/src/store/memory.rs");
pub use self::demos::DEMOS;

pub struct RateLimiter;

#[async_trait(?Send)]
impl Subject for RateLimiter {
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
        render_keys()
    }

    fn demos(&self) -> &'static [&'static str] {
        DEMOS
    }

    async fn stage(&self) -> anyhow::Result<Box<dyn Stage>> {
        Ok(Box::new(demos::Live::start().await?))
    }
}

/// The limiter has no tables: its data is one Redis key per rule and client. How the keys are
/// named and how long they live, from the store's module doc; what each algorithm writes under
/// its key, from the script's own lines; and the in-process store's first paragraph.
pub fn render_keys() -> String {
    let mut out = String::from("Redis keys (rate-limiter/src/store/redis.rs):\n");
    for paragraph in ["//! Keys:", "//! Every key has a TTL"] {
        for line in doc_paragraph(REDIS_STORE, paragraph) {
            let _ = writeln!(out, "  {line}");
        }
    }
    out.push_str(
        "\nWhat each algorithm keeps under its key: the writes of \
         rate-limiter/src/store/lua/limiter.lua\n",
    );
    for (table, writes) in script_writes() {
        out.push_str(&super::indent(&format!("{table}:"), "  ", "    "));
        for write in writes {
            let _ = writeln!(out, "    {write}");
        }
    }
    if let Some(dispatch) = SCRIPT
        .lines()
        .find(|line| line.starts_with("local algorithms = "))
    {
        out.push_str(&super::indent(
            "the table each algorithm's tag picks (tb token bucket, lb leaky bucket, fw fixed \
             window, sl sliding log, sc sliding counter):",
            "  ",
            "  ",
        ));
        let _ = writeln!(out, "    {dispatch}");
    }
    out.push_str("\nWithout REDIS_URL (rate-limiter/src/store/memory.rs):\n");
    for line in doc_paragraph(MEMORY_STORE, "//! The in-process store") {
        let _ = writeln!(out, "  {line}");
    }
    out
}

/// The lines of the `//!` paragraph of `source` that starts with `start`, without the `//! `.
fn doc_paragraph<'a>(source: &'a str, start: &str) -> Vec<&'a str> {
    source
        .lines()
        .skip_while(|line| !line.starts_with(start))
        .take_while(|line| line.starts_with("//! "))
        .map(|line| line.trim_start_matches("//! "))
        .collect()
}

/// Each of the script's algorithm tables (`local gcra = {}`) with the comment above it, and the
/// `redis.call`s by which it writes its key; tables that write nothing are left out.
fn script_writes() -> Vec<(String, Vec<&'static str>)> {
    let mut tables: Vec<(String, Vec<&'static str>)> = Vec::new();
    let mut comment: Vec<&str> = Vec::new();
    for raw in SCRIPT.lines() {
        let line = raw.trim();
        // A table at the top level; `local args = {}` inside a function is no algorithm.
        if let Some(name) = raw
            .strip_prefix("local ")
            .and_then(|rest| rest.strip_suffix(" = {}"))
        {
            let about = comment
                .iter()
                .map(|c| c.trim_start_matches("--").trim())
                .collect::<Vec<_>>()
                .join(" ");
            let heading = if about.is_empty() {
                name.to_owned()
            } else {
                format!("{name} ({about})")
            };
            tables.push((heading, Vec::new()));
        } else if let Some((_, writes)) = tables.last_mut()
            && (WRITES.iter().any(|call| line.contains(call))
                || writes.last().is_some_and(|w: &&str| w.ends_with(',')))
        {
            // A call's arguments may go on over the next lines.
            writes.push(line);
        }
        if line.starts_with("--") {
            comment.push(line);
        } else {
            comment.clear();
        }
    }
    tables.retain(|(_, writes)| !writes.is_empty());
    tables
}

/// The Redis commands that write a key.
const WRITES: [&str; 3] = [
    "redis.call('SET'",
    "redis.call('ZADD'",
    "redis.call('PEXPIRE'",
];

/// The latest figures on Redis: the last "Redis-backed decision" and "decision API on Redis, end
/// to end" rows of DESIGN.md §11's table on Redis, found by its header. `None` if the table
/// changed shape, in which case the walkthrough points at the section instead of printing a
/// stale number.
pub fn measured() -> Option<Measured> {
    let section = &DESIGN[DESIGN.find("## 11. Measured")?..];
    let mut lines = section
        .lines()
        .skip_while(|l| !(l.starts_with("| |") && l.contains("| rate |")));
    let header = cells(lines.next()?);
    let column = header.iter().position(|c| *c == "rate")?;
    let rows: Vec<Vec<&str>> = lines
        .skip(1) // the |---| line
        .take_while(|l| l.starts_with('|'))
        .map(cells)
        .collect();
    let latest = |what: &str| -> Option<(u64, String)> {
        let row = rows.iter().rev().find(|row| row[0].starts_with(what))?;
        let rate = row.get(column)?.split_whitespace().next()?.replace(',', "");
        Some((rate.parse().ok()?, format!("DESIGN.md §11, {}", row[0])))
    };
    let (redis_decisions_per_sec, redis_source) = latest("Redis-backed decision")?;
    let (api_decisions_per_sec, api_source) = latest("decision API on Redis, end to end")?;
    Some(Measured {
        redis_decisions_per_sec,
        redis_source,
        api_decisions_per_sec,
        api_source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{WIDTH, subject};

    /// The walkthrough as CI runs it: every phase in order, the estimates, the endpoints the
    /// running limiter serves, its keys, and every demonstration holding (three instances on one
    /// Redis when `REDIS_URL` is set).
    #[tokio::test(flavor = "multi_thread")]
    async fn all_prints_every_phase_in_order_and_every_claim_holds_live() {
        let out = &crate::all_checked("rate-limiter").await;

        for estimate in [
            "104,167/s average, 500,000/s at peak",
            "1,000,000",
            "4 at the peak",
            "17 at the peak",
            "100.0 MB for the live keys",
            "120.0 GB",
            "300.0 MB/s decision API",
        ] {
            assert!(out.contains(estimate), "{estimate} missing:\n{out}");
        }
        for line in ["POST    /api/v1/check", "GET     /api/v1/rules"] {
            assert!(out.contains(line), "{line} missing:\n{out}");
        }
        assert!(
            out.contains("{namespace}rl:{rule}:{algorithm}:{<client key>}"),
            "{out}"
        );
        for demo in [
            "burst of 25 admitted 20",
            "fixed window admitted 20",
            "three instances",
            "fails closed, refused with 503",
        ] {
            assert!(out.contains(demo), "{demo} missing:\n{out}");
        }
        // Prose is wrapped; the script's lines are printed as they are.
        let prose = out.lines().filter(|l| !SCRIPT.contains(l.trim()));
        assert!(
            prose.clone().all(|l| l.chars().count() <= WIDTH),
            "{:?}",
            prose.max_by_key(|l| l.chars().count())
        );
    }

    #[test]
    fn a_changed_input_moves_the_printed_estimates() {
        let subject = subject("rate-limiter").unwrap();
        let mut inputs = subject.inputs();
        inputs.set("daily_users=100000000").unwrap();

        let out = subject.estimate(&inputs);

        assert!(out.contains("5,000,000/s at peak"), "{out}");
        assert!(out.contains("35 at the peak"), "{out}");
    }

    #[test]
    fn the_measured_rates_are_design_md_section_11s_latest_rows_on_redis() {
        let measured = measured().expect("DESIGN.md §11's table on Redis is readable");

        assert!(measured.redis_decisions_per_sec > 10_000, "{measured:?}");
        assert!(measured.api_decisions_per_sec > 1_000, "{measured:?}");
        assert!(
            measured.api_source.contains("end to end, session"),
            "{measured:?}"
        );
    }

    #[test]
    fn the_keys_are_the_stores_own_words_and_every_algorithms_writes() {
        let keys = render_keys();

        assert!(
            keys.contains("`{namespace}rl:{rule}:{algorithm}:{<client key>}`"),
            "{keys}"
        );
        for table in ["gcra:", "fixed:", "log (", "counter ("] {
            assert!(keys.contains(&format!("  {table}")), "{table}\n{keys}");
        }
        assert!(keys.contains("redis.call('ZADD'"), "{keys}");
        assert!(keys.contains("64 mutex-guarded shards"), "{keys}");
    }
}
