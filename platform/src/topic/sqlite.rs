//! The embedded transport, durable: the in-memory topics of `memory.rs`, written through to a
//! SQLite file before anything is acknowledged, and read back from it when the file is opened.
//!
//! This is what [`connect`](super::connect) returns when `KAFKA_BROKERS` is unset. Without it, a
//! restart would lose every record published and not yet processed, and every group's commits,
//! which a system that promises "accepted means delivered" (the notifier) cannot afford.
//!
//! Memory stays the index: consumers read the `Vec`s of `memory.rs` and wait on its `Notify`, and
//! never touch the file; the file is written, and read only once, at open. The alternative, a
//! consumer that polls the file for new rows, would add a query per `recv` and a polling delay
//! to every delivery, for nothing, since one process owns the file (see below) and so knows of
//! every write as it happens.
//!
//! What is stored: each topic with its partition count, each record at its offset, each group's
//! committed offsets (`migrations/topics`). Group *members* are not: like a Kafka consumer, a
//! member does not outlive its process, and the next one resumes after the group's last commit.
//!
//! # Writes
//! One connection writes, behind an async mutex, and that mutex is what keeps offsets in the file
//! and in memory the same: a publish holds it from choosing its offsets (the ends of the
//! partitions in memory) through the file's commit to appending to memory. Readers see a record
//! only after the file has it, so nothing a consumer acts on can vanish in a restart. The write
//! runs in a task of its own, so a caller that stops waiting (a cancelled `publish`) cannot leave
//! the file holding a record that memory lacks, which would make the next publish reuse its
//! offset.
//!
//! The file runs in WAL mode with `synchronous=NORMAL`: a publish returns once its record is in
//! the file, written through to the operating system, so it survives the process crashing or
//! being killed, but the last writes may be lost if the machine itself goes down. That is the
//! promise a Kafka broker's acknowledgement makes too: Kafka does not fsync each write either
//! (`log.flush.interval.messages` is unlimited by default) and counts on replicas to survive a
//! machine, which an embedded transport does not have. `synchronous=FULL`, which the systems'
//! own databases use (`db.rs`), would fsync every publish and every commit, at several times the
//! cost of a single publish (measured in the notifier's `DESIGN.md` §10, with `publish_cost`
//! below). The line is drawn there on purpose: a system's
//! database keeps what it *accepted*, and a topic holds what can be published again from there
//! (an outbox row stays unpublished until the publish has returned).
//!
//! A publish is a task spawn, one `INSERT` and a write to the operating system. A `publish_all`
//! is one `INSERT` for the whole batch, its rows bound as one JSON array (bytes as hex, turned
//! back by SQLite's `unhex`), all or nothing without a transaction around it: sqlx runs the
//! connection on a thread of its own, so every statement costs two thread switches, and a
//! statement per record made a record in a batch cost almost what one on its own did. The outbox
//! relay publishes its batches this way. A commit is one small transaction (a row per partition
//! it covers, so a batch commit costs about what a single one does). Concurrent publishes queue
//! for the one writer rather than sharing a statement (group commit): at these rates that has
//! not been worth the extra machinery.
//!
//! # One process per file
//! A second process opening the file fails at start-up with [`TopicError::InUse`], instead of
//! appending at offsets the first process is also using and never seeing the first process's
//! records. Two locks say so. The [`LockFile`] beside it (`topics.sqlite.lock`) is taken first,
//! without waiting, and holds the owner's process id, so that the error names the process to
//! stop. SQLite's exclusive locking mode then keeps out whatever takes no lock file (a `sqlite3`
//! shell), reported as "another process". Within a process,
//! [`SqliteTopics::open`] returns the transport already open on that path, so systems that run
//! in one process (the lab) share their topics, as they would share a Kafka cluster. Systems in
//! separate processes share topics through Kafka.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, LazyLock, Weak},
    time::Duration,
};

use async_trait::async_trait;
use futures::TryStreamExt;
use sqlx::{
    Connection, SqliteConnection,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteLockingMode, SqliteSynchronous},
};
use tokio::sync::Mutex;

