//! The embedded SQLite store. Timestamps are INTEGER milliseconds; UUIDs are hyphenated TEXT.
//!
//! Every transaction starts with its write, so that it takes SQLite's one write lock before
//! reading anything: a transaction that read first and wrote second could find that another
//! writer had committed in between, and fail with `SQLITE_BUSY` where the busy timeout cannot
//! help.

use async_trait::async_trait;
use platform::db::{from_unix_millis, unix_millis};
use sqlx::{SqliteConnection, SqlitePool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    Begin, BeginAt, Finish, KeyRecord, Lock, PaymentStore, StoreError, StoredResponse, corrupt,
    held, payment_status, recovery_point, request_json, stored_request,
};
use crate::domain::{ClientId, Fingerprint, IdempotencyKey, Payment, PaymentId, PaymentRequest};

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

fn uuid(text: &str) -> Result<Uuid, StoreError> {
    Uuid::try_parse(text).map_err(|_| corrupt(format!("uuid {text:?}")))
}

const KEY_COLUMNS: &str = "id, client_id, key, fingerprint, request, recovery_point, payment_id, \
                           response_status, response_body, created_at";

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: i64,
    client_id: i64,
    key: String,
    fingerprint: String,
    request: String,
    recovery_point: String,
    payment_id: Option<String>,
    response_status: Option<i64>,
    response_body: Option<Vec<u8>>,
    created_at: i64,
}

impl TryFrom<KeyRow> for KeyRecord {
    type Error = StoreError;

    fn try_from(row: KeyRow) -> Result<Self, StoreError> {
        Ok(KeyRecord {
            id: row.id,
            client: ClientId(row.client_id),
            key: row.key,
            fingerprint: row.fingerprint,
            request: stored_request(&row.request)?,
            recovery_point: recovery_point(&row.recovery_point)?,
            payment: row
                .payment_id
                .as_deref()
                .map(uuid)
                .transpose()?
                .map(PaymentId),
            response: match (row.response_status, row.response_body) {
                (Some(status), Some(body)) => Some(StoredResponse {
                    status: u16::try_from(status).map_err(|_| corrupt("response status"))?,
                    body,
                }),
                _ => None,
            },
            created_at: from_unix_millis(row.created_at),
        })
    }
}

const PAYMENT_COLUMNS: &str = "id, client_id, amount, currency, source, description, status, \
                               provider_charge, failure_code, created_at";

#[derive(sqlx::FromRow)]
struct PaymentRow {
    id: String,
    client_id: i64,
    amount: i64,
    currency: String,
    source: String,
    description: Option<String>,
    status: String,
    provider_charge: Option<String>,
    failure_code: Option<String>,
    created_at: i64,
}

// A method of the row rather than `TryFrom` for the domain's `Payment`: the conversion belongs
// to the store, which knows both, and the domain knows nothing of rows.
impl PaymentRow {
    fn into_payment(self) -> Result<Payment, StoreError> {
        Ok(Payment {
            id: PaymentId(uuid(&self.id)?),
            client: ClientId(self.client_id),
            request: PaymentRequest {
                amount: u64::try_from(self.amount).map_err(|_| corrupt("amount"))?,
                currency: crate::domain::Currency::parse(&self.currency)
                    .ok_or_else(|| corrupt("currency"))?,
                source: self.source,
                description: self.description,
            },
            status: payment_status(&self.status)?,
            provider_charge: self.provider_charge,
            failure_code: self.failure_code,
            created_at: from_unix_millis(self.created_at),
        })
    }
}

async fn insert_payment(conn: &mut SqliteConnection, payment: &Payment) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO payments \
           (id, client_id, amount, currency, source, description, status, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .bind(payment.id.0.to_string())
    .bind(payment.client.0)
    .bind(payment.request.amount as i64)
    .bind(payment.request.currency.as_str())
    .bind(&payment.request.source)
    .bind(&payment.request.description)
    .bind(payment.status.as_str())
    .bind(unix_millis(payment.created_at))
    .execute(conn)
    .await?;
    Ok(())
}

/// The provider's answer on the payment, and its outbox event.
async fn complete_payment(
    conn: &mut SqliteConnection,
    finish: &Finish<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE payments SET status = ?1, provider_charge = ?2, failure_code = ?3 WHERE id = ?4",
    )
    .bind(finish.status.as_str())
    .bind(finish.provider_charge)
    .bind(finish.failure_code)
    .bind(finish.payment.0.to_string())
    .execute(&mut *conn)
    .await?;
    platform::outbox::insert_sqlite(conn, finish.event).await?;
    Ok(())
}

