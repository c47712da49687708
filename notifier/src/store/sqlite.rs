//! The embedded SQLite store: the PostgreSQL store's statements, with timestamps as INTEGER
//! milliseconds and UUIDs and JSON as TEXT.

use async_trait::async_trait;
use platform::db::{from_unix_millis, unix_millis};
use sqlx::SqlitePool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    Inserted, NotificationRecord, NotificationStore, StoreError, assemble, channels_from,
    channels_json, corrupt, tokens_from,
};
use crate::domain::{Notification, User, UserId};

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
}
