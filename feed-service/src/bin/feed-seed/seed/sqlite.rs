//! The seed into SQLite: one transaction, multi-row `INSERT`s of [`CHUNK`] rows, with the foreign
//! keys checked once at the end and the secondary indexes built after the data.
//!
//! - One statement per row would be a prepared-statement call per row through sqlx's SQLite
//!   worker thread; 500 rows a statement cut those calls 500-fold, and the full-chunk statement
//!   is prepared once and reused (sqlx caches it by its text), so every call after the first only
//!   binds and steps. One transaction, so the file is synced once, at the commit, rather than per
//!   row as `synchronous=FULL` would do for each autocommitted insert.
//! - The same recipe as PostgreSQL's (`postgres.rs`): SQLite checks a foreign key by a lookup
//!   per row, and `follows_by_followee` takes its rows in random order, so the load runs on a
//!   connection of its own with `foreign_keys` off (a pragma that only changes outside a
//!   transaction), without the secondary indexes (read from `sqlite_master` and made again from
//!   their own SQL), and `PRAGMA foreign_key_check` runs over the result before the commit: a
//!   dangling row fails the seed. The connection is closed afterwards rather than returned to
//!   the pool with its pragmas changed.

use platform::db::unix_millis;
use sqlx::{
    AssertSqlSafe, Connection, Sqlite, SqliteConnection, SqlitePool, Transaction, query::Query,
    sqlite::SqliteArguments,
};

use super::{CHUNK, Graph, Plan, SeedError, Written, follow_rows, user_rows};

type Statement = Query<'static, Sqlite, SqliteArguments>;

/// `(?, ?, …), (?, ?, …), …`: `rows` groups of `columns` placeholders.
fn values(columns: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

/// Inserts `rows` into `into` (`table (columns)`), CHUNK at a time; `bind` adds one row's values
/// to a statement.
async fn insert_all<R>(
    tx: &mut Transaction<'_, Sqlite>,
    into: &str,
    columns: usize,
    rows: impl Iterator<Item = R>,
    bind: impl Fn(Statement, R) -> Statement,
) -> Result<u64, sqlx::Error> {
    let started = std::time::Instant::now();
    let full = format!("INSERT INTO {into} VALUES {}", values(columns, CHUNK));
    let mut rows = rows.peekable();
    let mut inserted = 0;
    while rows.peek().is_some() {
        let chunk: Vec<R> = rows.by_ref().take(CHUNK).collect();
        let sql = match chunk.len() {
            CHUNK => full.clone(),
            short => format!("INSERT INTO {into} VALUES {}", values(columns, short)),
        };
        inserted += chunk.len() as u64;
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for row in chunk {
            query = bind(query, row);
        }
        query.execute(&mut **tx).await?;
    }
    tracing::info!(into, rows = inserted, elapsed = ?started.elapsed(), "inserted");
    Ok(inserted)
}

pub(super) async fn write(
    pool: &SqlitePool,
    plan: &Plan,
    graph: &Graph,
    reset: bool,
) -> Result<Written, SeedError> {
    let mut connection = pool.acquire().await?.detach();
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(&mut connection)
        .await?;
    // Pages of the indexes being built stay in memory: 256 MB, against the default 2 MB.
    sqlx::query("PRAGMA cache_size = -262144")
        .execute(&mut connection)
        .await?;
    let written = write_on(&mut connection, plan, graph, reset).await;
    connection.close().await?;
    written
}

async fn write_on(
    connection: &mut SqliteConnection,
    plan: &Plan,
    graph: &Graph,
    reset: bool,
) -> Result<Written, SeedError> {
    // IMMEDIATE: the write lock now, waiting for it as any writer does. A deferred transaction
    // would read first and upgrade at its first write, and in WAL mode that upgrade fails at
    // once ("database is locked") if another connection (the running service's outbox relay,
    // say) wrote since the read began.
    let mut tx = connection.begin_with("BEGIN IMMEDIATE").await?;
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, sql FROM sqlite_master \
         WHERE type = 'index' AND tbl_name IN ('users', 'follows', 'posts') AND sql IS NOT NULL",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (name, _) in &indexes {
        sqlx::query(AssertSqlSafe(format!("DROP INDEX \"{name}\"")))
            .execute(&mut *tx)
            .await?;
    }

    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&mut *tx)
        .await?;
    if existing > 0 {
        if !reset {
            return Err(SeedError::NotEmpty(existing as u64));
        }
        // With no foreign keys enforced and no WHERE, SQLite's truncate optimisation drops each
        // table's pages whole instead of deleting its rows one by one.
        for table in ["outbox", "posts", "follows", "users"] {
            sqlx::query(AssertSqlSafe(format!("DELETE FROM {table}")))
                .execute(&mut *tx)
                .await?;
        }
    }

    let created_at = unix_millis(graph.created_at);
    let users = insert_all(
        &mut tx,
        "users (id, handle, token_hash, created_at, follower_count, last_read_at)",
        6,
        user_rows(plan, graph),
        |query, user| {
            query
                .bind(user.id)
                .bind(user.handle)
                .bind(user.token_hash)
                .bind(created_at)
                .bind(user.follower_count)
                .bind(user.last_read_at.map(unix_millis))
        },
    )
    .await?;
    let follows = insert_all(
        &mut tx,
        "follows (follower_id, followee_id, created_at)",
        3,
        follow_rows(graph),
        |query, (follower, followee)| query.bind(follower).bind(followee).bind(created_at),
    )
    .await?;
    let posts = insert_all(
        &mut tx,
        "posts (id, author_id, text, created_at)",
        4,
        graph.posts(plan),
        |query, post| {
            query
                .bind(post.id.to_db())
                .bind(post.author.to_db())
                .bind(post.text)
                .bind(unix_millis(post.created_at))
        },
    )
    .await?;

    for (name, sql) in indexes {
        let started = std::time::Instant::now();
        sqlx::query(AssertSqlSafe(sql)).execute(&mut *tx).await?;
        tracing::info!(index = name, elapsed = ?started.elapsed(), "built");
    }
    let started = std::time::Instant::now();
    let dangling: Vec<(String, i64)> =
        sqlx::query_as("SELECT \"table\", rowid FROM pragma_foreign_key_check")
            .fetch_all(&mut *tx)
            .await?;
    tracing::info!(elapsed = ?started.elapsed(), "foreign keys checked");
    if let Some((table, _)) = dangling.first() {
        return Err(SeedError::Dangling(format!(
            "{} rows, the first in {table}",
            dangling.len()
        )));
    }
    tx.commit().await?;
    Ok(Written {
        users,
        follows,
        posts,
    })
}
