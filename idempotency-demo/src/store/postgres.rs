//! The PostgreSQL store: the same statements as the SQLite one, in PostgreSQL's types.
//!
//! Read committed is enough. `INSERT … ON CONFLICT DO NOTHING` waits for a concurrent insert of
//! the same key to commit and then does nothing, and the conditional `UPDATE`s re-check their
//! `WHERE` on the row's latest version, so of two requests only one ever holds a key's lock.

use async_trait::async_trait;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    Begin, BeginAt, Finish, KeyRecord, Lock, PaymentStore, StoreError, StoredResponse, corrupt,
    held, payment_status, recovery_point, request_json, stored_request,
};
use crate::domain::{ClientId, Fingerprint, IdempotencyKey, Payment, PaymentId, PaymentRequest};

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

const KEY_COLUMNS: &str = "id, client_id, key, fingerprint, request::text AS request, recovery_point, payment_id, \
                           response_status, response_body, created_at";

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: i64,
    client_id: i64,
    key: String,
    fingerprint: String,
    request: String,
    recovery_point: String,
    payment_id: Option<Uuid>,
    response_status: Option<i32>,
    response_body: Option<Vec<u8>>,
    created_at: OffsetDateTime,
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
            payment: row.payment_id.map(PaymentId),
            response: match (row.response_status, row.response_body) {
                (Some(status), Some(body)) => Some(StoredResponse {
                    status: u16::try_from(status).map_err(|_| corrupt("response status"))?,
                    body,
                }),
                _ => None,
            },
            created_at: row.created_at,
        })
    }
}

const PAYMENT_COLUMNS: &str = "id, client_id, amount, currency, source, description, status, \
                               provider_charge, failure_code, created_at";

#[derive(sqlx::FromRow)]
struct PaymentRow {
    id: Uuid,
    client_id: i64,
    amount: i64,
    currency: String,
    source: String,
    description: Option<String>,
    status: String,
    provider_charge: Option<String>,
    failure_code: Option<String>,
    created_at: OffsetDateTime,
}

// A method of the row rather than `TryFrom` for the domain's `Payment`: the conversion belongs
// to the store, which knows both, and the domain knows nothing of rows.
impl PaymentRow {
    fn into_payment(self) -> Result<Payment, StoreError> {
        Ok(Payment {
            id: PaymentId(self.id),
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
            created_at: self.created_at,
        })
    }
}

