//! The embedded SQLite store: the PostgreSQL store's statements, with timestamps as INTEGER
//! milliseconds and UUIDs and JSON as TEXT.
//!
//! A batch is one transaction of a few statements, as on PostgreSQL: the batch's rows are bound as
//! one JSON array and read back as rows with `json_each` (`UPDATE … FROM json_each(…) RETURNING`,
//! `INSERT … SELECT … FROM json_each(…)`). SQLite runs in this process, so a statement costs no
//! network round trip, but it does cost two thread switches (sqlx runs each connection on a
//! thread of its own), and a statement per row made those the largest part of the embedded
//! pipeline's time; the transaction's commit (a sync to disk, `platform::db`) is paid once per
//! batch.
//!
//! Intake commits in groups (`intake.rs`): a group is one transaction of at most four statements
//! whatever its size, with one sync to disk; the users a group of requests names are one read.

use std::collections::HashMap;

use async_trait::async_trait;
use platform::{
    db::{from_unix_millis, unix_millis},
    fault::FaultSwitch,
    outbox::{self, OutboxEvent},
};
use serde_json::{Value, json};
use sqlx::{SqliteConnection, SqlitePool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    Attempted, Claim, Claimed, DeadLetter, Decision, Inserted, JoinedUser, NotificationRecord,
    NotificationStore, Outcome, StoreError, UserRow, Work, WorkColumns, assemble, channel,
    channels_json, corrupt,
    intake::{self, Faulty, InsertGroup, IntakeRequest, IntakeWriter, ReadUsers, UserReader},
    recorded_attempt, routed_attempt, status,
};
use crate::domain::{Channel, Notification, User, UserId};

/// A notification, its deliveries' statuses and its user, from `notifications n LEFT JOIN users u`.
const WORK_COLUMNS: &str = "n.id, n.user_id, n.template, n.data, n.priority, n.idempotency_key, \
     n.created_at, \
     (SELECT group_concat(d.channel || '=' || d.status, ',') FROM deliveries d \
      WHERE d.notification_id = n.id) AS statuses, \
     u.id AS known_user, u.email, u.phone, u.push_tokens, u.webhook_url, u.opted_out";

#[derive(sqlx::FromRow)]
struct WorkRow {
    id: String,
    user_id: String,
    template: String,
    data: String,
    priority: String,
    idempotency_key: Option<String>,
    created_at: i64,
    statuses: Option<String>,
    #[sqlx(flatten)]
    user: JoinedUser,
}

impl WorkRow {
    fn into_work(self) -> Result<Work, StoreError> {
        WorkColumns {
            id: uuid(&self.id)?,
            user_id: self.user_id,
            template: self.template,
            data: self.data,
            priority: self.priority,
            idempotency_key: self.idempotency_key,
            created_at: from_unix_millis(self.created_at),
            statuses: self.statuses,
            user: self.user.columns(),
        }
        .into_work()
    }
}

/// A list as the JSON array `json_each` reads.
fn json_list<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    serde_json::to_string(
        &items
            .into_iter()
            .map(|item| item.to_string())
            .collect::<Vec<_>>(),
    )
    .expect("strings serialise")
}

/// The notifications `ids`, on `conn` (inside a transaction, or not).
async fn work_on(conn: &mut SqliteConnection, ids: &[Uuid]) -> Result<Vec<Work>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<WorkRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {WORK_COLUMNS} FROM notifications n LEFT JOIN users u ON u.id = n.user_id \
         WHERE n.id IN (SELECT value FROM json_each(?1))"
    )))
    .bind(json_list(ids))
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(WorkRow::into_work).collect()
}

const DEAD_LETTER_COLUMNS: &str =
    "id, notification_id, channel, error, attempts, created_at, redriven_at";

type DeadLetterRow = (String, String, String, String, i64, i64, Option<i64>);

fn dead_letter(row: DeadLetterRow) -> Result<DeadLetter, StoreError> {
    let (id, notification_id, name, error, attempts, created_at, redriven_at) = row;
    Ok(DeadLetter {
        id: uuid(&id)?,
        notification_id: uuid(&notification_id)?,
        channel: channel(&name)?,
        error,
        attempts: attempts.clamp(0, i64::from(u32::MAX)) as u32,
        created_at: from_unix_millis(created_at),
        redriven_at: redriven_at.map(from_unix_millis),
    })
}

