//! The embedded SQLite store: the PostgreSQL store's statements, with timestamps as INTEGER
//! milliseconds and UUIDs and JSON as TEXT.

use async_trait::async_trait;
use platform::{
    db::{from_unix_millis, unix_millis},
    outbox::{self, OutboxEvent},
};
use sqlx::SqlitePool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    DeadLetter, Inserted, NotificationRecord, NotificationStore, Outcome, StoreError, Work,
    assemble, channel, channels_from, channels_json, corrupt, routed_attempt, status,
    stored_notification, tokens_from,
};
use crate::domain::{Channel, Notification, Route, User, UserId};

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
}

impl SqliteStore {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
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
        let row: Option<(
            Option<String>,
            Option<String>,
            String,
            Option<String>,
            String,
        )> = sqlx::query_as(
            "SELECT email, phone, push_tokens, webhook_url, opted_out \
                 FROM users WHERE id = ?1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(email, phone, tokens, webhook_url, opted_out)| {
            Ok(User {
                id: id.clone(),
                email,
                phone,
                push_tokens: tokens_from(&tokens)?,
                webhook_url,
                opted_out: channels_from(&opted_out)?,
            })
        })
        .transpose()
    }

    async fn insert_notification(
        &self,
        notification: &Notification,
        intake: &OutboxEvent,
    ) -> Result<Inserted, StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted: Option<String> = sqlx::query_scalar(
            "INSERT INTO notifications \
               (id, user_id, template, data, priority, idempotency_key, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        )
        .bind(notification.id.to_string())
        .bind(&notification.user_id)
        .bind(notification.template)
        .bind(serde_json::Value::Object(notification.data.clone()).to_string())
        .bind(notification.priority.as_str())
        .bind(&notification.idempotency_key)
        .bind(unix_millis(notification.created_at))
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_none() {
            // Ended now: a dropped transaction is only rolled back when the pool next hands
            // its connection out, and would hold its locks until then.
            tx.rollback().await?;
            let first: String =
                sqlx::query_scalar("SELECT id FROM notifications WHERE idempotency_key = ?1")
                    .bind(&notification.idempotency_key)
                    .fetch_one(&self.pool)
                    .await?;
            return Ok(Inserted::Existing(uuid(&first)?));
        }
        for channel in &notification.channels {
            sqlx::query(
                "INSERT INTO deliveries (notification_id, channel, status, updated_at) \
                 VALUES (?1, ?2, 'pending', ?3)",
            )
            .bind(notification.id.to_string())
            .bind(channel.as_str())
            .bind(unix_millis(notification.created_at))
            .execute(&mut *tx)
            .await?;
        }
        outbox::insert_sqlite(&mut tx, intake).await?;
        tx.commit().await?;
        Ok(Inserted::New)
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

    async fn work(&self, id: Uuid) -> Result<Option<Work>, StoreError> {
        let row: Option<(String, String, String, String, Option<String>, i64)> = sqlx::query_as(
            "SELECT user_id, template, data, priority, idempotency_key, created_at \
             FROM notifications WHERE id = ?1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some((user_id, template, data, priority, key, created_at)) = row else {
            return Ok(None);
        };
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT channel, status FROM deliveries WHERE notification_id = ?1 ORDER BY channel",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        let statuses = rows
            .iter()
            .map(|(name, text)| Ok((channel(name)?, status(text)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let notification = stored_notification(
            id,
            user_id,
            &template,
            &data,
            &priority,
            key,
            from_unix_millis(created_at),
            &statuses,
        )?;
        Ok(Some(Work {
            notification,
            statuses,
        }))
    }

    async fn queued_since(
        &self,
        user: &str,
        channel: Channel,
        since: OffsetDateTime,
        except: Uuid,
    ) -> Result<u32, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM deliveries d JOIN notifications n ON n.id = d.notification_id \
             WHERE n.user_id = ?1 AND d.channel = ?2 AND d.routed_at >= ?3 \
               AND d.notification_id <> ?4 AND n.priority = 'normal' \
               AND d.status IN ('queued', 'retrying', 'delivered', 'dead')",
        )
        .bind(user)
        .bind(channel.as_str())
        .bind(unix_millis(since))
        .bind(except.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(count.clamp(0, i64::from(u32::MAX)) as u32)
    }

    async fn route(
        &self,
        id: Uuid,
        channel: Channel,
        route: &Route,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let (new_status, reason) = routed_attempt(route);
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE deliveries SET status = ?3, routed_at = ?4, updated_at = ?4 \
             WHERE notification_id = ?1 AND channel = ?2 AND status = 'pending'",
        )
        .bind(id.to_string())
        .bind(channel.as_str())
        .bind(new_status)
        .bind(unix_millis(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(reason) = reason {
            insert_attempt(&mut tx, id, channel, now, new_status, Some(reason)).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn claim(
        &self,
        id: Uuid,
        channel: Channel,
        attempt: u32,
        job: Uuid,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let claimed = sqlx::query(
            "UPDATE deliveries SET attempts = ?3 + 1, claimed_by = ?4, updated_at = ?5 \
             WHERE notification_id = ?1 AND channel = ?2 AND status IN ('queued', 'retrying') \
               AND (attempts = ?3 OR (attempts = ?3 + 1 AND claimed_by = ?4))",
        )
        .bind(id.to_string())
        .bind(channel.as_str())
        .bind(i64::from(attempt))
        .bind(job.to_string())
        .bind(unix_millis(now))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(claimed == 1)
    }

    async fn record(
        &self,
        id: Uuid,
        channel: Channel,
        outcome: &Outcome,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let (new_status, attempt, error) = match outcome {
            Outcome::Delivered => ("delivered", "delivered", None),
            Outcome::Retry { error } => ("retrying", "retry", Some(error.as_str())),
            Outcome::Dead { letter, .. } => ("dead", "failed", Some(letter.error.as_str())),
        };
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE deliveries SET status = ?3, updated_at = ?4, claimed_by = NULL \
             WHERE notification_id = ?1 AND channel = ?2 \
               AND status NOT IN ('delivered', 'skipped', 'throttled', 'dead')",
        )
        .bind(id.to_string())
        .bind(channel.as_str())
        .bind(new_status)
        .bind(unix_millis(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            tx.rollback().await?;
            return Ok(());
        }
        insert_attempt(&mut tx, id, channel, now, attempt, error).await?;
        if let Outcome::Dead { letter, event } = outcome {
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

async fn insert_attempt(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: Uuid,
    channel: Channel,
    at: OffsetDateTime,
    outcome: &str,
    error: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO delivery_attempts (notification_id, channel, attempted_at, outcome, error) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .bind(id.to_string())
    .bind(channel.as_str())
    .bind(unix_millis(at))
    .bind(outcome)
    .bind(error)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
