//! The PostgreSQL store.
//!
//! Round trips are what a statement costs here (a fraction of a millisecond each, more than the
//! work most of them do), so every step of the pipeline is one statement for a whole batch:
//! arrays bound as parameters and turned back into rows with `unnest`, and the writes that belong
//! together (a decision and its attempt, a claim and the read of what it claimed, an outcome and
//! its attempt) chained in one statement with data-modifying CTEs, which PostgreSQL runs
//! atomically. Intake is one statement per group of notifications, and one per group of the users
//! they name (`intake.rs`). Only a dead letter takes a transaction of several statements, and it
//! is rare.
//!
//! **A batch's statement is planned for its batch.** The statements that take a batch (`work`,
//! `queued_since`, `route`, `claim`, `record`) are sent unnamed (`persistent(false)`), so
//! PostgreSQL plans each execution for the arrays it is given and the tables as they are then.
//! Prepared, they settled on a generic plan after five executions and kept it for the
//! connection's life: planned while the tables were young (a new deployment; every benchmark
//! run), that plan read `deliveries` whole, so each batch cost more the more deliveries there
//! were (`DESIGN.md` §10 has the timings). Planning a batch's statement costs far less than
//! that, and nothing a notification.

use std::collections::HashMap;

use async_trait::async_trait;
use platform::{
    fault::FaultSwitch,
    outbox::{self, OutboxEvent},
};
use sqlx::PgPool;
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

/// A notification, its deliveries' statuses and its user, from `notifications n LEFT JOIN users u`.
const WORK_COLUMNS: &str = "n.id, n.user_id, n.template, n.data::text AS data, n.priority, \
     n.idempotency_key, n.created_at, \
     (SELECT string_agg(d.channel || '=' || d.status, ',') FROM deliveries d \
      WHERE d.notification_id = n.id) AS statuses, \
     u.id AS known_user, u.email, u.phone, u.push_tokens::text AS push_tokens, u.webhook_url, \
     u.opted_out::text AS opted_out";

/// [`WORK_COLUMNS`], every one nullable: a claim that was lost joins no notification.
#[derive(sqlx::FromRow)]
struct WorkRow {
    id: Option<Uuid>,
    user_id: Option<String>,
    template: Option<String>,
    data: Option<String>,
    priority: Option<String>,
    idempotency_key: Option<String>,
    created_at: Option<OffsetDateTime>,
    statuses: Option<String>,
    #[sqlx(flatten)]
    user: JoinedUser,
}

impl WorkRow {
    fn into_work(self) -> Result<Work, StoreError> {
        let missing = || corrupt("a notification row without its columns");
        WorkColumns {
            id: self.id.ok_or_else(missing)?,
            user_id: self.user_id.ok_or_else(missing)?,
            template: self.template.ok_or_else(missing)?,
            data: self.data.ok_or_else(missing)?,
            priority: self.priority.ok_or_else(missing)?,
            idempotency_key: self.idempotency_key,
            created_at: self.created_at.ok_or_else(missing)?,
            statuses: self.statuses,
            user: self.user.columns(),
        }
        .into_work()
    }
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    won: bool,
    /// The delivery's status before the claim; `None` if there is no such delivery.
    status: Option<String>,
    #[sqlx(flatten)]
    work: WorkRow,
}

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    intake: IntakeWriter<Faulty<PgPool>>,
    users: UserReader<Faulty<PgPool>>,
}

impl PostgresStore {
    /// Must be called inside a Tokio runtime: it starts intake's writer and reader of users,
    /// whose groups pass `database`, the fault switch, once each.
    pub fn new(pool: PgPool, database: FaultSwitch) -> Self {
        Self {
            intake: IntakeWriter::start(Faulty::new(pool.clone(), database.clone())),
            users: UserReader::start(Faulty::new(pool.clone(), database)),
            pool,
        }
    }
}