fn uuid(text: &str) -> Result<Uuid, StoreError> {
    Uuid::try_parse(text).map_err(|_| corrupt(format!("uuid {text:?}")))
}

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    intake: IntakeWriter<Faulty<SqlitePool>>,
    users: UserReader<Faulty<SqlitePool>>,
}

impl SqliteStore {
    /// Must be called inside a Tokio runtime: it starts intake's writer and reader of users,
    /// whose groups pass `database`, the fault switch, once each.
    pub fn new(pool: SqlitePool, database: FaultSwitch) -> Self {
        Self {
            intake: IntakeWriter::start(Faulty::new(pool.clone(), database.clone())),
            users: UserReader::start(Faulty::new(pool.clone(), database)),
            pool,
        }
    }
}

#[async_trait]
impl ReadUsers for SqlitePool {
    async fn read_users(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        let rows: Vec<UserRow> = sqlx::query_as(
            "SELECT id, email, phone, push_tokens, webhook_url, opted_out \
             FROM users WHERE id IN (SELECT value FROM json_each(?1))",
        )
        .bind(json_list(ids.iter().map(UserId::as_str)))
        .fetch_all(self)
        .await?;
        rows.into_iter().map(UserRow::into_user).collect()
    }
}

#[async_trait]
impl InsertGroup for SqlitePool {
    /// One transaction of at most four statements, whatever the group's size: the notifications
    /// (`DO NOTHING` skips a row whose idempotency key is taken, in the table or earlier in the
    /// group), the deliveries and the outbox rows of those inserted, then the first
    /// notifications of any repeated keys.
    async fn insert_group(&self, group: &[IntakeRequest]) -> Result<Vec<Inserted>, StoreError> {
        let notifications: Vec<Value> = group
            .iter()
            .map(|request| {
                let n = &request.notification;
                json!([
                    n.id.to_string(),
                    n.user_id,
                    n.template,
                    serde_json::to_string(&n.data).expect("data serialises"),
                    n.priority.as_str(),
                    n.idempotency_key,
                    unix_millis(n.created_at),
                ])
            })
            .collect();
        let mut tx = self.begin().await?;
        // `WHERE true` keeps SQLite from reading `ON CONFLICT` as a join's `ON`.
        let inserted: Vec<String> = sqlx::query_scalar(
            "INSERT INTO notifications \
               (id, user_id, template, data, priority, idempotency_key, created_at) \
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
               value ->> 5, value ->> 6 \
             FROM json_each(?1) WHERE true ORDER BY key \
             ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        )
        .bind(Value::Array(notifications).to_string())
        .fetch_all(&mut *tx)
        .await?;
        let inserted = inserted
            .iter()
            .map(|id| uuid(id))
            .collect::<Result<Vec<_>, _>>()?;
        let new: Vec<&IntakeRequest> = group
            .iter()
            .filter(|request| inserted.contains(&request.notification.id))
            .collect();
        let deliveries: Vec<Value> = new
            .iter()
            .map(|request| &request.notification)
            .flat_map(|n| {
                n.channels.iter().map(|channel| {
                    json!([
                        n.id.to_string(),
                        channel.as_str(),
                        unix_millis(n.created_at)
                    ])
                })
            })
            .collect();
        if !deliveries.is_empty() {
            sqlx::query(
                "INSERT INTO deliveries (notification_id, channel, status, updated_at) \
                 SELECT value ->> 0, value ->> 1, 'pending', value ->> 2 FROM json_each(?1)",
            )
            .bind(Value::Array(deliveries).to_string())
            .execute(&mut *tx)
            .await?;
        }
        outbox::insert_all_sqlite(&mut tx, new.iter().map(|request| &request.intake)).await?;
        let repeated = intake::repeated_keys(group, &inserted);
        let first: HashMap<String, Uuid> = if repeated.is_empty() {
            HashMap::new()
        } else {
            sqlx::query_as::<_, (String, String)>(
                "SELECT idempotency_key, id FROM notifications \
                 WHERE idempotency_key IN (SELECT value FROM json_each(?1))",
            )
            .bind(json_list(repeated))
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|(key, id)| Ok((key, uuid(&id)?)))
            .collect::<Result<_, StoreError>>()?
        };
        tx.commit().await?;
        intake::answers(group, &inserted, &first)
    }
}

