//! The PostgreSQL store.

use async_trait::async_trait;
use platform::outbox::{self, OutboxEvent};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    DeadLetter, Inserted, NotificationRecord, NotificationStore, Outcome, StoreError, Work,
    assemble, channel, channels_from, channels_json, routed_attempt, status, stored_notification,
    tokens_from,
};
use crate::domain::{Channel, Notification, Route, User, UserId};

const DEAD_LETTER_COLUMNS: &str =
    "id, notification_id, channel, error, attempts, created_at, redriven_at";

type DeadLetterRow = (
    Uuid,
    Uuid,
    String,
    String,
    i32,
    OffsetDateTime,
    Option<OffsetDateTime>,
);

fn dead_letter(row: DeadLetterRow) -> Result<DeadLetter, StoreError> {
    let (id, notification_id, name, error, attempts, created_at, redriven_at) = row;
    Ok(DeadLetter {
        id,
        notification_id,
        channel: channel(&name)?,
        error,
        attempts: attempts.max(0) as u32,
        created_at,
        redriven_at,
    })
}

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl NotificationStore for PostgresStore {
    async fn put_user(&self, user: &User, now: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, phone, push_tokens, webhook_url, opted_out, updated_at) \
             VALUES ($1, $2, $3, $4::jsonb, $5, $6::jsonb, $7) \
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
        .bind(now)
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
            "SELECT email, phone, push_tokens::text, webhook_url, opted_out::text \
                 FROM users WHERE id = $1",
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
        let inserted: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO notifications \
               (id, user_id, template, data, priority, idempotency_key, created_at) \
             VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7) \
             ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        )
        .bind(notification.id)
        .bind(&notification.user_id)
        .bind(notification.template)
        .bind(serde_json::Value::Object(notification.data.clone()).to_string())
        .bind(notification.priority.as_str())
        .bind(&notification.idempotency_key)
        .bind(notification.created_at)
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_none() {
            // Ended now: a dropped transaction is only rolled back when the pool next hands
            // its connection out, and would hold its locks until then.
            tx.rollback().await?;
            let first: Uuid =
                sqlx::query_scalar("SELECT id FROM notifications WHERE idempotency_key = $1")
                    .bind(&notification.idempotency_key)
                    .fetch_one(&self.pool)
                    .await?;
            return Ok(Inserted::Existing(first));
        }
        for channel in &notification.channels {
            sqlx::query(
                "INSERT INTO deliveries (notification_id, channel, status, updated_at) \
                 VALUES ($1, $2, 'pending', $3)",
            )
            .bind(notification.id)
            .bind(channel.as_str())
            .bind(notification.created_at)
            .execute(&mut *tx)
            .await?;
        }
        outbox::insert_postgres(&mut tx, intake).await?;
        tx.commit().await?;
        Ok(Inserted::New)
    }

    async fn notification(&self, id: Uuid) -> Result<Option<NotificationRecord>, StoreError> {
        let row: Option<(String, String, String, OffsetDateTime)> = sqlx::query_as(
            "SELECT user_id, template, priority, created_at FROM notifications WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some((user_id, template, priority, created_at)) = row else {
            return Ok(None);
        };
        let deliveries: Vec<(String, String)> =
            sqlx::query_as("SELECT channel, status FROM deliveries WHERE notification_id = $1")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        let attempts: Vec<(String, OffsetDateTime, String, Option<String>)> = sqlx::query_as(
            "SELECT channel, attempted_at, outcome, error FROM delivery_attempts \
             WHERE notification_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(NotificationRecord {
            id,
            user_id,
            template,
            priority,
            created_at,
            deliveries: assemble(deliveries, attempts)?,
        }))
    }

    async fn work(&self, id: Uuid) -> Result<Option<Work>, StoreError> {
        let row: Option<(
            String,
            String,
            String,
            String,
            Option<String>,
            OffsetDateTime,
        )> = sqlx::query_as(
            "SELECT user_id, template, data::text, priority, idempotency_key, created_at \
                 FROM notifications WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some((user_id, template, data, priority, key, created_at)) = row else {
            return Ok(None);
        };
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT channel, status FROM deliveries WHERE notification_id = $1 ORDER BY channel",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let statuses = rows
            .iter()
            .map(|(name, text)| Ok((channel(name)?, status(text)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let notification = stored_notification(
            id, user_id, &template, &data, &priority, key, created_at, &statuses,
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
             WHERE n.user_id = $1 AND d.channel = $2 AND d.routed_at >= $3 \
               AND d.notification_id <> $4 AND n.priority = 'normal' \
               AND d.status IN ('queued', 'retrying', 'delivered', 'dead')",
        )
        .bind(user)
        .bind(channel.as_str())
        .bind(since)
        .bind(except)
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
        // One statement: the attempt row is written only if the delivery was pending.
        let changed: Option<i32> = sqlx::query_scalar(
            "WITH routed AS ( \
               UPDATE deliveries SET status = $3, routed_at = $4, updated_at = $4 \
               WHERE notification_id = $1 AND channel = $2 AND status = 'pending' \
               RETURNING notification_id, channel), \
             attempt AS ( \
               INSERT INTO delivery_attempts (notification_id, channel, attempted_at, outcome, error) \
               SELECT notification_id, channel, $4, $3, $5 FROM routed WHERE $5::text IS NOT NULL) \
             SELECT 1 FROM routed",
        )
        .bind(id)
        .bind(channel.as_str())
        .bind(new_status)
        .bind(now)
        .bind(reason)
        .fetch_optional(&self.pool)
        .await?;
        Ok(changed.is_some())
    }

    async fn claim(
        &self,
        id: Uuid,
        channel: Channel,
        attempt: u32,
        job: Uuid,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let attempt = i32::try_from(attempt).unwrap_or(i32::MAX - 1);
        let claimed = sqlx::query(
            "UPDATE deliveries SET attempts = $3 + 1, claimed_by = $4, updated_at = $5 \
             WHERE notification_id = $1 AND channel = $2 AND status IN ('queued', 'retrying') \
               AND (attempts = $3 OR (attempts = $3 + 1 AND claimed_by = $4))",
        )
        .bind(id)
        .bind(channel.as_str())
        .bind(attempt)
        .bind(job)
        .bind(now)
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
            "UPDATE deliveries SET status = $3, updated_at = $4, claimed_by = NULL \
             WHERE notification_id = $1 AND channel = $2 \
               AND status NOT IN ('delivered', 'skipped', 'throttled', 'dead')",
        )
        .bind(id)
        .bind(channel.as_str())
        .bind(new_status)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            tx.rollback().await?;
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO delivery_attempts (notification_id, channel, attempted_at, outcome, error) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(channel.as_str())
        .bind(now)
        .bind(attempt)
        .bind(error)
        .execute(&mut *tx)
        .await?;
        if let Outcome::Dead { letter, event } = outcome {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO dead_letters ({DEAD_LETTER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, NULL)"
            )))
            .bind(letter.id)
            .bind(letter.notification_id)
            .bind(letter.channel.as_str())
            .bind(&letter.error)
            .bind(i32::try_from(letter.attempts).unwrap_or(i32::MAX))
            .bind(letter.created_at)
            .execute(&mut *tx)
            .await?;
            outbox::insert_postgres(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        let rows: Vec<DeadLetterRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters \
             ORDER BY created_at DESC, id DESC LIMIT $1"
        )))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(dead_letter).collect()
    }

    async fn dead_letter(&self, id: Uuid) -> Result<Option<DeadLetter>, StoreError> {
        let row: Option<DeadLetterRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE id = $1"
        )))
        .bind(id)
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
        let letter: Option<(Uuid, String)> = sqlx::query_as(
            "UPDATE dead_letters SET redriven_at = $2 WHERE id = $1 AND redriven_at IS NULL \
             RETURNING notification_id, channel",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((notification_id, channel)) = letter else {
            tx.rollback().await?;
            return Ok(false);
        };
        sqlx::query(
            "UPDATE deliveries SET status = 'queued', updated_at = $3 \
             WHERE notification_id = $1 AND channel = $2 AND status = 'dead'",
        )
        .bind(notification_id)
        .bind(channel)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        outbox::insert_postgres(&mut tx, job).await?;
        tx.commit().await?;
        Ok(true)
    }
}