use super::{
    Consumer, Delivery, Lag, MemoryTopics, Message, Producer, TopicError, Topics,
    last_per_partition,
};
use crate::db::{Holder, LockError, LockFile};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/topics");

/// See the module docs for why not `Full`.
const SYNCHRONOUS: SqliteSynchronous = SqliteSynchronous::Normal;

/// How long opening waits for another connection to let go of the file: long enough for a
/// transport that was just dropped in this process to close it (a restart in a test), short
/// enough to report a file held without a lock file promptly (another `sdlab` is reported at
/// once, by its lock file).
const BUSY_TIMEOUT: Duration = Duration::from_secs(3);

/// The durable embedded transport. Clones, and every [`SqliteTopics::open`] of the same path in
/// this process, share the same topics.
#[derive(Clone)]
pub struct SqliteTopics {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// What consumers read. Nothing but [`Inner`]'s write path appends to it.
    memory: MemoryTopics,
    /// The one connection to the file, and the writers' lock (see the module docs).
    file: Mutex<SqliteConnection>,
    /// Held while the file is open here; what tells a second process which one to stop.
    _owner: LockFile,
}

/// The transports open in this process, by absolute path. Weak, so that dropping the last handle
/// closes the file, and opening it again reads it again (a restart, in tests).
static OPEN: LazyLock<Mutex<HashMap<PathBuf, Weak<Inner>>>> = LazyLock::new(Default::default);

impl SqliteTopics {
    /// Opens the transport stored at `path`, creating the file and its directory if needed, or
    /// returns the one this process has open there already.
    pub async fn open(path: &Path) -> Result<Self, TopicError> {
        let path = std::path::absolute(path)?;
        // Held across the open, so that two systems starting together open the file once.
        let mut open = OPEN.lock().await;
        open.retain(|_, inner| inner.strong_count() > 0);
        if let Some(inner) = open.get(&path).and_then(Weak::upgrade) {
            return Ok(Self { inner });
        }
        let inner = Arc::new(Inner::open(path.clone(), SYNCHRONOUS).await?);
        open.insert(path, Arc::downgrade(&inner));
        Ok(Self { inner })
    }

    /// Whether this process has the transport at `path` open: something still holds it.
    pub async fn is_open(path: &Path) -> bool {
        let Ok(path) = std::path::absolute(path) else {
            return false;
        };
        OPEN.lock()
            .await
            .get(&path)
            .is_some_and(|inner| inner.strong_count() > 0)
    }
}

impl std::fmt::Debug for SqliteTopics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteTopics")
            .field("path", &self.inner.path)
            .field("memory", &self.inner.memory)
            .finish()
    }
}

#[derive(sqlx::FromRow)]
struct TopicRow {
    name: String,
    partitions: i64,
}

#[derive(sqlx::FromRow)]
struct RecordRow {
    topic: String,
    partition_index: i64,
    record_offset: i64,
    key: Vec<u8>,
    payload: Vec<u8>,
    headers: Vec<u8>,
}

#[derive(sqlx::FromRow)]
struct CommitRow {
    group_name: String,
    topic: String,
    partition_index: i64,
    next_offset: i64,
}

impl TryFrom<RecordRow> for Delivery {
    type Error = TopicError;

    fn try_from(row: RecordRow) -> Result<Self, TopicError> {
        let headers = serde_json::from_slice(&row.headers).map_err(|err| {
            TopicError::Damaged(format!("the headers of a record in {}: {err}", row.topic))
        })?;
        Ok(Delivery {
            topic: row.topic,
            partition: row.partition_index as i32,
            offset: row.record_offset,
            key: row.key,
            payload: row.payload,
            headers,
        })
    }
}