#[async_trait]
impl NotificationStore for SqliteStore {
    async fn put_user(&self, user: &User, now: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, phone, push_tokens, webhook_url, opted_out, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, phone = EXCLUDED.phone, \
               push_tokens = EXCLUDED.push_tokens, webhook_url = EXCLUDED.webhook_url, \
               opted_out = EXCLUDED.opted_out, updated_at = EXCLUDED.updated_at",
        )
        .bind(user.id.as_str())
        .bind(&user.email)
        .bind(&user.phone)
        .bind(serde_json::to_string(&user.push_tokens).expect("tokens serialise"))
        .bind(&user.webhook_url)
        .bind(channels_json(&user.opted_out))
        .bind(unix_millis(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        self.users.user(id).await
    }

    async fn insert_notification(
        &self,
        notification: &Notification,
        intake: &OutboxEvent,
    ) -> Result<Inserted, StoreError> {
        self.intake.insert(notification, intake).await
    }

    async fn notification(&self, id: Uuid) -> Result<Option<NotificationRecord>, StoreError> {
        let row: Option<(String, String, String, i64)> = sqlx::query_as(
            "SELECT user_id, template, priority, created_at FROM notifications WHERE id = ?1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some((user_id, template, priority, created_at)) = row else {
            return Ok(None);
        };
        let deliveries: Vec<(String, String)> =
            sqlx::query_as("SELECT channel, status FROM deliveries WHERE notification_id = ?1")
                .bind(id.to_string())
                .fetch_all(&self.pool)
                .await?;
        let attempts: Vec<(String, i64, String, Option<String>)> = sqlx::query_as(
            "SELECT channel, attempted_at, outcome, error FROM delivery_attempts \
             WHERE notification_id = ?1 ORDER BY id",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(NotificationRecord {
            id,
            user_id,
            template,
            priority,
            created_at: from_unix_millis(created_at),
            deliveries: assemble(
                deliveries,
                attempts
                    .into_iter()
                    .map(|(channel, at, outcome, error)| {
                        (channel, from_unix_millis(at), outcome, error)
                    })
                    .collect(),
            )?,
        }))
    }

    async fn work(&self, ids: &[Uuid]) -> Result<Vec<Work>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        work_on(&mut conn, ids).await
    }

