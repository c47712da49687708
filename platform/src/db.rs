//! The relational database: PostgreSQL when `DATABASE_URL` names one, an embedded SQLite file
//! otherwise.
//!
//! [`Database`] is an enum, not a trait object, because the two engines speak different SQL
//! (placeholders, `RETURNING`, upserts, time types) and a system writes one store module per
//! engine anyway: it matches on the variant once, where it builds its store, and from then on
//! works through its own `Arc<dyn …Store>`.
//!
//! Several systems can share one PostgreSQL database: each gets its own schema (`url_shortener`,
//! `rate_limiter`, …) through the connection's `search_path`, so their tables and their
//! `_sqlx_migrations` bookkeeping never meet. Tests get a fresh schema each (see `testing`).
//!
//! SQLite runs in WAL mode with `synchronous=FULL`: a commit that returned is on disk, which is
//! what "nothing accepted is ever lost" asks of the embedded default; readers never block the one
//! writer, and `busy_timeout` makes concurrent writers queue rather than fail.
//!
//! A [`LockFile`] beside a SQLite file says which process holds it: the embedded topics take one
//! for as long as they are open (one process per file), so that a second process is told who
//! has the file, not only that it is busy. A system's database takes one only while it migrates
//! (see [`Database::migrate`]): several processes may share it, as several instances share a
//! PostgreSQL database.

use std::{
    fmt,
    fs::{File, OpenOptions, TryLockError},
    io::{self, Read, Seek, Write},
    path::Path,
    str::FromStr,
    time::Duration,
};