#[async_trait]
impl PaymentStore for PostgresStore {
    async fn begin(
        &self,
        client: ClientId,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        request: &PaymentRequest,
        at: BeginAt,
    ) -> Result<Begin, StoreError> {
        let token = Uuid::new_v4();
        let acquired = |row: KeyRow| -> Result<Begin, StoreError> {
            let record = KeyRecord::try_from(row)?;
            let lock = Lock {
                key_id: record.id,
                token,
            };
            Ok(Begin::Acquired(record, lock))
        };
        // New, or finished and expired: one upsert either way. A conflict with a live key
        // leaves it as it is and returns nothing.
        let inserted: Option<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO idempotency_keys AS k \
               (client_id, key, fingerprint, request, recovery_point, lock_token, locked_at, \
                last_run_at, created_at) \
             VALUES ($1, $2, $3, $4::jsonb, 'started', $5, $6, $6, $6) \
             ON CONFLICT (client_id, key) DO UPDATE SET \
               fingerprint = EXCLUDED.fingerprint, request = EXCLUDED.request, \
               recovery_point = 'started', payment_id = NULL, response_status = NULL, \
               response_body = NULL, lock_token = EXCLUDED.lock_token, \
               locked_at = EXCLUDED.locked_at, last_run_at = EXCLUDED.last_run_at, \
               created_at = EXCLUDED.created_at \
             WHERE k.recovery_point = 'finished' AND k.created_at < $7 \
             RETURNING {KEY_COLUMNS}"
        )))
        .bind(client.0)
        .bind(key.as_str())
        .bind(&fingerprint.0)
        .bind(request_json(request))
        .bind(token)
        .bind(at.now)
        .bind(at.expired_before)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = inserted {
            return acquired(row);
        }
        // Unfinished, the same request, and nobody alive working on it: take it over.
        let taken: Option<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE idempotency_keys SET lock_token = $1, locked_at = $2, last_run_at = $2 \
             WHERE client_id = $3 AND key = $4 AND fingerprint = $5 \
               AND recovery_point <> 'finished' AND (lock_token IS NULL OR locked_at < $6) \
             RETURNING {KEY_COLUMNS}"
        )))
        .bind(token)
        .bind(at.now)
        .bind(client.0)
        .bind(key.as_str())
        .bind(&fingerprint.0)
        .bind(at.stale_before)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = taken {
            return acquired(row);
        }
        let existing: KeyRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM idempotency_keys WHERE client_id = $1 AND key = $2"
        )))
        .bind(client.0)
        .bind(key.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(Begin::Existing(existing.try_into()?))
    }

    async fn create_payment(&self, lock: Lock, payment: &Payment) -> Result<(), StoreError> {
        // One statement: the key moves only if this request still holds it, and the payment is
        // inserted only if the key moved.
        let inserted = sqlx::query(
            "WITH moved AS ( \
               UPDATE idempotency_keys \
               SET recovery_point = 'payment_created', payment_id = $1, last_run_at = $8 \
               WHERE id = $9 AND lock_token = $10 AND recovery_point = 'started' RETURNING id) \
             INSERT INTO payments \
               (id, client_id, amount, currency, source, description, status, created_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8 FROM moved",
        )
        .bind(payment.id.0)
        .bind(payment.client.0)
        .bind(payment.request.amount as i64)
        .bind(payment.request.currency.as_str())
        .bind(&payment.request.source)
        .bind(&payment.request.description)
        .bind(payment.status.as_str())
        .bind(payment.created_at)
        .bind(lock.key_id)
        .bind(lock.token)
        .execute(&self.pool)
        .await?
        .rows_affected();
        held(inserted)
    }

    async fn finish(&self, lock: Lock, finish: &Finish<'_>) -> Result<(), StoreError> {
        // The outbox row is the one `platform::outbox::insert_postgres` writes, inlined here and
        // in `complete_payment` so that each stays one statement, one round trip, rather than a
        // transaction around two (the idempotency layer's cost is counted in round trips:
        // DESIGN.md §8).
        let event = finish.event;
        let inserted = sqlx::query(
            "WITH moved AS ( \
               UPDATE idempotency_keys \
               SET recovery_point = 'finished', response_status = $1, response_body = $2, \
                   lock_token = NULL, locked_at = NULL, last_run_at = $3 \
               WHERE id = $4 AND lock_token = $5 AND recovery_point = 'payment_created' \
               RETURNING id), \
             charged AS ( \
               UPDATE payments SET status = $6, provider_charge = $7, failure_code = $8 \
               WHERE id = $9 AND EXISTS (SELECT 1 FROM moved) RETURNING id) \
             INSERT INTO outbox (event_id, topic, message_key, event_type, payload, created_at) \
             SELECT $10, $11, $12, $13, $14, $3 FROM charged",
        )
        .bind(i32::from(finish.response.status))
        .bind(&finish.response.body)
        .bind(event.created_at)
        .bind(lock.key_id)
        .bind(lock.token)
        .bind(finish.status.as_str())
        .bind(finish.provider_charge)
        .bind(finish.failure_code)
        .bind(finish.payment.0)
        .bind(event.event_id)
        .bind(&event.topic)
        .bind(&event.key)
        .bind(&event.event_type)
        .bind(&event.payload)
        .execute(&self.pool)
        .await?
        .rows_affected();
        held(inserted)
    }

    #[cfg(feature = "bench")]
    async fn insert_payment(&self, payment: &Payment) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO payments \
               (id, client_id, amount, currency, source, description, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(payment.id.0)
        .bind(payment.client.0)
        .bind(payment.request.amount as i64)
        .bind(payment.request.currency.as_str())
        .bind(&payment.request.source)
        .bind(&payment.request.description)
        .bind(payment.status.as_str())
        .bind(payment.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    #[cfg(feature = "bench")]
    async fn complete_payment(&self, finish: &Finish<'_>) -> Result<(), StoreError> {
        let event = finish.event;
        sqlx::query(
            "WITH charged AS ( \
               UPDATE payments SET status = $1, provider_charge = $2, failure_code = $3 \
               WHERE id = $4 RETURNING id) \
             INSERT INTO outbox (event_id, topic, message_key, event_type, payload, created_at) \
             SELECT $5, $6, $7, $8, $9, $10 FROM charged",
        )
        .bind(finish.status.as_str())
        .bind(finish.provider_charge)
        .bind(finish.failure_code)
        .bind(finish.payment.0)
        .bind(event.event_id)
        .bind(&event.topic)
        .bind(&event.key)
        .bind(&event.event_type)
        .bind(&event.payload)
        .bind(event.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn unlock(&self, lock: Lock, now: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE idempotency_keys SET lock_token = NULL, locked_at = NULL, last_run_at = $1 \
             WHERE id = $2 AND lock_token = $3",
        )
        .bind(now)
        .bind(lock.key_id)
        .bind(lock.token)
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
            "UPDATE idempotency_keys SET lock_token = $1, locked_at = $2, last_run_at = $2 \
             WHERE id = (SELECT id FROM idempotency_keys \
                         WHERE recovery_point <> 'finished' AND last_run_at < $3 \
                           AND (lock_token IS NULL OR locked_at < $4) \
                         ORDER BY last_run_at LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING {KEY_COLUMNS}"
        )))
        .bind(token)
        .bind(now)
        .bind(idle_before)
        .bind(stale_before)
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
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1"
        )))
        .bind(id.0)
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
        let rows: Vec<PaymentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE client_id = $1 AND ($2::uuid IS NULL OR id < $2) \
             ORDER BY id DESC LIMIT $3"
        )))
        .bind(client.0)
        .bind(before.map(|id| id.0))
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
                WHERE recovery_point = 'finished' AND created_at < $1 LIMIT $2 \
                FOR UPDATE SKIP LOCKED)",
        )
        .bind(before)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(deleted)
    }
}
