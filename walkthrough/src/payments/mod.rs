//! Idempotent payments (`idempotency-demo`) as a [`Subject`]: what its walkthrough reads from the
//! service itself rather than from its WALKTHROUGH.toml (the tables of its migrations, the topic
//! its events go to, what DESIGN.md §8 measured), its estimate ([`estimate`]) and its live
//! demonstrations ([`demos`]).

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

pub const TEXT: &str = include_str!("../../../idempotency-demo/WALKTHROUGH.toml");
const DESIGN: &str = include_str!("../../../idempotency-demo/DESIGN.md");
/// The migrations in the order they run: their statements are the data model.
pub(crate) const MIGRATIONS: [(&str, &str); 2] = [
    (
        "20261121000001_payments.sql",
        include_str!("../../../idempotency-demo/migrations/postgres/20261121000001_payments.sql"),
    ),
    (
        "20261121000002_outbox_claims.sql",
        include_str!(
            "../../../idempotency-demo/migrations/postgres/20261121000002_outbox_claims.sql"
        ),
    ),
];
/// Where the service creates its events topic, and says why with how many partitions.
const APP: &str = include_str!("../../../idempotency-demo/src/app.rs");
pub use self::demos::DEMOS;

pub struct Payments;

#[async_trait(?Send)]
impl Subject for Payments {
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
        format!("{}\n{}", render_tables(), render_topic())
    }

    fn demos(&self) -> &'static [&'static str] {
        DEMOS
    }

    async fn stage(&self) -> anyhow::Result<Box<dyn Stage>> {
        Ok(Box::new(demos::Live::start().await?))
    }
}

