//! What the shortener's walkthrough reads from the shortener itself rather than from its
//! WALKTHROUGH.toml: the endpoints of its OpenAPI document, the tables of its migration, and what
//! DESIGN.md §8 measured. Each is compiled in or asked of the code, so the walkthrough cannot
//! drift from them.

use std::fmt::Write as _;

use anyhow::Context;

use super::estimate::Measured;

const DESIGN: &str = include_str!("../../../url-shortener/DESIGN.md");
pub(super) const MIGRATION: &str =
    include_str!("../../../url-shortener/migrations/postgres/20261121000001_links.sql");

/// One operation of the OpenAPI document.
#[derive(Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub method: String,
    pub path: String,
    pub summary: String,
}

/// The shortener's OpenAPI document, as its own `/openapi.json` serves it: the service is built
/// with `Application::build` on a throwaway SQLite file and the in-process cache, asked once,
/// and stopped. Slower than calling `http::routes` (which wants a whole `AppState`), but it is
/// the very document a client gets, so nothing here can list an endpoint the service lacks.
pub async fn endpoints() -> anyhow::Result<Vec<Endpoint>> {
    let dir = tempfile::tempdir().context("making a directory for the throwaway database")?;
    let mut settings = url_shortener::Settings::for_tests();
    settings.backends.database = platform::config::DatabaseConfig::Sqlite {
        path: dir.path().join("url-shortener.sqlite"),
    };
    let app = url_shortener::Application::build(settings).await?;
    let url = format!("http://{}/openapi.json", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let document = async {
        reqwest::get(&url)
            .await?
            .error_for_status()?
            .json::<serde_json::Value>()
            .await
    }
    .await
    .with_context(|| format!("reading {url}"));
    let _ = stop.send(());
    server.await.context("the shortener panicked")??;
    Ok(operations(&document?))
}

/// Every method of every path, in the document's order (paths sorted, as utoipa writes them).
fn operations(document: &serde_json::Value) -> Vec<Endpoint> {
    let mut endpoints = Vec::new();
    let Some(paths) = document["paths"].as_object() else {
        return endpoints;
    };
    for (path, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        for (method, operation) in item {
            if operation.get("responses").is_none() {
                continue; // `parameters` and other path-level fields
            }
            endpoints.push(Endpoint {
                method: method.to_uppercase(),
                path: path.clone(),
                summary: operation["summary"].as_str().unwrap_or("").to_owned(),
            });
        }
    }
    endpoints
}

pub fn render_endpoints(endpoints: &[Endpoint]) -> String {
    let mut out = String::from("Endpoints (from the shortener's /openapi.json):\n");
    for e in endpoints {
        let _ = writeln!(out, "  {:<7} {:<24} {}", e.method, e.path, e.summary);
    }
    out
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

fn cells(line: &str) -> Vec<&str> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(str::trim)
        .collect()
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
