//! The PostgreSQL store.

use async_trait::async_trait;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    Inserted, NotificationRecord, NotificationStore, StoreError, assemble, channels_from,
    channels_json, tokens_from,
};
use crate::domain::{Notification, User, UserId};

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
}
