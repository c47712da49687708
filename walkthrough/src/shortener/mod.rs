//! The URL shortener as a [`Subject`]: what its walkthrough reads from the shortener itself
//! rather than from its WALKTHROUGH.toml (the tables of its migration, what DESIGN.md §8
//! measured), its estimate ([`estimate`]) and its live demonstrations ([`demos`]).

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

pub const TEXT: &str = include_str!("../../../url-shortener/WALKTHROUGH.toml");
const DESIGN: &str = include_str!("../../../url-shortener/DESIGN.md");
pub(crate) const MIGRATION: &str =
    include_str!("../../../url-shortener/migrations/postgres/20261121000001_links.sql");
pub use self::demos::DEMOS;

pub struct Shortener;

#[async_trait(?Send)]
impl Subject for Shortener {
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
        render_tables()
    }

    fn demos(&self) -> &'static [&'static str] {
        DEMOS
    }

    async fn stage(&self) -> anyhow::Result<Box<dyn Stage>> {
        Ok(Box::new(demos::Live::start().await?))
    }
}

/// The `CREATE TABLE` statements of the PostgreSQL migration, with their column comments.
pub fn render_tables() -> String {
    let mut out = String::from(
        "Tables (url-shortener/migrations/postgres/20261121000001_links.sql; SQLite's alike):\n",
    );
    let mut in_table = false;
    for line in MIGRATION.lines() {
        in_table |= line.starts_with("CREATE TABLE");
        if in_table {
            let _ = writeln!(out, "  {line}");
        }
        if in_table && line.starts_with(");") {
            in_table = false;
            out.push('\n');
        }
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

/// The cached redirect's throughput on one core in the default configuration: the first row of
/// DESIGN.md §8's table, found by its header. `None` if the table changed shape, in which case
/// the walkthrough points at the section instead of printing a stale number.
pub fn measured() -> Option<Measured> {
    let section = &DESIGN[DESIGN.find("## 8. Measured")?..];
    let mut lines = section
        .lines()
        .skip_while(|l| !l.starts_with("| backends |"));
    let header: Vec<&str> = cells(lines.next()?);
    let column = header.iter().position(|c| *c == "redirect req/s")?;
    let row = cells(lines.nth(1)?); // past the |---| line
    Some(Measured {
        redirects_per_core: row.get(column)?.parse().ok()?,
        source: format!("DESIGN.md §8, {}", row.first()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_measured_redirect_is_design_md_section_8s_default_row() {
        let measured = measured().expect("DESIGN.md §8's table is readable");

        assert!(
            measured.redirects_per_core > 1_000,
            "{}",
            measured.redirects_per_core
        );
        assert!(
            measured.source.contains("(the default)"),
            "{}",
            measured.source
        );
    }

    #[test]
    fn the_tables_are_the_migrations_three() {
        let tables = render_tables();

        for table in ["api_keys", "links", "id_allocator"] {
            assert!(
                tables.contains(&format!("CREATE TABLE {table} (")),
                "{tables}"
            );
        }
        assert!(!tables.contains("INSERT"), "{tables}");
    }
}