#[async_trait]
impl ReadUsers for PgPool {
    async fn read_users(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        let ids: Vec<&str> = ids.iter().map(UserId::as_str).collect();
        let rows: Vec<UserRow> = sqlx::query_as(
            "SELECT id, email, phone, push_tokens::text, webhook_url, opted_out::text \
             FROM users WHERE id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(self)
        .await?;
        rows.into_iter().map(UserRow::into_user).collect()
    }
}

#[async_trait]
impl InsertGroup for PgPool {
    async fn insert_group(&self, group: &[IntakeRequest]) -> Result<Vec<Inserted>, StoreError> {
        // One statement for the group: the notifications, then the deliveries and the outbox rows
        // of those that were inserted (their idempotency keys new, in the table and earlier in the
        // group: `DO NOTHING` skips a later row whose key an earlier one took), all or nothing.
        // The outbox rows go in in the group's order, which is the order the relay publishes them;
        // they are written out here rather than through `outbox::insert_postgres`, which would be
        // a statement of their own.
        let mut c = GroupColumns::default();
        for IntakeRequest {
            notification: n,
            intake: event,
            ..
        } in group
        {
            c.push(n, event);
        }
        let inserted: Vec<Uuid> = sqlx::query_scalar(
            "WITH requested AS ( \
               SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], \
                 $6::text[], $7::timestamptz[]) WITH ORDINALITY \
                 AS r(id, user_id, template, data, priority, idempotency_key, created_at, ord)), \
             inserted AS ( \
               INSERT INTO notifications \
                 (id, user_id, template, data, priority, idempotency_key, created_at) \
               SELECT id, user_id, template, data::jsonb, priority, idempotency_key, created_at \
               FROM requested ORDER BY ord \
               ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, created_at), \
             deliveries AS ( \
               INSERT INTO deliveries (notification_id, channel, status, updated_at) \
               SELECT inserted.id, d.channel, 'pending', inserted.created_at \
               FROM unnest($8::uuid[], $9::text[]) AS d(notification_id, channel) \
               JOIN inserted ON inserted.id = d.notification_id), \
             intake AS ( \
               INSERT INTO outbox (event_id, topic, message_key, event_type, payload, created_at) \
               SELECT e.event_id, e.topic, e.message_key, e.event_type, e.payload, e.created_at \
               FROM unnest($10::uuid[], $11::text[], $12::text[], $13::text[], $14::bytea[], \
                 $15::timestamptz[]) WITH ORDINALITY \
                 AS e(event_id, topic, message_key, event_type, payload, created_at, ord) \
               JOIN requested r ON r.ord = e.ord JOIN inserted ON inserted.id = r.id \
               ORDER BY e.ord) \
             SELECT id FROM inserted",
        )
        .bind(&c.ids)
        .bind(&c.users)
        .bind(&c.templates)
        .bind(&c.data)
        .bind(&c.priorities)
        .bind(&c.keys)
        .bind(&c.created)
        .bind(&c.delivery_ids)
        .bind(&c.delivery_channels)
        .bind(&c.event_ids)
        .bind(&c.topics)
        .bind(&c.message_keys)
        .bind(&c.event_types)
        .bind(&c.payloads)
        .bind(&c.event_created)
        .fetch_all(self)
        .await?;
        let repeated = intake::repeated_keys(group, &inserted);
        // The first notifications of the repeated keys, committed by now (by this statement, or
        // before it).
        let first: HashMap<String, Uuid> = if repeated.is_empty() {
            HashMap::new()
        } else {
            sqlx::query_as::<_, (String, Uuid)>(
                "SELECT idempotency_key, id FROM notifications WHERE idempotency_key = ANY($1)",
            )
            .bind(&repeated)
            .fetch_all(self)
            .await?
            .into_iter()
            .collect()
        };
        intake::answers(group, &inserted, &first)
    }
}

/// A group's notifications, deliveries and intake messages as the arrays its statement binds.
#[derive(Default)]
struct GroupColumns<'a> {
    ids: Vec<Uuid>,
    users: Vec<&'a str>,
    templates: Vec<&'a str>,
    data: Vec<String>,
    priorities: Vec<&'a str>,
    keys: Vec<Option<&'a str>>,
    created: Vec<OffsetDateTime>,
    delivery_ids: Vec<Uuid>,
    delivery_channels: Vec<&'a str>,
    event_ids: Vec<Uuid>,
    topics: Vec<&'a str>,
    message_keys: Vec<&'a str>,
    event_types: Vec<&'a str>,
    payloads: Vec<&'a [u8]>,
    event_created: Vec<OffsetDateTime>,
}

