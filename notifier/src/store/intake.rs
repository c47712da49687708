//! Intake's two statements, each run for a group of requests at once, on both engines.
//!
//! Every accepted notification must be on disk before its 202, and a transaction of its own per
//! notification made intake the costliest step of the pipeline: on SQLite, concurrent requests
//! queued for the one write lock (in SQLite's busy handler, which sleeps 1, 2, 5, 10… ms between
//! tries) and then each paid its own sync to disk; on PostgreSQL, each paid a statement and a
//! commit, most of the statements the pipeline ran. Once those were grouped, the read of the
//! request's user was most of what was left: one statement per notification, for one row
//! (`DESIGN.md` §10 counts them).
//!
//! Both go through `platform::group`: one task per statement takes every request waiting (up to
//! [`INTAKE_GROUP`], never waiting for more) and runs it once for all of them.
//! - [`IntakeWriter::insert`]: the engine stores the group's notifications in one transaction
//!   ([`InsertGroup`]): one commit for the group, and each request answered only once its group
//!   is committed, so "accepted" still means "on disk".
//! - [`UserReader::user`]: the engine reads the group's users in one statement ([`ReadUsers`]).
//!   Every read of a user goes this way (`GET /v1/users/{id}` too), not intake's alone.
//!
//! A group that fails for a reason one request could cause (a row the database refused, a
//! corrupt row) is run again one request at a time, so that request fails alone. One that fails
//! for a reason of the database's own (unreachable, out of connections) fails every request in it
//! at once: trying each alone would fail each again, one pool timeout after another, while every
//! request behind the group waited.
//!
//! The `database` fault switch is passed once per group ([`Faulty`]), not once per request: a
//! group is one transaction (or one statement), and a slow database slows each statement, so
//! under a latency switch the groups grow as they would under a slow database, rather than every
//! request waiting alone in front of them.

use std::{collections::HashMap, future::Future};

use async_trait::async_trait;
use platform::{
    fault::FaultSwitch,
    group::{Grouped, Serve},
    outbox::OutboxEvent,
};
use uuid::Uuid;

use super::{Inserted, StoreError, corrupt};
use crate::domain::{Notification, User, UserId};

/// The most requests intake serves with one statement (or one transaction).
const INTAKE_GROUP: usize = 64;

/// A notification to insert, with its message to the intake topic.
#[derive(Debug)]
pub struct IntakeRequest {
    pub notification: Notification,
    pub intake: OutboxEvent,
}

/// How an engine stores a group: every request's notification, its deliveries and its intake
/// message, in one transaction, all or nothing; a request whose idempotency key was used before
/// (in the table, or earlier in the group) writes nothing. Answers in the group's order.
#[async_trait]
pub trait InsertGroup: Send + Sync + 'static {
    async fn insert_group(&self, group: &[IntakeRequest]) -> Result<Vec<Inserted>, StoreError>;
}

/// How an engine reads a group of users: those of `ids` that exist, in any order, in one
/// statement.
#[async_trait]
pub trait ReadUsers: Send + Sync + 'static {
    async fn read_users(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError>;
}

/// An engine behind the `database` fault switch: each group passes it before its statements.
pub struct Faulty<E> {
    engine: E,
    switch: FaultSwitch,
}

impl<E> Faulty<E> {
    pub fn new(engine: E, switch: FaultSwitch) -> Self {
        Self { engine, switch }
    }
}

impl<E: std::fmt::Debug> std::fmt::Debug for Faulty<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faulty")
            .field("engine", &self.engine)
            .field("switch", &self.switch.get())
            .finish()
    }
}

#[async_trait]
impl<E: InsertGroup> InsertGroup for Faulty<E> {
    async fn insert_group(&self, group: &[IntakeRequest]) -> Result<Vec<Inserted>, StoreError> {
        self.switch.pass().await?;
        self.engine.insert_group(group).await
    }
}

#[async_trait]
impl<E: ReadUsers> ReadUsers for Faulty<E> {
    async fn read_users(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        self.switch.pass().await?;
        self.engine.read_users(ids).await
    }
}