use sqlx::{
    Connection, Executor, PgPool, SqlitePool,
    migrate::{MigrateError, Migrator},
    postgres::{PgConnectOptions, PgConnection, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use crate::config::{DatabaseConfig, env_or};

/// A connection pool to one of the two engines.
#[derive(Debug, Clone)]
pub enum Database {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// A system's migrations for both engines, embedded with `sqlx::migrate!`.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    pub postgres: &'static Migrator,
    pub sqlite: &'static Migrator,
}

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("cannot connect to {target}")]
    Connect {
        target: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create the data directory {path}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0:?} is not a valid schema name (use lowercase letters, digits and _)")]
    SchemaName(String),
    #[error("migrations failed")]
    Migrate(#[from] MigrateError),
    #[error("cannot lock {path} to migrate it")]
    MigrationLock {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Query(#[from] sqlx::Error),
}

impl Database {
    /// Connects, creating the PostgreSQL schema or the SQLite file if needed.
    ///
    /// `schema` is the system's name in snake case (`url_shortener`); SQLite ignores it, since
    /// every system has its own file.
    pub async fn connect(config: &DatabaseConfig, schema: &str) -> Result<Self, DatabaseError> {
        let max_connections: u32 = env_or("DATABASE_MAX_CONNECTIONS", 10).unwrap_or(10);
        match config {
            DatabaseConfig::Postgres { url } => {
                let connect_error = |source| DatabaseError::Connect {
                    target: config.to_string(),
                    source,
                };
                if !is_valid_schema_name(schema) {
                    return Err(DatabaseError::SchemaName(schema.to_owned()));
                }
                let options = PgConnectOptions::from_str(url).map_err(connect_error)?;
                create_schema(&options, schema)
                    .await
                    .map_err(connect_error)?;
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections)
                    // Fail fast when the database is gone, rather than queueing requests for the
                    // default 30 seconds: the caller gets a 503 (the systems answer a pool that
                    // cannot give a connection as the database being unavailable) within 3 s.
                    .acquire_timeout(Duration::from_secs(3))
                    .connect_with(options.options([("search_path", schema)]))
                    .await
                    .map_err(connect_error)?;
                Ok(Self::Postgres(pool))
            }
            DatabaseConfig::Sqlite { path } => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| DatabaseError::DataDir {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true);
                let pool = SqlitePoolOptions::new()
                    .max_connections(max_connections)
                    .connect_with(options)
                    .await
                    .map_err(|source| DatabaseError::Connect {
                        target: config.to_string(),
                        source,
                    })?;
                Ok(Self::Sqlite(pool))
            }
        }
    }

    /// Applies the migrations for this engine. Safe to run from several instances at once: they
    /// take turns, and the ones after the first find nothing left to do.
    ///
    /// On PostgreSQL sqlx takes an advisory lock. On SQLite it takes none, and SQLite's single
    /// writer is not enough: two processes starting together on one data directory both read
    /// that a migration is missing, both apply it, and the second fails ("table api_keys already
    /// exists"). The lock file beside the database (`<file>.lock`) makes them take turns. The
    /// rejected alternative, one exclusive transaction around the whole run, is not possible:
    /// sqlx's migrator opens a transaction of its own for each migration.
    pub async fn migrate(&self, migrations: Migrations) -> Result<(), DatabaseError> {
        match self {
            Self::Postgres(pool) => migrations.postgres.run(pool).await?,
            Self::Sqlite(pool) => {
                let file = pool.connect_options().get_filename().to_owned();
                let _turn = LockFile::acquire(&file).await.map_err(|source| {
                    DatabaseError::MigrationLock {
                        path: file.display().to_string(),
                        source,
                    }
                })?;
                migrations.sqlite.run(pool).await?
            }
        }
        Ok(())
    }

    /// A round trip to the database, for readiness checks.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        match self {
            Self::Postgres(pool) => pool.execute("SELECT 1").await.map(drop),
            Self::Sqlite(pool) => pool.execute("SELECT 1").await.map(drop),
        }
    }

    /// Which engine and where, from the pool's own options (so it is true of the database
    /// actually connected, and holds no password): `PostgreSQL at 127.0.0.1:5432/postgres`,
    /// `SQLite at data/url-shortener.sqlite`. For `/readyz` and banners.
    pub fn describe(&self) -> String {
        match self {
            Self::Postgres(pool) => {
                let options = pool.connect_options();
                format!(
                    "PostgreSQL at {}:{}/{}",
                    options.get_host(),
                    options.get_port(),
                    options.get_database().unwrap_or_default()
                )
            }
            Self::Sqlite(pool) => format!(
                "SQLite at {}",
                pool.connect_options().get_filename().display()
            ),
        }
    }

    /// `"postgres"` or `"sqlite"`, for logs and banners.
    pub fn engine(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgres",
            Self::Sqlite(_) => "sqlite",
        }
    }

    pub async fn close(&self) {
        match self {
            Self::Postgres(pool) => pool.close().await,
            Self::Sqlite(pool) => pool.close().await,
        }
    }
}

/// A lock file beside a SQLite file (`topics.sqlite.lock` beside `topics.sqlite`) that one
/// process holds at a time, and that says which process that is.
///
/// The operating system holds the lock ([`File::try_lock`]: `flock` on Unix, `LockFileEx` on
/// Windows) and lets go of it when its holder exits, however it exits, so a lock is never stale.
/// The holder writes its process id and program name into the file, which is what lets the next
/// process say *who* holds it. Either alone falls short: a pid file without a lock outlives a
/// `kill -9` and names a dead process (or, once the id is reused, a stranger); SQLite's own lock
/// says that the file is busy, not by whom ("database is locked"). Asking the operating system
/// instead (`/proc/locks`, `fuser`) would name the holder of SQLite's lock too, but only on
/// Linux, and by parsing text meant for people.
///
/// The file stays behind when its holder exits; what it says matters only while it is locked.
#[derive(Debug)]
pub struct LockFile {
    /// Open, and so locked, for as long as this value lives.
    _file: File,
}

/// Why a [`LockFile`] was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the lock file is held by {0}")]
    Held(Holder),
    #[error("the lock file: {0}")]
    Io(#[from] io::Error),
}

