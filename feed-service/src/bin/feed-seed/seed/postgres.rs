//! The seed into PostgreSQL: one transaction, each table by `COPY … FROM STDIN`, with the foreign
//! keys and secondary indexes dropped for the load and made again after it; then `VACUUM
//! (ANALYZE)`.
//!
//! - `COPY` streams rows in PostgreSQL's text format with no statement per row or per chunk. The
//!   alternative, multi-row `INSERT`s (or `INSERT … SELECT FROM unnest($1, $2, …)`), parses and
//!   plans a statement per chunk and sends every value as a bind parameter.
//! - **Constraints and indexes after the data**, the recipe of the PostgreSQL manual ("Populating
//!   a Database": remove foreign keys, remove indexes). A foreign key is checked by a trigger
//!   firing a lookup per row, and `follows_by_followee` takes its rows in random order: loading
//!   the follows bare and indexing them afterwards, in one sort, is far faster than checking and
//!   indexing them row by row (DESIGN.md §10, "How long it takes"). Re-adding a foreign key
//!   validates the whole table in one join, so nothing goes unchecked. What is
//!   dropped is read from the catalog (`pg_get_constraintdef`, `pg_get_indexdef`) and made again
//!   from its own definition: the migrations stay the only place the schema is written, and DDL
//!   is transactional here, so a seed that fails leaves the schema as it was. Primary keys and
//!   unique constraints stay: the rows go in in key order, so their indexes only append.
//! - `VACUUM (ANALYZE)` afterwards (outside the transaction, where `VACUUM` must run): the
//!   statistics, without which the planner would plan the home page's first queries for the
//!   tables' old, empty sizes until autovacuum noticed, and the visibility map, without which an
//!   index-only scan (the celebrities' merge reads `posts_by_author` only) still visits the
//!   heap for every row it returns, until autovacuum gets there.

use std::fmt::Write as _;

use sqlx::{AssertSqlSafe, PgPool, Postgres, Transaction};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{CHUNK, Graph, Plan, SeedError, Written, follow_rows, user_rows};

/// A timestamp as `COPY` reads it.
fn timestamp(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).expect("a time in range formats")
}

/// Text-format escaping: the column and row separators and the escape character itself.
fn escaped(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['\\', '\t', '\n', '\r']) {
        return text.into();
    }
    text.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
        .into()
}

/// Copies `rows` into `into` (`table (columns)`); `line` writes one row, tab-separated, without
/// its newline. Sent CHUNK rows a message.
async fn copy_all<R>(
    tx: &mut Transaction<'static, Postgres>,
    into: &str,
    rows: impl Iterator<Item = R>,
    line: impl Fn(&mut String, R),
) -> Result<u64, sqlx::Error> {
    let started = std::time::Instant::now();
    let statement = format!("COPY {into} FROM STDIN");
    let mut copy = tx.copy_in_raw(&statement).await?;
    let mut buffer = String::new();
    let mut rows = rows.peekable();
    let mut copied = 0;
    while rows.peek().is_some() {
        buffer.clear();
        for row in rows.by_ref().take(CHUNK) {
            line(&mut buffer, row);
            buffer.push('\n');
            copied += 1;
        }
        copy.send(buffer.as_bytes()).await?;
    }
    copy.finish().await?;
    tracing::info!(into, rows = copied, elapsed = ?started.elapsed(), "copied");
    Ok(copied)
}

/// The tables the seed fills, children last.
const TABLES: &str = "ARRAY['users', 'follows', 'posts']::regclass[]";

/// Statements that drop the foreign keys and the secondary indexes (neither a primary key nor a
/// unique constraint's) of the seeded tables, and those that make them again, as the catalog
/// defines them now.
async fn constraints_and_indexes(
    tx: &mut Transaction<'static, Postgres>,
) -> Result<(Vec<String>, Vec<String>), sqlx::Error> {
    let foreign_keys: Vec<(String, String)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname), \
                format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass, conname, \
                       pg_get_constraintdef(oid)) \
         FROM pg_constraint WHERE contype = 'f' AND conrelid = ANY({TABLES}) ORDER BY conname"
    )))
    .fetch_all(&mut **tx)
    .await?;
    let indexes: Vec<(String, String)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT format('DROP INDEX %s', indexrelid::regclass), pg_get_indexdef(indexrelid) \
         FROM pg_index \
         WHERE indrelid = ANY({TABLES}) AND NOT indisprimary \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = indexrelid) \
         ORDER BY indexrelid"
    )))
    .fetch_all(&mut **tx)
    .await?;
    // Foreign keys go first and come back last.
    let (drop_keys, add_keys): (Vec<_>, Vec<_>) = foreign_keys.into_iter().unzip();
    let (drop_indexes, add_indexes): (Vec<_>, Vec<_>) = indexes.into_iter().unzip();
    Ok((
        drop_keys.into_iter().chain(drop_indexes).collect(),
        add_indexes.into_iter().chain(add_keys).collect(),
    ))
}

async fn execute_all(
    tx: &mut Transaction<'static, Postgres>,
    statements: Vec<String>,
) -> Result<(), sqlx::Error> {
    for statement in statements {
        let started = std::time::Instant::now();
        sqlx::query(AssertSqlSafe(statement.clone()))
            .execute(&mut **tx)
            .await?;
        tracing::info!(statement, elapsed = ?started.elapsed(), "executed");
    }
    Ok(())
}

pub(super) async fn write(
    pool: &PgPool,
    plan: &Plan,
    graph: &Graph,
    reset: bool,
) -> Result<Written, SeedError> {
    let mut tx = pool.begin().await?;
    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&mut *tx)
        .await?;
    if existing > 0 {
        if !reset {
            return Err(SeedError::NotEmpty(existing as u64));
        }
        sqlx::query("TRUNCATE outbox, posts, follows, users")
            .execute(&mut *tx)
            .await?;
    }
    // Index builds sort in memory up to this (the default, 64 MB, spills 2 million follows).
    sqlx::query("SET LOCAL maintenance_work_mem = '256MB'")
        .execute(&mut *tx)
        .await?;
    let (drop, make) = constraints_and_indexes(&mut tx).await?;
    execute_all(&mut tx, drop).await?;

    let created_at = timestamp(graph.created_at);
    let users = copy_all(
        &mut tx,
        "users (id, handle, token_hash, created_at, follower_count, last_read_at)",
        user_rows(plan, graph),
        |out, user| {
            let last_read = user
                .last_read_at
                .map_or_else(|| r"\N".to_owned(), timestamp);
            let _ = write!(
                out,
                "{}\t{}\t{}\t{created_at}\t{}\t{last_read}",
                user.id, user.handle, user.token_hash, user.follower_count
            );
        },
    )
    .await?;
    let follows = copy_all(
        &mut tx,
        "follows (follower_id, followee_id, created_at)",
        follow_rows(graph),
        |out, (follower, followee)| {
            let _ = write!(out, "{follower}\t{followee}\t{created_at}");
        },
    )
    .await?;
    let posts = copy_all(
        &mut tx,
        "posts (id, author_id, text, created_at)",
        graph.posts(plan),
        |out, post| {
            let _ = write!(
                out,
                "{}\t{}\t{}\t{}",
                post.id,
                post.author,
                escaped(&post.text),
                timestamp(post.created_at)
            );
        },
    )
    .await?;
    execute_all(&mut tx, make).await?;
    tx.commit().await?;
    sqlx::query("VACUUM (ANALYZE) users, follows, posts")
        .execute(pool)
        .await?;
    Ok(Written {
        users,
        follows,
        posts,
    })
}