/// Intake's writer: one task, and the way to it, which stops when the last clone of this is
/// dropped.
#[derive(Debug)]
pub struct IntakeWriter<E: InsertGroup>(Grouped<Writer<E>>);

impl<E: InsertGroup> IntakeWriter<E> {
    /// Must be called inside a Tokio runtime: it starts the writer task.
    pub fn start(engine: E) -> Self {
        Self(Grouped::start(INTAKE_GROUP, Writer(engine)))
    }

    /// Stores the notification in the next group; returns once that group is committed.
    pub async fn insert(
        &self,
        notification: &Notification,
        intake: &OutboxEvent,
    ) -> Result<Inserted, StoreError> {
        let request = IntakeRequest {
            notification: notification.clone(),
            intake: intake.clone(),
        };
        self.0.call(request).await?
    }
}

impl<E: InsertGroup> Clone for IntakeWriter<E> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

/// The store's reader of users: one task, as [`IntakeWriter`] is intake's writer.
#[derive(Debug)]
pub struct UserReader<E: ReadUsers>(Grouped<Reader<E>>);

impl<E: ReadUsers> UserReader<E> {
    /// Must be called inside a Tokio runtime: it starts the reader task.
    pub fn start(engine: E) -> Self {
        Self(Grouped::start(INTAKE_GROUP, Reader(engine)))
    }

    /// The user, read in the next group: what was committed before this call.
    pub async fn user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        self.0.call(id.clone()).await?
    }
}

impl<E: ReadUsers> Clone for UserReader<E> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

struct Writer<E>(E);

#[async_trait]
impl<E: InsertGroup> Serve for Writer<E> {
    type Request = IntakeRequest;
    type Answer = Result<Inserted, StoreError>;

    async fn serve(&self, group: &[IntakeRequest]) -> Vec<Self::Answer> {
        alone_if_it_fails(group, |group| self.0.insert_group(group)).await
    }
}

struct Reader<E>(E);

#[async_trait]
impl<E: ReadUsers> Serve for Reader<E> {
    type Request = UserId;
    type Answer = Result<Option<User>, StoreError>;

    async fn serve(&self, ids: &[UserId]) -> Vec<Self::Answer> {
        alone_if_it_fails(ids, |ids| async move {
            let found: HashMap<UserId, User> = (self.0.read_users(ids).await?)
                .into_iter()
                .map(|user| (user.id.clone(), user))
                .collect();
            // A user asked for twice in one group is read once.
            Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
        })
        .await
    }
}

/// Runs `run` for the whole group and, if that fails for a reason one request could cause, for
/// each request alone: that request must not fail the others with it (module docs).
async fn alone_if_it_fails<'a, R, A, F, Fut>(group: &'a [R], run: F) -> Vec<Result<A, StoreError>>
where
    F: Fn(&'a [R]) -> Fut,
    Fut: Future<Output = Result<Vec<A>, StoreError>>,
{
    match run(group).await {
        Ok(answers) => answers.into_iter().map(Ok).collect(),
        Err(err) if group.len() == 1 || !err.may_be_one_requests() => {
            group.iter().map(|_| Err(err.clone())).collect()
        }
        Err(_) => {
            let mut answers = Vec::with_capacity(group.len());
            for request in group.chunks(1) {
                answers.push(run(request).await.and_then(|answer| {
                    (answer.into_iter().next()).ok_or_else(|| corrupt("no answer for a request"))
                }));
            }
            answers
        }
    }
}

/// The idempotency keys of the requests in `group` that were not inserted: repeats, whose first
/// notifications the engine looks up (after its insert, so a first notification earlier in the
/// same group is found).
pub fn repeated_keys<'a>(group: &'a [IntakeRequest], inserted: &[Uuid]) -> Vec<&'a str> {
    group
        .iter()
        .filter(|request| !inserted.contains(&request.notification.id))
        .filter_map(|request| request.notification.idempotency_key.as_deref())
        .collect()
}