/// Who holds a [`LockFile`], as far as it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// The process whose id and program name the lock file holds.
    Process { pid: u32, program: String },
    /// A process that has not written its id yet, or that holds the SQLite file without a lock
    /// file (a `sqlite3` shell).
    Unknown,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Process { pid, program } if program.is_empty() => write!(f, "process {pid}"),
            Self::Process { pid, program } => write!(f, "process {pid} ({program})"),
            Self::Unknown => f.write_str("another process"),
        }
    }
}

impl LockFile {
    /// Takes the lock beside `of` if it is free, or says who holds it; never waits.
    pub fn try_acquire(of: &Path) -> Result<Self, LockError> {
        let mut file = open_lock_file(of)?;
        match file.try_lock() {
            Ok(()) => Ok(Self::holding(file)?),
            Err(TryLockError::WouldBlock) => Err(LockError::Held(Holder::read(&mut file))),
            Err(TryLockError::Error(err)) => Err(err.into()),
        }
    }

    /// Takes the lock beside `of`, waiting for its holder to let go.
    pub async fn acquire(of: &Path) -> io::Result<Self> {
        match Self::try_acquire(of) {
            Ok(lock) => return Ok(lock),
            Err(LockError::Io(err)) => return Err(err),
            Err(LockError::Held(holder)) => {
                tracing::info!(file = %of.display(), %holder, "waiting for the file's lock");
            }
        }
        let of = of.to_owned();
        // The operating system's wait blocks a thread: not one of the runtime's.
        tokio::task::spawn_blocking(move || {
            let file = open_lock_file(&of)?;
            file.lock()?;
            Self::holding(file)
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Writes this process into the lock file it has just locked.
    fn holding(mut file: File) -> io::Result<Self> {
        let program = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.file_name()?.to_string_lossy().into_owned()))
            .unwrap_or_default();
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{} {program}", std::process::id())?;
        Ok(Self { _file: file })
    }
}

impl Holder {
    /// What a held lock file says. On Windows the holder's lock keeps others from reading it,
    /// and the holder is [`Holder::Unknown`].
    fn read(file: &mut File) -> Self {
        let mut text = String::new();
        if file.read_to_string(&mut text).is_err() {
            return Self::Unknown;
        }
        let (pid, program) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
        match pid.parse() {
            Ok(pid) => Self::Process {
                pid,
                program: program.to_owned(),
            },
            Err(_) => Self::Unknown,
        }
    }
}

/// Opens (or creates) the lock file beside `of`, never truncating it: what it says belongs to
/// its holder until the lock is taken.
fn open_lock_file(of: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(of.with_added_extension("lock"))
}

/// A time as SQLite stores it in sdlab's tables: INTEGER milliseconds since the epoch (SQLite has
/// no time type, and integers sort and compare as times should).
pub fn unix_millis(at: time::OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Runs `delete` (which deletes at most the number of rows it is given and says how many it
/// deleted) in batches of `batch` until one deletes fewer; returns how many in all. A long
/// backlog is never one long statement holding its locks, or SQLite's one writer: the retention
/// sweeps (expired idempotency keys, published outbox rows) go this way.
pub async fn delete_in_batches<E, F, Fut>(batch: u32, mut delete: F) -> Result<u64, E>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Result<u64, E>>,
{
    let mut deleted = 0;
    loop {
        let done = delete(batch).await?;
        deleted += done;
        if done < u64::from(batch) {
            return Ok(deleted);
        }
    }
}

/// The inverse of [`unix_millis`].
pub fn from_unix_millis(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .expect("stored timestamps are in range")
}

/// Whether `err` is a unique or primary-key violation, the one database error that callers turn
/// into a domain error (an alias that is taken, a key that exists) at the call site.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}

fn is_valid_schema_name(schema: &str) -> bool {
    !schema.is_empty()
        && schema.len() <= 63
        && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

async fn create_schema(options: &PgConnectOptions, schema: &str) -> Result<(), sqlx::Error> {
    let mut conn = PgConnection::connect_with(options).await?;
    // The name was checked by `is_valid_schema_name`, so quoting it is enough.
    let sql = format!(r#"CREATE SCHEMA IF NOT EXISTS "{schema}""#);
    let result = conn.execute(sqlx::AssertSqlSafe(sql)).await;
    conn.close().await?;
    match result {
        Ok(_) => Ok(()),
        // Two instances starting together can both miss the schema and race to create it.
        Err(err) if is_unique_violation(&err) => Ok(()),
        Err(err) => Err(err),
    }
}

/// Drops a schema and everything in it (used by the test harness to clean up after itself).
pub async fn drop_schema(url: &str, schema: &str) -> Result<(), DatabaseError> {
    if !is_valid_schema_name(schema) {
        return Err(DatabaseError::SchemaName(schema.to_owned()));
    }
    let options = PgConnectOptions::from_str(url)?;
    let mut conn = PgConnection::connect_with(&options).await?;
    let sql = format!(r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#);
    conn.execute(sqlx::AssertSqlSafe(sql)).await?;
    conn.close().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(is_valid_schema_name("url_shortener"));
        assert!(is_valid_schema_name("test_3f2a"));
        assert!(!is_valid_schema_name("Url"));
        assert!(!is_valid_schema_name(r#"x"; DROP TABLE links; --"#));
        assert!(!is_valid_schema_name(""));
    }

    #[test]
    fn a_held_lock_file_names_the_process_that_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let of = dir.path().join("file.sqlite");
        let _held = LockFile::try_acquire(&of).unwrap();

        // A second open of the file, which the operating system locks out as it would another
        // process's.
        let second = LockFile::try_acquire(&of);

        let Err(LockError::Held(Holder::Process { pid, .. })) = second else {
            panic!("{second:?}");
        };
        assert_eq!(pid, std::process::id());
    }

    #[test]
    fn a_lock_file_is_free_again_once_its_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let of = dir.path().join("file.sqlite");
        drop(LockFile::try_acquire(&of).unwrap());

        LockFile::try_acquire(&of).unwrap();
    }

    /// Two processes starting together on one data directory, as two pools on one file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn instances_migrating_one_embedded_database_at_once_all_succeed() {
        static MIGRATOR: Migrator = sqlx::migrate!("./migrations/topics");
        let migrations = Migrations {
            postgres: &MIGRATOR,
            sqlite: &MIGRATOR,
        };
        // Without the lock, each round failed four times in five (one migration, two instances).
        for _ in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            let config = DatabaseConfig::Sqlite {
                path: dir.path().join("system.sqlite"),
            };
            let one = Database::connect(&config, "system").await.unwrap();
            let other = Database::connect(&config, "system").await.unwrap();

            let (one, other) = tokio::join!(one.migrate(migrations), other.migrate(migrations));

            one.unwrap();
            other.unwrap();
        }
    }

    #[test]
    fn a_holder_is_shown_by_process_id_and_program() {
        let holder = Holder::Process {
            pid: 4242,
            program: "sdlab".into(),
        };

        assert_eq!(holder.to_string(), "process 4242 (sdlab)");
        assert_eq!(Holder::Unknown.to_string(), "another process");
    }

    #[tokio::test]
    async fn an_embedded_database_is_created_in_a_missing_directory_and_answers() {
        let dir = tempfile::tempdir().unwrap();
        let config = DatabaseConfig::Sqlite {
            path: dir.path().join("nested/deeper/system.sqlite"),
        };

        let db = Database::connect(&config, "system").await.unwrap();

        db.ping().await.unwrap();
        assert_eq!(db.engine(), "sqlite");
        assert!(dir.path().join("nested/deeper/system.sqlite").exists());
    }
}
