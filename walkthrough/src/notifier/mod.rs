//! The notifier as a [`Subject`]: what its walkthrough reads from the notifier itself rather
//! than from its WALKTHROUGH.toml (the tables of its migrations, the topics its `Topology` names,
//! what DESIGN.md §10 measured), its estimate ([`estimate`]) and its live demonstrations
//! ([`demos`]).

pub mod demos;
pub mod estimate;

use std::fmt::Write as _;

use ::notifier::{domain::Channel, messages::Topology};
use async_trait::async_trait;

use self::estimate::Measured;
use super::{
    Subject,
    estimate::{Inputs, cells},
    stage::Stage,
};

pub const TEXT: &str = include_str!("../../../notifier/WALKTHROUGH.toml");
const DESIGN: &str = include_str!("../../../notifier/DESIGN.md");
/// The PostgreSQL migrations, in the order they run (SQLite's alike).
pub(crate) const MIGRATIONS: [(&str, &str); 4] = [
    (
        "20261121000001_notifications.sql",
        include_str!("../../../notifier/migrations/postgres/20261121000001_notifications.sql"),
    ),
    (
        "20261121000002_pipeline.sql",
        include_str!("../../../notifier/migrations/postgres/20261121000002_pipeline.sql"),
    ),
    (
        "20261121000003_attempt_claims.sql",
        include_str!("../../../notifier/migrations/postgres/20261121000003_attempt_claims.sql"),
    ),
    (
        "20261206000001_callers.sql",
        include_str!("../../../notifier/migrations/postgres/20261206000001_callers.sql"),
    ),
];
pub use self::demos::DEMOS;

pub struct Notifier;

#[async_trait(?Send)]
impl Subject for Notifier {
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
        format!("{}\n{}", render_tables(), render_topics())
    }

    fn demos(&self) -> &'static [&'static str] {
        DEMOS
    }

    async fn stage(&self) -> anyhow::Result<Box<dyn Stage>> {
        Ok(Box::new(demos::Live::start().await?))
    }
}