/// The group's answers, in its order: new if inserted, else the repeat of the first notification
/// with its key.
pub fn answers(
    group: &[IntakeRequest],
    inserted: &[Uuid],
    first: &HashMap<String, Uuid>,
) -> Result<Vec<Inserted>, StoreError> {
    group
        .iter()
        .map(|IntakeRequest { notification, .. }| {
            if inserted.contains(&notification.id) {
                return Ok(Inserted::New);
            }
            notification
                .idempotency_key
                .as_ref()
                .and_then(|key| first.get(key))
                .map(|id| Inserted::Existing(*id))
                .ok_or_else(|| {
                    corrupt(format!(
                        "notification {} neither inserted nor a repeat",
                        notification.id
                    ))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    };

    use super::*;

    fn user(id: &str) -> User {
        User {
            id: UserId::parse(id).unwrap(),
            email: Some(format!("{id}@example.com")),
            phone: None,
            push_tokens: Vec::new(),
            webhook_url: None,
            opted_out: Vec::new(),
        }
    }

    /// Knows `ada` and `grace`, answers in an order of its own, and fails as told.
    #[derive(Default)]
    struct Users {
        /// Fails a read of more than one user with this.
        group_error: Mutex<Option<StoreError>>,
        /// Fails any read that asks for this user with a corrupt row.
        corrupt: Option<&'static str>,
        reads: AtomicUsize,
    }

    #[async_trait]
    impl ReadUsers for Arc<Users> {
        async fn read_users(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            if ids.len() > 1
                && let Some(err) = self.group_error.lock().unwrap().clone()
            {
                return Err(err);
            }
            if ids.iter().any(|id| Some(id.as_str()) == self.corrupt) {
                return Err(corrupt("a user row"));
            }
            Ok(["grace", "ada"]
                .into_iter()
                .filter(|known| ids.iter().any(|id| id.as_str() == *known))
                .map(user)
                .collect())
        }
    }

    fn ids(ids: &[&str]) -> Vec<UserId> {
        ids.iter().map(|id| UserId::parse(id).unwrap()).collect()
    }

    fn names(answers: &[Result<Option<User>, StoreError>]) -> Vec<Result<Option<&str>, ()>> {
        answers
            .iter()
            .map(|answer| match answer {
                Ok(user) => Ok(user.as_ref().map(|user| user.id.as_str())),
                Err(_) => Err(()),
            })
            .collect()
    }

    #[tokio::test]
    async fn each_request_of_a_group_gets_its_own_user_whatever_order_the_rows_come_in() {
        let reader = Reader(Arc::new(Users::default()));

        let answers = reader.serve(&ids(&["ada", "ghost", "grace", "ada"])).await;

        assert_eq!(
            names(&answers),
            [
                Ok(Some("ada")),
                Ok(None),
                Ok(Some("grace")),
                Ok(Some("ada"))
            ]
        );
    }

    #[tokio::test]
    async fn a_group_failed_by_one_request_is_read_again_one_request_at_a_time() {
        let users = Arc::new(Users {
            corrupt: Some("grace"),
            ..Users::default()
        });
        let reader = Reader(users.clone());

        let answers = reader.serve(&ids(&["ada", "grace", "ghost"])).await;

        assert_eq!(names(&answers), [Ok(Some("ada")), Err(()), Ok(None)]);
        assert_eq!(
            users.reads.load(Ordering::Relaxed),
            4,
            "the group, then each alone"
        );
    }

    #[tokio::test]
    async fn a_group_failed_by_the_database_fails_every_request_at_once() {
        let users = Arc::new(Users::default());
        *users.group_error.lock().unwrap() = Some(sqlx::Error::PoolTimedOut.into());
        let reader = Reader(users.clone());

        let answers = reader.serve(&ids(&["ada", "grace", "ghost"])).await;

        assert_eq!(names(&answers), [Err(()), Err(()), Err(())]);
        assert_eq!(
            users.reads.load(Ordering::Relaxed),
            1,
            "no request is tried alone against a database that is not there"
        );
    }
}