impl<'a> GroupColumns<'a> {
    fn push(&mut self, n: &'a Notification, event: &'a OutboxEvent) {
        self.ids.push(n.id);
        self.users.push(&n.user_id);
        self.templates.push(n.template);
        self.data
            .push(serde_json::to_string(&n.data).expect("data serialises"));
        self.priorities.push(n.priority.as_str());
        self.keys.push(n.idempotency_key.as_deref());
        self.created.push(n.created_at);
        for channel in &n.channels {
            self.delivery_ids.push(n.id);
            self.delivery_channels.push(channel.as_str());
        }
        self.event_ids.push(event.event_id);
        self.topics.push(&event.topic);
        self.message_keys.push(&event.key);
        self.event_types.push(&event.event_type);
        self.payloads.push(&event.payload);
        self.event_created.push(event.created_at);
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

    async fn work(&self, ids: &[Uuid]) -> Result<Vec<Work>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<WorkRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {WORK_COLUMNS} FROM notifications n LEFT JOIN users u ON u.id = n.user_id \
             WHERE n.id = ANY($1)"
        )))
        .bind(ids)
        .persistent(false)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(WorkRow::into_work).collect()
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
        let channels: Vec<&str> = channels.iter().map(|c| c.as_str()).collect();
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT n.user_id, d.channel, count(*) \
             FROM deliveries d JOIN notifications n ON n.id = d.notification_id \
             WHERE n.user_id = ANY($1) AND d.channel = ANY($2) AND d.routed_at >= $3 \
               AND NOT (d.notification_id = ANY($4)) AND n.priority = 'normal' \
               AND d.status IN ('queued', 'retrying', 'delivered', 'dead') \
             GROUP BY n.user_id, d.channel",
        )
        .bind(users)
        .bind(&channels)
        .bind(since)
        .bind(except)
        .persistent(false)
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
        let ids: Vec<Uuid> = decisions.iter().map(|d| d.notification_id).collect();
        let channels: Vec<&str> = decisions.iter().map(|d| d.channel.as_str()).collect();
        let (statuses, reasons): (Vec<&str>, Vec<Option<&str>>) = decisions
            .iter()
            .map(|decision| routed_attempt(&decision.route))
            .unzip();
        // One statement: an attempt row is written only for a delivery that was pending.
        let routed: Vec<(Uuid, String)> = sqlx::query_as(
            "WITH decided AS ( \
               SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) \
                 AS t(notification_id, channel, status, reason)), \
             routed AS ( \
               UPDATE deliveries d SET status = decided.status, routed_at = $5, updated_at = $5 \
               FROM decided \
               WHERE d.notification_id = decided.notification_id \
                 AND d.channel = decided.channel AND d.status = 'pending' \
               RETURNING d.notification_id, d.channel, decided.status, decided.reason), \
             attempt AS ( \
               INSERT INTO delivery_attempts \
                 (notification_id, channel, attempted_at, outcome, error) \
               SELECT notification_id, channel, $5, status, reason FROM routed \
               WHERE reason IS NOT NULL) \
             SELECT notification_id, channel FROM routed",
        )
        .bind(&ids)
        .bind(&channels)
        .bind(&statuses)
        .bind(&reasons)
        .bind(now)
        .persistent(false)
        .fetch_all(&self.pool)
        .await?;
        Ok(decisions
            .iter()
            .map(|decision| {
                routed.iter().any(|(id, name)| {
                    *id == decision.notification_id && name == decision.channel.as_str()
                })
            })
            .collect())
    }

    async fn claim(
        &self,
        claims: &[Claim],
        now: OffsetDateTime,
    ) -> Result<Vec<Claimed>, StoreError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = claims.iter().map(|c| c.notification_id).collect();
        let channels: Vec<&str> = claims.iter().map(|c| c.channel.as_str()).collect();
        let attempts: Vec<i32> = claims
            .iter()
            .map(|c| i32::try_from(c.attempt).unwrap_or(i32::MAX - 1))
            .collect();
        let jobs: Vec<Uuid> = claims.iter().map(|c| c.job).collect();
        // The claim and the read of what it claimed, in one statement. The read sees the rows as
        // they were before the statement (PostgreSQL's CTEs share one snapshot), which is what
        // `status` reports for a lost claim; a won claim does not change the statuses.
        let rows: Vec<ClaimRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "WITH claims AS ( \
               SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::uuid[]) \
                 WITH ORDINALITY AS t(notification_id, channel, attempt, job, ord)), \
             won AS ( \
               UPDATE deliveries d SET attempts = c.attempt + 1, claimed_by = c.job, \
                 updated_at = $5 \
               FROM claims c \
               WHERE d.notification_id = c.notification_id AND d.channel = c.channel \
                 AND d.status IN ('queued', 'retrying') \
                 AND (d.attempts = c.attempt \
                      OR (d.attempts = c.attempt + 1 AND d.claimed_by = c.job)) \
               RETURNING c.ord) \
             SELECT won.ord IS NOT NULL AS won, existing.status, {WORK_COLUMNS} \
             FROM claims c \
             LEFT JOIN won ON won.ord = c.ord \
             LEFT JOIN deliveries existing \
               ON existing.notification_id = c.notification_id AND existing.channel = c.channel \
             LEFT JOIN notifications n ON n.id = c.notification_id AND won.ord IS NOT NULL \
             LEFT JOIN users u ON u.id = n.user_id \
             ORDER BY c.ord"
        )))
        .bind(&ids)
        .bind(&channels)
        .bind(&attempts)
        .bind(&jobs)
        .bind(now)
        .persistent(false)
        .fetch_all(&self.pool)
        .await?;
        if rows.len() != claims.len() {
            return Err(corrupt(format!(
                "{} claims answered with {} rows",
                claims.len(),
                rows.len()
            )));
        }
        rows.into_iter()
            .map(|row| {
                if row.won {
                    Ok(Claimed::Won(Box::new(row.work.into_work()?)))
                } else {
                    Ok(Claimed::Lost(
                        row.status.as_deref().map(status).transpose()?,
                    ))
                }
            })
            .collect()
    }

    async fn record(&self, attempts: &[Attempted], now: OffsetDateTime) -> Result<(), StoreError> {
        if attempts.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = attempts.iter().map(|a| a.notification_id).collect();
        let channels: Vec<&str> = attempts.iter().map(|a| a.channel.as_str()).collect();
        let (mut statuses, mut outcomes, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        for attempted in attempts {
            let (status, outcome, error) = recorded_attempt(&attempted.outcome);
            statuses.push(status);
            outcomes.push(outcome);
            errors.push(error);
        }
        let statement = sqlx::query_as::<sqlx::Postgres, (Uuid, String)>(
            "WITH attempted AS ( \
               SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[]) \
                 AS t(notification_id, channel, status, outcome, error)), \
             recorded AS ( \
               UPDATE deliveries d SET status = a.status, updated_at = $6, claimed_by = NULL \
               FROM attempted a \
               WHERE d.notification_id = a.notification_id AND d.channel = a.channel \
                 AND d.status NOT IN ('delivered', 'skipped', 'throttled', 'dead') \
               RETURNING d.notification_id, d.channel, a.outcome, a.error) \
             INSERT INTO delivery_attempts (notification_id, channel, attempted_at, outcome, error) \
             SELECT notification_id, channel, $6, outcome, error FROM recorded \
             RETURNING notification_id, channel",
        )
        .bind(&ids)
        .bind(&channels)
        .bind(&statuses)
        .bind(&outcomes)
        .bind(&errors)
        .bind(now)
        .persistent(false);

        let dead: Vec<(&DeadLetter, &OutboxEvent)> = attempts
            .iter()
            .filter_map(|attempted| match &attempted.outcome {
                Outcome::Dead { letter, event } => Some((letter, event)),
                _ => None,
            })
            .collect();
        if dead.is_empty() {
            statement.fetch_all(&self.pool).await?;
            return Ok(());
        }
        // A dead letter and its outbox row go with the attempt that made it, or not at all.
        let mut tx = self.pool.begin().await?;
        let recorded = statement.fetch_all(&mut *tx).await?;
        for (letter, event) in dead {
            let applied = recorded
                .iter()
                .any(|(id, name)| *id == letter.notification_id && name == letter.channel.as_str());
            if !applied {
                continue;
            }
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