    async fn queued_since(
        &self,
        users: &[String],
        channels: &[Channel],
        since: OffsetDateTime,
        except: &[Uuid],
    ) -> Result<HashMap<(String, Channel), u32>, StoreError> {
        if users.is_empty() || channels.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT n.user_id, d.channel, count(*) \
             FROM deliveries d JOIN notifications n ON n.id = d.notification_id \
             WHERE n.user_id IN (SELECT value FROM json_each(?1)) \
               AND d.channel IN (SELECT value FROM json_each(?2)) AND d.routed_at >= ?3 \
               AND d.notification_id NOT IN (SELECT value FROM json_each(?4)) \
               AND n.priority = 'normal' \
               AND d.status IN ('queued', 'retrying', 'delivered', 'dead') \
             GROUP BY n.user_id, d.channel",
        )
        .bind(json_list(users))
        .bind(json_list(channels.iter().map(|c| c.as_str())))
        .bind(unix_millis(since))
        .bind(json_list(except))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(user, name, count)| {
                let count = count.clamp(0, i64::from(u32::MAX)) as u32;
                Ok(((user, channel(&name)?), count))
            })
            .collect()
    }

    async fn route(
        &self,
        decisions: &[Decision],
        now: OffsetDateTime,
    ) -> Result<Vec<bool>, StoreError> {
        if decisions.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<Value> = decisions
            .iter()
            .map(|decision| {
                let (status, reason) = routed_attempt(&decision.route);
                json!([
                    decision.notification_id.to_string(),
                    decision.channel.as_str(),
                    status,
                    reason
                ])
            })
            .collect();
        let mut tx = self.pool.begin().await?;
        let routed: Vec<(String, String)> = sqlx::query_as(
            "UPDATE deliveries SET status = decided.status, routed_at = ?2, updated_at = ?2 \
             FROM (SELECT value ->> 0 AS notification_id, value ->> 1 AS channel, \
                          value ->> 2 AS status FROM json_each(?1)) AS decided \
             WHERE deliveries.notification_id = decided.notification_id \
               AND deliveries.channel = decided.channel AND deliveries.status = 'pending' \
             RETURNING notification_id, channel",
        )
        .bind(Value::Array(rows.clone()).to_string())
        .bind(unix_millis(now))
        .fetch_all(&mut *tx)
        .await?;
        let applied: Vec<bool> = decisions
            .iter()
            .map(|decision| {
                routed.iter().any(|(id, name)| {
                    *id == decision.notification_id.to_string() && name == decision.channel.as_str()
                })
            })
            .collect();
        // A skip or a throttle is recorded as the delivery's one attempt.
        let attempts: Vec<Value> = rows
            .into_iter()
            .zip(&applied)
            .filter(|(row, applied)| **applied && !row[3].is_null())
            .map(|(row, _)| row)
            .collect();
        insert_attempts(&mut tx, attempts, now).await?;
        tx.commit().await?;
        Ok(applied)
    }

    async fn claim(
        &self,
        claims: &[Claim],
        now: OffsetDateTime,
    ) -> Result<Vec<Claimed>, StoreError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let rows = Value::Array(
            claims
                .iter()
                .map(|claim| {
                    json!([
                        claim.notification_id.to_string(),
                        claim.channel.as_str(),
                        claim.attempt,
                        claim.job.to_string()
                    ])
                })
                .collect(),
        )
        .to_string();
        let mut tx = self.pool.begin().await?;
        let won: Vec<(String, String)> = sqlx::query_as(
            "UPDATE deliveries SET attempts = claims.attempt + 1, claimed_by = claims.job, \
               updated_at = ?2 \
             FROM (SELECT value ->> 0 AS notification_id, value ->> 1 AS channel, \
                          value ->> 2 AS attempt, value ->> 3 AS job FROM json_each(?1)) AS claims \
             WHERE deliveries.notification_id = claims.notification_id \
               AND deliveries.channel = claims.channel \
               AND deliveries.status IN ('queued', 'retrying') \
               AND (deliveries.attempts = claims.attempt \
                    OR (deliveries.attempts = claims.attempt + 1 \
                        AND deliveries.claimed_by = claims.job)) \
             RETURNING notification_id, claimed_by",
        )
        .bind(&rows)
        .bind(unix_millis(now))
        .fetch_all(&mut *tx)
        .await?;
        let won_by = |claim: &Claim| {
            won.iter().any(|(id, job)| {
                *id == claim.notification_id.to_string() && *job == claim.job.to_string()
            })
        };
        // The statuses of the lost claims' deliveries, for the worker's count of skipped jobs.
        let statuses: Vec<(String, String, String)> = if claims.iter().all(won_by) {
            Vec::new()
        } else {
            sqlx::query_as(
                "SELECT d.notification_id, d.channel, d.status FROM deliveries d \
                 JOIN json_each(?1) AS claims ON d.notification_id = claims.value ->> 0 \
                   AND d.channel = claims.value ->> 1",
            )
            .bind(&rows)
            .fetch_all(&mut *tx)
            .await?
        };
        let won_ids: Vec<Uuid> = claims
            .iter()
            .filter(|claim| won_by(claim))
            .map(|claim| claim.notification_id)
            .collect();
        let mut works: HashMap<Uuid, Work> = work_on(&mut tx, &won_ids)
            .await?
            .into_iter()
            .map(|work| (work.notification.id, work))
            .collect();
        tx.commit().await?;
        claims
            .iter()
            .map(|claim| {
                if won_by(claim) {
                    return works
                        .remove(&claim.notification_id)
                        .map(|work| Claimed::Won(Box::new(work)))
                        .ok_or_else(|| {
                            corrupt(format!("a claimed delivery of {}", claim.notification_id))
                        });
                }
                let text = statuses.iter().find(|(id, name, _)| {
                    *id == claim.notification_id.to_string() && name == claim.channel.as_str()
                });
                Ok(Claimed::Lost(
                    text.map(|(_, _, text)| status(text)).transpose()?,
                ))
            })
            .collect()
    }

    async fn record(&self, attempts: &[Attempted], now: OffsetDateTime) -> Result<(), StoreError> {
        if attempts.is_empty() {
            return Ok(());
        }
        let rows: Vec<Value> = attempts
            .iter()
            .map(|attempted| {
                let (status, outcome, error) = recorded_attempt(&attempted.outcome);
                json!([
                    attempted.notification_id.to_string(),
                    attempted.channel.as_str(),
                    outcome,
                    error,
                    status
                ])
            })
            .collect();
        let mut tx = self.pool.begin().await?;
        // Moves on every delivery that is not final (a duplicate's attempt changes nothing).
        let recorded: Vec<(String, String)> = sqlx::query_as(
            "UPDATE deliveries SET status = attempted.status, updated_at = ?2, claimed_by = NULL \
             FROM (SELECT value ->> 0 AS notification_id, value ->> 1 AS channel, \
                          value ->> 4 AS status FROM json_each(?1)) AS attempted \
             WHERE deliveries.notification_id = attempted.notification_id \
               AND deliveries.channel = attempted.channel \
               AND deliveries.status NOT IN ('delivered', 'skipped', 'throttled', 'dead') \
             RETURNING notification_id, channel",
        )
        .bind(Value::Array(rows.clone()).to_string())
        .bind(unix_millis(now))
        .fetch_all(&mut *tx)
        .await?;
        let applied = |attempted: &Attempted| {
            recorded.iter().any(|(id, name)| {
                *id == attempted.notification_id.to_string() && name == attempted.channel.as_str()
            })
        };
        let rows = rows
            .into_iter()
            .zip(attempts)
            .filter(|(_, attempted)| applied(attempted))
            .map(|(row, _)| row)
            .collect();
        insert_attempts(&mut tx, rows, now).await?;
        for attempted in attempts.iter().filter(|attempted| applied(attempted)) {
            if let Outcome::Dead { letter, event } = &attempted.outcome {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO dead_letters ({DEAD_LETTER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)"
                )))
                .bind(letter.id.to_string())
                .bind(letter.notification_id.to_string())
                .bind(letter.channel.as_str())
                .bind(&letter.error)
                .bind(i64::from(letter.attempts))
                .bind(unix_millis(letter.created_at))
                .execute(&mut *tx)
                .await?;
                outbox::insert_sqlite(&mut tx, event).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        let rows: Vec<DeadLetterRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters \
             ORDER BY created_at DESC, id DESC LIMIT ?1"
        )))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(dead_letter).collect()
    }

    async fn dead_letter(&self, id: Uuid) -> Result<Option<DeadLetter>, StoreError> {
        let row: Option<DeadLetterRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE id = ?1"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(dead_letter).transpose()
    }

    async fn redrive(
        &self,
        id: Uuid,
        job: &OutboxEvent,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let letter: Option<(String, String)> = sqlx::query_as(
            "UPDATE dead_letters SET redriven_at = ?2 WHERE id = ?1 AND redriven_at IS NULL \
             RETURNING notification_id, channel",
        )
        .bind(id.to_string())
        .bind(unix_millis(now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some((notification_id, channel)) = letter else {
            tx.rollback().await?;
            return Ok(false);
        };
        sqlx::query(
            "UPDATE deliveries SET status = 'queued', updated_at = ?3 \
             WHERE notification_id = ?1 AND channel = ?2 AND status = 'dead'",
        )
        .bind(notification_id)
        .bind(channel)
        .bind(unix_millis(now))
        .execute(&mut *tx)
        .await?;
        outbox::insert_sqlite(&mut tx, job).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Inserts attempts given as JSON rows `[notification id, channel, outcome, error, …]`, in order,
/// with one statement.
async fn insert_attempts(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    rows: Vec<Value>,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO delivery_attempts (notification_id, channel, attempted_at, outcome, error) \
         SELECT value ->> 0, value ->> 1, ?2, value ->> 2, value ->> 3 FROM json_each(?1) \
         ORDER BY key",
    )
    .bind(Value::Array(rows).to_string())
    .bind(unix_millis(at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