/// Reads the whole file into a new [`MemoryTopics`].
async fn load(file: &mut SqliteConnection) -> Result<MemoryTopics, TopicError> {
    let memory = MemoryTopics::new();
    // An exclusive transaction, so that from here on this process holds the file's lock, rather
    // than counting on the migrations to have written (a process that only read the file would
    // hold a shared lock, which a second process could share).
    let mut load = file.begin_with("BEGIN EXCLUSIVE").await?;

    let topics: Vec<TopicRow> = sqlx::query_as("SELECT name, partitions FROM topics")
        .fetch_all(&mut *load)
        .await?;
    for topic in topics {
        let partitions = u32::try_from(topic.partitions).map_err(|_| {
            TopicError::Damaged(format!(
                "topic {} has {} partitions",
                topic.name, topic.partitions
            ))
        })?;
        memory.ensure_topic(&topic.name, partitions).await?;
    }

    let mut records = sqlx::query_as::<_, RecordRow>(
        "SELECT topic, partition_index, record_offset, key, payload, headers FROM records \
         ORDER BY topic, partition_index, record_offset",
    )
    .fetch(&mut *load);
    while let Some(row) = records.try_next().await? {
        memory.restore_record(row.try_into()?)?;
    }
    drop(records);

    let commits: Vec<CommitRow> =
        sqlx::query_as("SELECT group_name, topic, partition_index, next_offset FROM commits")
            .fetch_all(&mut *load)
            .await?;
    for commit in commits {
        memory.restore_commit(
            &commit.group_name,
            &commit.topic,
            commit.partition_index as i32,
            commit.next_offset,
        );
    }

    load.commit().await?;
    Ok(memory)
}

impl Inner {
    async fn open(path: PathBuf, synchronous: SqliteSynchronous) -> Result<Self, TopicError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let owner = LockFile::try_acquire(&path).map_err(|err| match err {
            LockError::Held(holder) => TopicError::InUse {
                file: path.clone(),
                holder,
            },
            LockError::Io(err) => err.into(),
        })?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            // Set before the journal mode (sqlx orders the pragmas so): in exclusive mode SQLite
            // keeps the WAL index in this connection's memory rather than in a file shared with
            // other processes, and holds the file's lock from the first write until it closes.
            .locking_mode(SqliteLockingMode::Exclusive)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let or_in_use = |err: sqlx::Error| in_use(err, &path);
        let mut file = SqliteConnection::connect_with(&options)
            .await
            .map_err(or_in_use)?;
        MIGRATOR.run(&mut file).await?;

        let memory = load(&mut file).await.map_err(|err| match err {
            TopicError::Sqlite(err) => or_in_use(err),
            err => err,
        })?;
        Ok(Self {
            path,
            memory,
            file: Mutex::new(file),
            _owner: owner,
        })
    }

    /// Writes `messages` to the file in one statement, then appends them to memory, where
    /// consumers see them (see the module docs on why in that order, under the writers' lock).
    async fn append(&self, messages: Vec<Message>) -> Result<(), TopicError> {
        let mut file = self.file.lock().await;
        let placed = self.memory.placements(&messages)?;
        let rows: Vec<serde_json::Value> = messages
            .iter()
            .zip(placed)
            .map(|(message, (partition, offset))| {
                let headers = serde_json::to_vec(&message.headers).expect("headers serialize");
                serde_json::json!([
                    message.topic,
                    partition,
                    offset,
                    hex::encode(&message.key),
                    hex::encode(&message.payload),
                    hex::encode(&headers),
                ])
            })
            .collect();
        // One statement for the batch, all or nothing without a transaction around it, the rows
        // bound as one JSON array: a statement per record cost two thread switches each (sqlx
        // runs the connection on a thread of its own).
        sqlx::query(
            "INSERT INTO records \
             (topic, partition_index, record_offset, key, payload, headers) \
             SELECT value ->> 0, value ->> 1, value ->> 2, unhex(value ->> 3), \
               unhex(value ->> 4), unhex(value ->> 5) \
             FROM json_each(?1)",
        )
        .bind(serde_json::Value::Array(rows).to_string())
        .execute(&mut *file)
        .await?;
        self.memory.publish_all(messages).await
    }
}