#[async_trait]
impl PaymentStore for SqliteStore {
    async fn begin(
        &self,
        client: ClientId,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        request: &PaymentRequest,
        at: BeginAt,
    ) -> Result<Begin, StoreError> {
        // The same three statements as the PostgreSQL store; see there.
        let token = Uuid::new_v4();
        let acquired = |row: KeyRow| -> Result<Begin, StoreError> {
            let record = KeyRecord::try_from(row)?;
            let lock = Lock {
                key_id: record.id,
                token,
            };
            Ok(Begin::Acquired(record, lock))
        };
        let inserted: Option<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO idempotency_keys AS k \
               (client_id, key, fingerprint, request, recovery_point, lock_token, locked_at, \
                last_run_at, created_at) \
             VALUES (?1, ?2, ?3, ?4, 'started', ?5, ?6, ?6, ?6) \
             ON CONFLICT (client_id, key) DO UPDATE SET \
               fingerprint = excluded.fingerprint, request = excluded.request, \
               recovery_point = 'started', payment_id = NULL, response_status = NULL, \
               response_body = NULL, lock_token = excluded.lock_token, \
               locked_at = excluded.locked_at, last_run_at = excluded.last_run_at, \
               created_at = excluded.created_at \
             WHERE k.recovery_point = 'finished' AND k.created_at < ?7 \
             RETURNING {KEY_COLUMNS}"
        )))
        .bind(client.0)
        .bind(key.as_str())
        .bind(&fingerprint.0)
        .bind(request_json(request))
        .bind(token.to_string())
        .bind(unix_millis(at.now))
        .bind(unix_millis(at.expired_before))
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = inserted {
            return acquired(row);
        }
        let taken: Option<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE idempotency_keys SET lock_token = ?1, locked_at = ?2, last_run_at = ?2 \
             WHERE client_id = ?3 AND key = ?4 AND fingerprint = ?5 \
               AND recovery_point <> 'finished' AND (lock_token IS NULL OR locked_at < ?6) \
             RETURNING {KEY_COLUMNS}"
        )))
        .bind(token.to_string())
        .bind(unix_millis(at.now))
        .bind(client.0)
        .bind(key.as_str())
        .bind(&fingerprint.0)
        .bind(unix_millis(at.stale_before))
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = taken {
            return acquired(row);
        }
        let existing: KeyRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM idempotency_keys WHERE client_id = ?1 AND key = ?2"
        )))
        .bind(client.0)
        .bind(key.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(Begin::Existing(existing.try_into()?))
    }

    async fn create_payment(&self, lock: Lock, payment: &Payment) -> Result<(), StoreError> {
        // SQLite has no data-modifying CTEs, so the PostgreSQL store's one statement is a
        // transaction here, which costs nothing extra in process.
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE idempotency_keys \
             SET recovery_point = 'payment_created', payment_id = ?1, last_run_at = ?2 \
             WHERE id = ?3 AND lock_token = ?4 AND recovery_point = 'started'",
        )
        .bind(payment.id.0.to_string())
        .bind(unix_millis(payment.created_at))
        .bind(lock.key_id)
        .bind(lock.token.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if let Err(lost) = held(moved) {
            // Rolled back now rather than when the pool next hands this connection out: until
            // then it would hold SQLite's write lock.
            tx.rollback().await?;
            return Err(lost);
        }
        insert_payment(&mut tx, payment).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn finish(&self, lock: Lock, finish: &Finish<'_>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE idempotency_keys \
             SET recovery_point = 'finished', response_status = ?1, response_body = ?2, \
                 lock_token = NULL, locked_at = NULL, last_run_at = ?3 \
             WHERE id = ?4 AND lock_token = ?5 AND recovery_point = 'payment_created'",
        )
        .bind(i64::from(finish.response.status))
        .bind(&finish.response.body)
        .bind(unix_millis(finish.event.created_at))
        .bind(lock.key_id)
        .bind(lock.token.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if let Err(lost) = held(moved) {
            // Rolled back now rather than when the pool next hands this connection out: until
            // then it would hold SQLite's write lock.
            tx.rollback().await?;
            return Err(lost);
        }
        complete_payment(&mut tx, finish).await?;
        tx.commit().await?;
        Ok(())
    }

    #[cfg(feature = "bench")]
    async fn insert_payment(&self, payment: &Payment) -> Result<(), StoreError> {
        insert_payment(&mut *self.pool.acquire().await?, payment).await
    }

    #[cfg(feature = "bench")]
    async fn complete_payment(&self, finish: &Finish<'_>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        complete_payment(&mut tx, finish).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn unlock(&self, lock: Lock, now: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE idempotency_keys SET lock_token = NULL, locked_at = NULL, last_run_at = ?1 \
             WHERE id = ?2 AND lock_token = ?3",
        )
        .bind(unix_millis(now))
        .bind(lock.key_id)
        .bind(lock.token.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn lock_abandoned(
        &self,
        idle_before: OffsetDateTime,
        stale_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<(KeyRecord, Lock)>, StoreError> {
        let token = Uuid::new_v4();
        let row: Option<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE idempotency_keys SET lock_token = ?1, locked_at = ?2, last_run_at = ?2 \
             WHERE id = (SELECT id FROM idempotency_keys \
                         WHERE recovery_point <> 'finished' AND last_run_at < ?3 \
                           AND (lock_token IS NULL OR locked_at < ?4) \
                         ORDER BY last_run_at LIMIT 1) \
             RETURNING {KEY_COLUMNS}"
        )))
        .bind(token.to_string())
        .bind(unix_millis(now))
        .bind(unix_millis(idle_before))
        .bind(unix_millis(stale_before))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let record = KeyRecord::try_from(row)?;
            let lock = Lock {
                key_id: record.id,
                token,
            };
            Ok((record, lock))
        })
        .transpose()
    }

    async fn payment(&self, id: PaymentId) -> Result<Option<Payment>, StoreError> {
        let row: Option<PaymentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = ?1"
        )))
        .bind(id.0.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(PaymentRow::into_payment).transpose()
    }

    async fn payments(
        &self,
        client: ClientId,
        limit: u32,
        before: Option<PaymentId>,
    ) -> Result<Vec<Payment>, StoreError> {
        // With no cursor, `before` is past every id: "z" sorts after any hex digit.
        let before = before.map_or_else(|| "z".to_owned(), |id| id.0.to_string());
        let rows: Vec<PaymentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE client_id = ?1 AND id < ?2 \
             ORDER BY id DESC LIMIT ?3"
        )))
        .bind(client.0)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(PaymentRow::into_payment).collect()
    }

    async fn delete_expired_keys(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let deleted = sqlx::query(
            "DELETE FROM idempotency_keys WHERE id IN \
               (SELECT id FROM idempotency_keys \
                WHERE recovery_point = 'finished' AND created_at < ?1 LIMIT ?2)",
        )
        .bind(unix_millis(before))
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(deleted)
    }
}