/// The PostgreSQL migrations as they are, comments and all, one after another: the later ones
/// add columns to the first one's tables, and say why.
pub fn render_tables() -> String {
    let mut out = String::from("Tables (notifier/migrations/postgres/; SQLite's alike):\n");
    for (name, migration) in MIGRATIONS {
        let _ = writeln!(out, "  -- {name}");
        for line in migration.lines().filter(|line| !line.trim().is_empty()) {
            let _ = writeln!(out, "  {line}");
        }
        out.push('\n');
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

/// The topics, named by the notifier's own `Topology` with the prefix and retry delays this
/// environment configures (`NOTIFIER_TOPIC_PREFIX`, `NOTIFIER_RETRY_DELAYS`; their defaults
/// otherwise). The walkthrough's own notifier runs on topics of its own, with shorter delays.
pub fn render_topics() -> String {
    let pipeline = match ::notifier::Settings::from_env() {
        Ok(settings) => settings.pipeline,
        Err(err) => return format!("Topics: the notifier's settings do not parse: {err}\n"),
    };
    let topology = Topology::new(&pipeline.topic_prefix);
    let mut topics = vec![(
        topology.intake(),
        "a notification's id, relayed from the outbox after the commit",
    )];
    for (i, channel) in Channel::ALL.into_iter().enumerate() {
        let about = if i == 0 {
            "a channel's jobs, from the router"
        } else {
            ""
        };
        topics.push((topology.channel(channel), about));
    }
    for (i, channel) in Channel::ALL.into_iter().enumerate() {
        for (j, delay) in pipeline.retry_delays.iter().enumerate() {
            let about = if i + j == 0 {
                "a failed job, its partition paused until it is due"
            } else {
                ""
            };
            topics.push((topology.retry(channel, *delay), about));
        }
    }
    topics.push((
        topology.dead(),
        "the dead letters, each with its delivery's attempts",
    ));
    let width = topics.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let mut out = format!(
        "Topics (notifier/src/messages.rs, Topology), {} partitions each, every record keyed by \
         its user id:\n",
        pipeline.partitions
    );
    for (name, about) in topics {
        let line = format!("  {name:<width$}  {about}");
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// The pipeline's throughput from intake to the provider, per backend set: the `pipeline`
/// column of DESIGN.md §10's latest table, found by its header. `None` if the table changed
/// shape, in which case the walkthrough points at the section instead of printing a stale number.
pub fn measured() -> Option<Measured> {
    let section = &DESIGN[DESIGN.find("## 10. Measured")?..];
    let latest = &section[section.find("**Latest**")?..];
    let mut lines = latest
        .lines()
        .skip_while(|l| !l.starts_with("| backends | pipeline |"));
    let header = cells(lines.next()?);
    let column = header.iter().position(|c| *c == "pipeline")?;
    let rows: Vec<(String, u64)> = lines
        .skip(1) // the |---| line
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let row = cells(l);
            let per_sec = row.get(column)?.trim_end_matches("/s").replace(',', "");
            Some((row.first()?.to_string(), per_sec.parse().ok()?))
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    // "the pipeline at `6f0153e`": which build the table measured, when the paragraph says.
    let build = latest
        .split_once("the pipeline at `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(commit, _)| format!(" at {commit}"))
        .unwrap_or_default();
    Some(Measured {
        rows,
        source: format!("DESIGN.md §10's latest run{build}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WIDTH;

    #[test]
    fn the_measured_throughput_is_design_md_section_10s_latest_table() {
        let measured = measured().expect("DESIGN.md §10's latest table is readable");

        let backends: Vec<&str> = measured.rows.iter().map(|(b, _)| b.as_str()).collect();
        assert_eq!(
            backends,
            ["SQLite + embedded topics", "PostgreSQL + Kafka (tansu)"]
        );
        assert!(
            measured.rows.iter().all(|(_, per_sec)| *per_sec > 1_000),
            "{:?}",
            measured.rows
        );
        assert!(measured.source.contains(" at "), "{}", measured.source);
    }

    #[test]
    fn the_tables_are_the_migrations_and_the_topics_are_the_topologys() {
        let tables = render_tables();
        let topics = render_topics();

        for table in [
            "users",
            "notifications",
            "deliveries",
            "delivery_attempts",
            "dead_letters",
            "outbox",
            "callers",
        ] {
            assert!(
                tables.contains(&format!("CREATE TABLE {table} (")),
                "{tables}"
            );
        }
        assert!(tables.contains("ALTER TABLE deliveries ADD COLUMN claimed_by"));
        for channel in Channel::ALL {
            assert!(topics.contains(&format!(".{channel}.retry.")), "{topics}");
        }
        assert!(topics.contains(".intake "), "{topics}");
        assert!(topics.contains(".dead "), "{topics}");
    }

    /// The walkthrough as CI runs it: every phase in order, the estimates, the endpoints the
    /// running notifier serves, and every demonstration holding (on PostgreSQL and Kafka too, when
    /// `DATABASE_URL` and `KAFKA_BROKERS` are set).
    #[tokio::test(flavor = "multi_thread")]
    async fn all_prints_every_phase_in_order_and_every_claim_holds_live() {
        let out = &crate::all_checked("notifier").await;

        let words = out.split_whitespace().collect::<Vec<_>>().join(" ");
        for estimate in [
            "185/s average, 1,852/s at peak",
            "push 1,157/s, email 579/s, SMS 116/s",
            "750 B a notification: 12.0 GB a day, 360.0 GB",
            "925.9 kB/s in",
            "1.2 MB/s out",
            "12 per topic",
            "2 at peak",
            "3,681/s on PostgreSQL + Kafka (tansu)",
        ] {
            assert!(words.contains(estimate), "{estimate} missing:\n{out}");
        }
        for line in [
            "POST    /v1/notifications",
            "GET     /v1/notifications/{id}",
            "POST    /v1/dlq/{id}/redrive",
        ] {
            assert!(out.contains(line), "{line} missing:\n{out}");
        }
        assert!(out.contains("CREATE TABLE deliveries ("), "{out}");
        assert!(out.contains(".sms.retry."), "{out}");
        // Prose is wrapped; the migrations' lines and the OpenAPI document's summaries are
        // printed as they are, and a test's name cannot be broken.
        let endpoint = |l: &str| {
            ["GET ", "PUT ", "POST ", "DELETE "]
                .iter()
                .any(|method| l.trim_start().starts_with(method) && l.contains(" /"))
        };
        let prose = out.lines().filter(|l| {
            !MIGRATIONS.iter().any(|(_, m)| m.contains(l.trim()))
                && !endpoint(l)
                && !l.trim_start().starts_with("held by the test ")
        });
        assert!(
            prose.clone().all(|l| l.chars().count() <= WIDTH),
            "{:?}",
            prose.max_by_key(|l| l.chars().count())
        );
    }

    #[test]
    fn a_changed_input_moves_the_printed_estimates() {
        let mut inputs = Notifier.inputs();
        inputs.set("sms_per_day=10000000").unwrap();

        let out = Notifier.estimate(&inputs);

        assert!(out.contains("SMS 1,157/s"), "{out}");
        assert!(out.contains("12 at peak"), "{out}");
    }
}