/// `err`, or [`TopicError::InUse`] if it says another connection holds the file's lock: a
/// process without a lock file, since one with a lock file was stopped at that.
fn in_use(err: sqlx::Error, path: &Path) -> TopicError {
    const SQLITE_BUSY: i64 = 5;
    let busy = err
        .as_database_error()
        .and_then(|err| err.code())
        .and_then(|code| code.parse::<i64>().ok())
        // Extended result codes keep the primary code in their low byte.
        .is_some_and(|code| code & 0xff == SQLITE_BUSY);
    if busy {
        TopicError::InUse {
            file: path.to_owned(),
            holder: Holder::Unknown,
        }
    } else {
        err.into()
    }
}

#[async_trait]
impl Producer for SqliteTopics {
    async fn publish(&self, message: Message) -> Result<(), TopicError> {
        self.publish_all(vec![message]).await
    }

    /// One transaction: all of `messages` are written, or none.
    async fn publish_all(&self, messages: Vec<Message>) -> Result<(), TopicError> {
        let inner = self.inner.clone();
        // A task of its own, which finishes even if this caller stops waiting (module docs).
        tokio::spawn(async move { inner.append(messages).await })
            .await
            .expect("the write task panicked, or its runtime is shutting down")
    }

    fn backend(&self) -> &'static str {
        "embedded"
    }
}

#[async_trait]
impl Topics for SqliteTopics {
    async fn ensure_topic(&self, name: &str, partitions: u32) -> Result<(), TopicError> {
        if partitions == 0 {
            return Err(TopicError::NoPartitions);
        }
        let mut file = self.inner.file.lock().await;
        sqlx::query("INSERT INTO topics (name, partitions) VALUES (?1, ?2) ON CONFLICT DO NOTHING")
            .bind(name)
            .bind(partitions)
            .execute(&mut *file)
            .await?;
        self.inner.memory.ensure_topic(name, partitions).await
    }

    fn producer(&self) -> Arc<dyn Producer> {
        Arc::new(self.clone())
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> Result<Box<dyn Consumer>, TopicError> {
        let member = self.inner.memory.subscribe(group, topics).await?;
        Ok(Box::new(SqliteConsumer {
            inner: self.inner.clone(),
            group: group.to_owned(),
            member,
        }))
    }

    fn backend(&self) -> &'static str {
        "embedded"
    }
}

/// A member of the in-memory group whose commits are written to the file first.
struct SqliteConsumer {
    inner: Arc<Inner>,
    group: String,
    member: Box<dyn Consumer>,
}

#[async_trait]
impl Consumer for SqliteConsumer {
    async fn recv(&self) -> Result<Delivery, TopicError> {
        self.member.recv().await
    }

    async fn commit(&self, delivery: &Delivery) -> Result<(), TopicError> {
        self.commit_batch(std::slice::from_ref(delivery)).await
    }

    /// Every partition's offset in one transaction of the file, then in memory.
    async fn commit_batch(&self, deliveries: &[Delivery]) -> Result<(), TopicError> {
        let last = last_per_partition(deliveries);
        if last.is_empty() {
            return Ok(());
        }
        {
            let mut file = self.inner.file.lock().await;
            let mut transaction = file.begin().await?;
            for delivery in &last {
                // Never backwards, as in memory.
                sqlx::query(
                    "INSERT INTO commits (group_name, topic, partition_index, next_offset) \
                     VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (group_name, topic, partition_index) \
                     DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)",
                )
                .bind(&self.group)
                .bind(&delivery.topic)
                .bind(delivery.partition)
                .bind(delivery.offset + 1)
                .execute(&mut *transaction)
                .await?;
            }
            transaction.commit().await?;
        }
        for delivery in last {
            self.member.commit(delivery).await?;
        }
        Ok(())
    }

    async fn pause(&self, delivery: &Delivery) -> Result<(), TopicError> {
        self.member.pause(delivery).await
    }

    async fn resume(&self, topic: &str, partition: i32) -> Result<(), TopicError> {
        self.member.resume(topic, partition).await
    }

    /// The index's commits are the file's: each is written to both, the file first.
    async fn lag(&self) -> Result<Vec<Lag>, TopicError> {
        self.member.lag().await
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeSet, time::Instant};

    use super::*;
    use crate::topic::conformance;