/// The statements of the PostgreSQL migrations, with their comments: the tables, their indexes
/// and the columns added later.
pub fn render_tables() -> String {
    let mut out = String::from(
        "Tables (idempotency-demo/migrations/postgres/; SQLite's alike, in its own types):\n",
    );
    for (file, migration) in MIGRATIONS {
        let _ = writeln!(out, "  -- {file}");
        for line in migration.lines() {
            let _ = writeln!(out, "  {line}");
        }
        out.truncate(out.trim_end().len());
        out.push_str("\n\n");
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

/// The events topic: its name from the service's code, and the lines of `src/app.rs` that create
/// it with its partitions (and the comment saying why that many).
pub fn render_topic() -> String {
    let mut out = super::indent(
        &format!(
            "Topic {} (idempotency_demo::service::TOPIC), fed by the outbox's relay, keyed by \
             payment id; src/app.rs creates it:",
            idempotency_demo::service::TOPIC
        ),
        "",
        "",
    );
    let lines: Vec<&str> = APP.lines().collect();
    let Some(at) = lines.iter().position(|l| l.contains(".ensure_topic(")) else {
        out.push_str("  (see idempotency-demo/src/app.rs)\n");
        return out;
    };
    // The statement starts after the last line before it that ends one, so its comment comes too.
    let start = lines[..at]
        .iter()
        .rposition(|l| {
            let l = l.trim();
            !l.starts_with("//") && (l.ends_with(';') || l.ends_with('{') || l.ends_with('}'))
        })
        .map_or(0, |i| i + 1);
    let end = (at + 1..lines.len())
        .find(|&i| lines[i].trim_end().ends_with(';'))
        .unwrap_or(at);
    let indent = lines[start..=end]
        .iter()
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    for line in &lines[start..=end] {
        let _ = writeln!(out, "  {}", &line[indent.min(line.len())..]);
    }
    out
}

/// The payment rate and the database cost per payment with the key check: the row of DESIGN.md
/// §8's table named "with the key check", its columns found by the header. `None` if the table
/// changed shape, in which case the walkthrough points at the section instead of printing a
/// stale number.
pub fn measured() -> Option<Measured> {
    let section = &DESIGN[DESIGN.find("## 8. Measured")?..];
    let mut lines = section
        .lines()
        .skip_while(|l| !(l.starts_with('|') && l.contains("payments/s")));
    let header = cells(lines.next()?);
    let rate = header.iter().position(|c| *c == "payments/s")?;
    let transactions = header
        .iter()
        .position(|c| c.contains("transactions per payment"))?;
    let row = lines
        .take_while(|l| l.starts_with('|'))
        .map(cells)
        .find(|row| row.first() == Some(&"with the key check"))?;
    let number = |cell: &str| cell.trim_matches('*').replace(',', "").parse::<f64>().ok();
    // The run's date, as the section writes it (2026-11-21).
    let date = section
        .split_whitespace()
        .map(|word| word.trim_end_matches([':', ',', '.']))
        .find(|word| {
            word.len() == 10
                && word.starts_with("20")
                && word.char_indices().all(|(i, c)| match i {
                    4 | 7 => c == '-',
                    _ => c.is_ascii_digit(),
                })
        })
        .map(|date| format!(", {date}"))
        .unwrap_or_default();
    Some(Measured {
        payments_per_sec: number(row.get(rate)?)?,
        transactions_per_payment: number(row.get(transactions)?)?,
        source: format!(
            "DESIGN.md §8, two servers, PostgreSQL and k6 on one 2-core VM, the provider \
             answering at once{date}"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WIDTH;

    /// The walkthrough as CI runs it: every phase in order, the estimates, the endpoints the
    /// running service serves, and every demonstration holding (on PostgreSQL and Kafka too,
    /// when `DATABASE_URL` and `KAFKA_BROKERS` are set).
    #[tokio::test(flavor = "multi_thread")]
    async fn all_prints_every_phase_in_order_and_every_claim_holds_live() {
        let out = &crate::all_checked("idempotency-demo").await;

        for estimate in [
            "116/s average, 1,000/s at peak",
            "10,000,000 rows, 7.0 GB",
            "3.0 GB a day, 7.7 TB",
            "6,000 transactions/s",
            "420.0 MB",
            "500.0 kB/s in",
            "2,000 at peak",
            "3 for payments.events",
            "722 payments/s",
        ] {
            assert!(out.contains(estimate), "{estimate} missing:\n{out}");
        }
        for line in ["POST    /v1/payments", "GET     /v1/payments/{id}"] {
            assert!(out.contains(line), "{line} missing:\n{out}");
        }
        assert!(out.contains("CREATE TABLE idempotency_keys ("), "{out}");
        assert!(
            out.contains(".ensure_topic(&settings.events_topic, 3)"),
            "{out}"
        );
        assert!(!out.contains("NOT HELD"), "{out}");
        // Prose is wrapped; the migrations' and app.rs's lines are printed as they are, and so
        // is a test's name, which cannot be broken.
        let prose = out.lines().filter(|l| {
            !MIGRATIONS.iter().any(|(_, m)| m.contains(l.trim()))
                && !APP.contains(l.trim())
                && !l.trim_start().starts_with("held by the test ")
        });
        assert!(
            prose.clone().all(|l| l.chars().count() <= WIDTH),
            "{:?}",
            prose.max_by_key(|l| l.chars().count())
        );
    }

    #[test]
    fn the_measured_payments_are_design_md_section_8s_row_with_the_key_check() {
        let measured = measured().expect("DESIGN.md §8's table is readable");

        assert!(
            measured.payments_per_sec > 100.0,
            "{}",
            measured.payments_per_sec
        );
        assert!(
            (5.0..8.0).contains(&measured.transactions_per_payment),
            "{}",
            measured.transactions_per_payment
        );
        assert!(measured.source.contains("2026-"), "{}", measured.source);
    }

    #[test]
    fn the_tables_are_the_migrations_statements() {
        let tables = render_tables();

        for table in ["clients", "idempotency_keys", "payments", "outbox"] {
            assert!(
                tables.contains(&format!("CREATE TABLE {table} (")),
                "{tables}"
            );
        }
        assert!(tables.contains("ADD COLUMN claimed_by"), "{tables}");
    }

    #[test]
    fn the_topic_is_created_where_app_rs_says_with_its_reason() {
        let topic = render_topic();

        assert!(topic.contains("payments.events"), "{topic}");
        assert!(topic.contains("// Three partitions"), "{topic}");
        assert!(
            topic.contains(".ensure_topic(&settings.events_topic, 3)"),
            "{topic}"
        );
    }
}
