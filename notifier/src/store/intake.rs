//! Intake commits in groups, on both engines.
//!
//! Every accepted notification must be on disk before its 202, and a transaction of its own per
//! notification made intake the costliest step of the pipeline: on SQLite, concurrent requests
//! queued for the one write lock (in SQLite's busy handler, which sleeps 1, 2, 5, 10… ms between
//! tries) and then each paid its own sync to disk; on PostgreSQL, each paid a statement and a
//! commit, three in four of the statements the pipeline ran besides reading users (`DESIGN.md`
//! §10).
//!
//! Instead, [`IntakeWriter::insert`] hands the rows to one writer task, which takes every request
//! waiting (up to [`INTAKE_GROUP`], never waiting for more) and has the engine store them in one
//! transaction ([`InsertGroup`]): one commit for the group, and each request answered only once
//! its group is committed, so "accepted" still means "on disk". A request that finds nothing
//! waiting is written at once, as a group of one. A group that fails is written again one request
//! at a time, so a request that cannot be stored fails alone.

use std::collections::HashMap;

use async_trait::async_trait;
use platform::outbox::OutboxEvent;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{Inserted, StoreError, corrupt};
use crate::domain::Notification;

/// The most notifications intake commits in one transaction.
pub const INTAKE_GROUP: usize = 64;

/// A notification to insert, with its message to the intake topic.
#[derive(Debug)]
pub struct IntakeRequest {
    pub notification: Notification,
    pub intake: OutboxEvent,
    answer: oneshot::Sender<Result<Inserted, StoreError>>,
}

/// How an engine stores a group: every request's notification, its deliveries and its intake
/// message, in one transaction, all or nothing; a request whose idempotency key was used before
/// (in the table, or earlier in the group) writes nothing. Answers in the group's order.
#[async_trait]
pub trait InsertGroup: Send + Sync + 'static {
    async fn insert_group(&self, group: &[IntakeRequest]) -> Result<Vec<Inserted>, StoreError>;
}

/// The way to the writer task, which stops when the last clone of this is dropped.
#[derive(Debug, Clone)]
pub struct IntakeWriter {
    requests: mpsc::Sender<IntakeRequest>,
}

impl IntakeWriter {
    /// Must be called inside a Tokio runtime: it starts the writer task.
    pub fn start(engine: impl InsertGroup) -> Self {
        let (requests, received) = mpsc::channel(INTAKE_GROUP * 4);
        tokio::spawn(write(engine, received));
        Self { requests }
    }

    /// Stores the notification in the next group; returns once that group is committed.
    pub async fn insert(
        &self,
        notification: &Notification,
        intake: &OutboxEvent,
    ) -> Result<Inserted, StoreError> {
        let (answer, answered) = oneshot::channel();
        let request = IntakeRequest {
            notification: notification.clone(),
            intake: intake.clone(),
            answer,
        };
        // Either fails only if the writer task is gone, which it is not while a store holds this
        // (unless it panicked, or its runtime is shutting down).
        self.requests
            .send(request)
            .await
            .map_err(|_| sqlx::Error::WorkerCrashed)?;
        answered.await.map_err(|_| sqlx::Error::WorkerCrashed)?
    }
}

/// The writer task: commits the requests waiting, in groups (module docs).
async fn write(engine: impl InsertGroup, mut requests: mpsc::Receiver<IntakeRequest>) {
    let mut group = Vec::with_capacity(INTAKE_GROUP);
    while requests.recv_many(&mut group, INTAKE_GROUP).await > 0 {
        let answers = match engine.insert_group(&group).await {
            Ok(inserted) => inserted.into_iter().map(Ok).collect(),
            Err(err) if group.len() == 1 => vec![Err(err)],
            // One request that cannot be stored must not fail the others with it.
            Err(_) => {
                let mut answers = Vec::with_capacity(group.len());
                for request in &group {
                    answers.push(
                        engine
                            .insert_group(std::slice::from_ref(request))
                            .await
                            .map(|mut inserted| inserted.remove(0)),
                    );
                }
                answers
            }
        };
        for (request, answer) in group.drain(..).zip(answers) {
            // A caller that stopped waiting (its request was cancelled) needs no answer: its
            // notification is stored all the same, as it would be had the commit come first.
            let _ = request.answer.send(answer);
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