    /// A path in a new directory, which must outlive every open of the file.
    fn new_file() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("topics.sqlite");
        (dir, path)
    }

    async fn recv(consumer: &dyn Consumer) -> Delivery {
        tokio::time::timeout(Duration::from_secs(10), consumer.recv())
            .await
            .expect("a guard against a hang")
            .unwrap()
    }

    async fn recv_n(consumer: &dyn Consumer, n: usize) -> Vec<Delivery> {
        let mut deliveries = Vec::new();
        for _ in 0..n {
            deliveries.push(recv(consumer).await);
        }
        deliveries
    }

    fn payloads(deliveries: &[Delivery]) -> Vec<&str> {
        deliveries
            .iter()
            .map(|delivery| std::str::from_utf8(&delivery.payload).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn the_durable_transport_behaves_like_every_transport() {
        let (_dir, path) = new_file();
        conformance::all(&SqliteTopics::open(&path).await.unwrap()).await;
    }

    #[tokio::test]
    async fn records_come_back_after_a_restart_where_they_were_with_their_headers() {
        let (_dir, path) = new_file();
        let topics = SqliteTopics::open(&path).await.unwrap();
        topics.ensure_topic("t", 3).await.unwrap();
        let messages = (0..12)
            .map(|i| {
                Message::new("t", format!("key-{}", i % 5), format!("record-{i}"))
                    .with_header("event_id", format!("e-{i}"))
                    .with_header("empty", "")
            })
            // Every byte value, under an empty key: the file holds bytes, not text.
            .chain([Message::new("t", "", (0..=255).collect::<Vec<u8>>())])
            .collect();
        topics.publish_all(messages).await.unwrap();
        let consumer = topics.subscribe("before", &["t"]).await.unwrap();
        let before = in_place(recv_n(&*consumer, 13).await);
        drop((consumer, topics));

        let topics = SqliteTopics::open(&path).await.unwrap();
        let consumer = topics.subscribe("after", &["t"]).await.unwrap();
        let after = in_place(recv_n(&*consumer, 13).await);

        assert_eq!(after, before);
    }

    /// Deliveries in partition and offset order, which is where they are in the file.
    fn in_place(mut deliveries: Vec<Delivery>) -> Vec<Delivery> {
        deliveries.sort_by_key(|delivery| (delivery.partition, delivery.offset));
        deliveries
    }

    #[tokio::test]
    async fn after_a_restart_a_group_resumes_after_its_last_commit() {
        let (_dir, path) = new_file();
        let topics = SqliteTopics::open(&path).await.unwrap();
        topics.ensure_topic("t", 1).await.unwrap();
        let messages = (1..=4)
            .map(|i| Message::new("t", "k", format!("record-{i}")))
            .collect();
        topics.publish_all(messages).await.unwrap();
        let consumer = topics.subscribe("g", &["t"]).await.unwrap();
        let received = recv_n(&*consumer, 4).await;
        consumer.commit(&received[1]).await.unwrap();
        drop((consumer, topics));

        let topics = SqliteTopics::open(&path).await.unwrap();
        let consumer = topics.subscribe("g", &["t"]).await.unwrap();
        let redelivered = recv_n(&*consumer, 2).await;

        assert_eq!(payloads(&redelivered), ["record-3", "record-4"]);
    }

    #[tokio::test]
    async fn publishing_after_a_restart_continues_the_partition_where_it_ended() {
        let (_dir, path) = new_file();
        let topics = SqliteTopics::open(&path).await.unwrap();
        topics.ensure_topic("t", 1).await.unwrap();
        topics.publish(Message::new("t", "k", "a")).await.unwrap();
        topics.publish(Message::new("t", "k", "b")).await.unwrap();
        drop(topics);

        let topics = SqliteTopics::open(&path).await.unwrap();
        topics.publish(Message::new("t", "k", "c")).await.unwrap();
        let consumer = topics.subscribe("g", &["t"]).await.unwrap();
        let received = recv_n(&*consumer, 3).await;

        assert_eq!(payloads(&received), ["a", "b", "c"]);
        let offsets: Vec<i64> = received.iter().map(|delivery| delivery.offset).collect();
        assert_eq!(offsets, [0, 1, 2]);
    }

    #[tokio::test]
    async fn a_topic_keeps_its_partition_count_across_a_restart() {
        let (_dir, path) = new_file();
        let topics = SqliteTopics::open(&path).await.unwrap();
        topics.ensure_topic("t", 3).await.unwrap();
        drop(topics);

        let topics = SqliteTopics::open(&path).await.unwrap();
        topics.ensure_topic("t", 1).await.unwrap();
        let messages = (0..30)
            .map(|i| Message::new("t", format!("key-{i}"), "v"))
            .collect();
        topics.publish_all(messages).await.unwrap();
        let consumer = topics.subscribe("g", &["t"]).await.unwrap();
        let partitions: BTreeSet<i32> = recv_n(&*consumer, 30)
            .await
            .iter()
            .map(|delivery| delivery.partition)
            .collect();

        assert_eq!(partitions, BTreeSet::from([0, 1, 2]));
    }

    #[tokio::test]
    async fn every_open_of_a_file_in_one_process_shares_its_topics() {
        let (_dir, path) = new_file();
        let one = SqliteTopics::open(&path).await.unwrap();
        let other = SqliteTopics::open(&path).await.unwrap();
        one.ensure_topic("t", 1).await.unwrap();

        other
            .publish(Message::new("t", "k", "from the other system"))
            .await
            .unwrap();

        let consumer = one.subscribe("g", &["t"]).await.unwrap();
        assert_eq!(recv(&*consumer).await.payload, b"from the other system");
    }

    #[tokio::test]
    async fn a_file_that_another_process_holds_is_refused_naming_the_process_and_what_to_do() {
        let (_dir, path) = new_file();
        let _held = SqliteTopics::open(&path).await.unwrap();

        // Past this process's table of open files, as another process would be.
        let opened = Inner::open(std::path::absolute(&path).unwrap(), SYNCHRONOUS).await;

        let err = opened.err().expect("a second open is refused");
        let TopicError::InUse { holder, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(
            *holder,
            Holder::Process {
                pid: std::process::id(),
                program: program_name(),
            }
        );
        let message = err.to_string();
        let dir = path.parent().unwrap().display().to_string();
        assert!(
            message.contains(&format!("data directory {dir}")),
            "{message}"
        );
        assert!(
            message.contains(&format!("process {}", std::process::id())),
            "{message}"
        );
        assert!(message.contains("Stop that process"), "{message}");
        assert!(message.contains("SDLAB_DATA_DIR"), "{message}");
    }

    #[tokio::test]
    async fn an_open_file_keeps_out_a_process_that_takes_no_lock_file() {
        let (_dir, path) = new_file();
        // Created, closed, and opened again: an open that creates nothing must take the lock too.
        drop(SqliteTopics::open(&path).await.unwrap());
        wait_until_closed(&path).await;
        let _held = SqliteTopics::open(&path).await.unwrap();

        // A `sqlite3` shell, which knows nothing of the lock file (and does not wait for a lock).
        let shell = SqliteConnectOptions::new()
            .filename(&path)
            .busy_timeout(Duration::ZERO);
        let mut shell = SqliteConnection::connect_with(&shell).await.unwrap();
        let read = sqlx::query("SELECT count(*) FROM records")
            .execute(&mut shell)
            .await;

        assert!(read.is_err(), "the shell read the file while it was open");
    }

    #[tokio::test]
    async fn a_file_held_without_a_lock_file_is_refused_as_another_process_s() {
        let (_dir, path) = new_file();
        drop(SqliteTopics::open(&path).await.unwrap());
        wait_until_closed(&path).await;
        // A `sqlite3` shell in the middle of a write: SQLite's lock, no lock file.
        let mut shell =
            SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path))
                .await
                .unwrap();
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut shell)
            .await
            .unwrap();

        let opened = SqliteTopics::open(&path).await;

        assert!(
            matches!(
                opened,
                Err(TopicError::InUse {
                    holder: Holder::Unknown,
                    ..
                })
            ),
            "{:?}",
            opened.err()
        );
    }

    /// The name a lock file gives this test binary.
    fn program_name() -> String {
        let exe = std::env::current_exe().unwrap();
        exe.file_name().unwrap().to_string_lossy().into_owned()
    }

    #[tokio::test]
    async fn a_batch_with_an_unknown_topic_writes_nothing() {
        let (_dir, path) = new_file();
        let topics = SqliteTopics::open(&path).await.unwrap();
        topics.ensure_topic("t", 1).await.unwrap();

        let published = topics
            .publish_all(vec![
                Message::new("t", "k", "first"),
                Message::new("nowhere", "k", "second"),
            ])
            .await;
        topics
            .publish(Message::new("t", "k", "after"))
            .await
            .unwrap();
        drop(topics);

        assert!(matches!(published, Err(TopicError::UnknownTopic(_))));
        let topics = SqliteTopics::open(&path).await.unwrap();
        let consumer = topics.subscribe("g", &["t"]).await.unwrap();
        let delivery = recv(&*consumer).await;
        assert_eq!((delivery.offset, delivery.payload), (0, b"after".to_vec()));
    }

    #[tokio::test]
    async fn a_partition_with_a_missing_record_is_reported_as_damaged() {
        let (_dir, path) = new_file();
        let topics = SqliteTopics::open(&path).await.unwrap();
        topics.ensure_topic("t", 1).await.unwrap();
        let messages = (0..3)
            .map(|i| Message::new("t", "k", format!("{i}")))
            .collect();
        topics.publish_all(messages).await.unwrap();
        drop(topics);
        wait_until_closed(&path).await;
        let mut file = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path))
            .await
            .unwrap();
        sqlx::query("DELETE FROM records WHERE record_offset = 1")
            .execute(&mut file)
            .await
            .unwrap();
        file.close().await.unwrap();

        let opened = SqliteTopics::open(&path).await;

        assert!(
            matches!(opened, Err(TopicError::Damaged(_))),
            "{:?}",
            opened.err()
        );
    }

    /// Waits for the connection of a dropped transport to let go of the file (a raw connection,
    /// unlike `open`, does not wait for the lock).
    async fn wait_until_closed(path: &Path) {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(BUSY_TIMEOUT);
        let mut file = SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut file)
            .await
            .unwrap();
        sqlx::query("COMMIT").execute(&mut file).await.unwrap();
        file.close().await.unwrap();
    }

    /// The cost of a publish, in the notifier's `DESIGN.md` §10. Release build, on an idle machine:
    /// `cargo test -p platform --release --lib publish_cost -- --ignored --nocapture`.
    #[tokio::test(flavor = "multi_thread")]
    #[ignore = "a measurement, not a check"]
    async fn publish_cost() {
        const RECORDS: usize = 10_000;
        for synchronous in [SqliteSynchronous::Normal, SqliteSynchronous::Full] {
            let (_dir, path) = new_file();
            let inner = Inner::open(path, synchronous).await.unwrap();
            let topics = SqliteTopics {
                inner: Arc::new(inner),
            };
            topics.ensure_topic("t", 3).await.unwrap();
            let message = |i: usize| Message::new("t", format!("key-{i}"), vec![b'x'; 100]);

            let started = Instant::now();
            for i in 0..RECORDS {
                topics.publish(message(i)).await.unwrap();
            }
            let one_at_a_time = started.elapsed();

            let started = Instant::now();
            for batch in 0..RECORDS / 100 {
                let messages = (0..100).map(|i| message(batch * 100 + i)).collect();
                topics.publish_all(messages).await.unwrap();
            }
            let by_100 = started.elapsed();

            let per_second = |elapsed: Duration| RECORDS as f64 / elapsed.as_secs_f64();
            println!(
                "synchronous={synchronous:?}: one at a time {one_at_a_time:.2?} ({:.0}/s, {:.0?} \
                 each), publish_all by 100 {by_100:.2?} ({:.0}/s)",
                per_second(one_at_a_time),
                one_at_a_time / RECORDS as u32,
                per_second(by_100),
            );
        }
    }
}
