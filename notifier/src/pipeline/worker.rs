//! The channel workers: deliver a job through its provider and record how it went. The same code
//! reads a channel's topic and its retry topics; a retry job carries a due time, and one that is
//! not due yet pauses its partition until it is.
//!
//! A worker takes a batch of jobs at a time (`consume.rs`): one statement claims every attempt
//! and reads what the claims need (the notification and its user), the provider calls run
//! concurrently, one user's jobs one after another in their topic's order (a user's
//! notifications reach the provider in the order they were accepted, as with one call at a
//! time), then one `publish_all` sends the retries and one statement records every outcome,
//! before the batch's one commit.
//!
//! After an attempt:
//! - delivered: recorded, done;
//! - failed and worth retrying (timeouts, connection errors, 408, 429, 5xx) with retry topics
//!   left: the job goes to the next retry topic, due after that topic's delay (or after the
//!   provider's `Retry-After`, if longer), and the attempt is recorded as `retry`;
//! - failed for good (another 4xx, an invalid address, no contact left) or out of retries: a dead
//!   letter, recorded with the attempt and written to the outbox for the dead-letter topic in one
//!   transaction.
//!
//! The retry job is published before the attempt is recorded, and the offset committed after: a
//! crash in between replays the job, which attempts once more (the provider's idempotency key
//! absorbs it if the first attempt did arrive) and may leave a second retry job, which finds the
//! delivery final and does nothing.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use futures::future::join_all;
use platform::{
    db::unix_millis,
    shutdown::CancellationToken,
    topic::{
        Consumer, Delivery, Message,
        consume::{self, Handled},
    },
};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::Context;
use crate::{
    domain::Channel,
    messages::{Job, event_type, outbox_event, poison},
    providers::DeliveryError,
    store::{Attempted, Claim, Claimed, DeadLetter, Outcome, Work},
};

pub async fn run(
    context: Arc<Context>,
    channel: Channel,
    consumer: Box<dyn Consumer>,
    stop: CancellationToken,
) {
    let stage = format!("worker.{channel}");
    let batch_size = context.settings.batch_size;
    consume::run(crate::SYSTEM, &stage, consumer, batch_size, stop, |batch| {
        let context = context.clone();
        async move { handle(&context, channel, &batch).await }
    })
    .await;
}

/// Handles a batch of jobs from `channel`'s topic or its retry topics.
pub async fn handle(
    context: &Context,
    channel: Channel,
    batch: &[Delivery],
) -> anyhow::Result<Vec<Handled>> {
    let now_ms = unix_millis(context.clock.now());
    let mut handled = vec![Handled::Done; batch.len()];
    // A partition paused at a job that is not due: the jobs behind it wait with it (they come
    // again after the resume), untouched.
    let mut paused: Vec<(&str, i32, Duration)> = Vec::new();
    let mut jobs: Vec<Job> = Vec::new();
    for (delivery, handled) in batch.iter().zip(&mut handled) {
        if let Some(&(_, _, wait)) = paused.iter().find(|(topic, partition, _)| {
            *topic == delivery.topic && *partition == delivery.partition
        }) {
            *handled = Handled::NotDue(wait);
            continue;
        }
        let job = match serde_json::from_slice::<Job>(&delivery.payload) {
            Ok(job) if job.channel == channel => job,
            _ => {
                poison("worker", delivery);
                continue;
            }
        };
        if let Some(due) = job.due_at_ms {
            let wait = due.saturating_sub(now_ms);
            if wait > 0 {
                let wait = Duration::from_millis(wait as u64);
                paused.push((&delivery.topic, delivery.partition, wait));
                *handled = Handled::NotDue(wait);
                continue;
            }
        }
        jobs.push(job);
    }
    // One claim per delivery at a time: a delivery's second job in the batch (a duplicate, or a
    // redrive behind a stale one) is claimed after the first one's outcome is recorded, as it
    // would have been one job at a time.
    for round in rounds(jobs) {
        attempt(context, channel, round).await?;
    }
    Ok(handled)
}

/// Splits `jobs` into rounds, in order, in which each delivery appears at most once.
fn rounds(jobs: Vec<Job>) -> Vec<Vec<Job>> {
    let mut rounds: Vec<Vec<Job>> = Vec::new();
    for job in jobs {
        let free = rounds.iter_mut().find(|round| {
            !round
                .iter()
                .any(|other| other.notification_id == job.notification_id)
        });
        match free {
            Some(round) => round.push(job),
            None => rounds.push(vec![job]),
        }
    }
    rounds
}

/// Claims, makes and records the attempts of `jobs`, each a different delivery.
async fn attempt(context: &Context, channel: Channel, jobs: Vec<Job>) -> anyhow::Result<()> {
    // One attempt per attempt number: a duplicate of a job (or one from before a redrive) finds
    // the attempt taken, and does not call the provider.
    let claims: Vec<Claim> = jobs
        .iter()
        .map(|job| Claim {
            notification_id: job.notification_id,
            channel,
            attempt: job.attempt,
            job: job.id,
        })
        .collect();
    let claimed = context.store.claim(&claims, context.clock.now()).await?;
    let mut won: Vec<(Job, Work)> = Vec::new();
    for (job, claimed) in jobs.into_iter().zip(claimed) {
        match claimed {
            Claimed::Won(work) => won.push((job, *work)),
            Claimed::Lost(status) => {
                // Final (a duplicate job: the first one finished it), taken by another job
                // (stale), or a delivery that does not exist.
                let status = match status {
                    Some(status) if status.is_final() => status.as_str(),
                    Some(_) => "stale",
                    None => {
                        tracing::warn!(notification = %job.notification_id, %channel, "a job for a delivery that does not exist");
                        "unknown"
                    }
                };
                metrics::counter!("notifier_jobs_skipped_total", "channel" => channel.as_str(), "status" => status)
                    .increment(1);
            }
        }
    }
    if won.is_empty() {
        return Ok(());
    }

    let results = deliver_all(context, channel, &won).await;

    let now = context.clock.now();
    let mut retries = Vec::new();
    let mut attempts = Vec::with_capacity(won.len());
    for ((job, work), result) in won.iter().zip(results) {
        let user = &work.notification.user_id;
        let outcome = match result {
            Ok(()) => Outcome::Delivered,
            Err(err) => match retry(context, job, &err, now) {
                Some((topic, next)) => {
                    retries.push(Message::new(
                        topic,
                        user.clone(),
                        serde_json::to_vec(&next).expect("a job serialises"),
                    ));
                    Outcome::Retry {
                        error: err.to_string(),
                    }
                }
                None => dead(context, job, user, err.to_string(), now).await?,
            },
        };
        attempts.push(Attempted {
            notification_id: job.notification_id,
            channel,
            outcome,
        });
    }
    if !retries.is_empty() {
        context
            .producer
            .publish_all(retries)
            .await
            .context("publishing retries")?;
    }
    context.store.record(&attempts, now).await?;
    let mut woken = false;
    for attempted in &attempts {
        let outcome_name = match &attempted.outcome {
            Outcome::Delivered => "delivered",
            Outcome::Retry { .. } => "retry",
            Outcome::Dead { .. } => {
                if !woken {
                    context.wake.notify_one();
                    woken = true;
                }
                "dead"
            }
        };
        metrics::counter!("notifier_attempts_total", "channel" => channel.as_str(), "outcome" => outcome_name)
            .increment(1);
    }
    Ok(())
}

/// Calls the provider for every claimed job: users concurrently, each user's jobs in order.
/// Answers in the order of `won`.
async fn deliver_all(
    context: &Context,
    channel: Channel,
    won: &[(Job, Work)],
) -> Vec<Result<(), DeliveryError>> {
    let mut by_user: Vec<Vec<usize>> = Vec::new();
    for (index, (_, work)) in won.iter().enumerate() {
        let user = &work.notification.user_id;
        match by_user
            .iter_mut()
            .find(|indices| &won[indices[0]].1.notification.user_id == user)
        {
            Some(indices) => indices.push(index),
            None => by_user.push(vec![index]),
        }
    }
    let answered = join_all(by_user.into_iter().map(|indices| async move {
        let mut answers = Vec::with_capacity(indices.len());
        for index in indices {
            answers.push((index, deliver(context, channel, &won[index].1).await));
        }
        answers
    }))
    .await;
    let mut results: Vec<Option<Result<(), DeliveryError>>> = won.iter().map(|_| None).collect();
    for (index, result) in answered.into_iter().flatten() {
        results[index] = Some(result);
    }
    results
        .into_iter()
        .map(|result| result.expect("every job answered"))
        .collect()
}

/// One provider call, timed.
async fn deliver(context: &Context, channel: Channel, work: &Work) -> Result<(), DeliveryError> {
    let started = std::time::Instant::now();
    let result = match &work.user {
        Some(user) => {
            context
                .providers
                .deliver(&work.notification, user, channel, context.clock.now())
                .await
        }
        None => Err(DeliveryError::Permanent(
            "the user no longer exists".to_owned(),
        )),
    };
    let result_name = match &result {
        Ok(()) => "delivered",
        Err(DeliveryError::Permanent(_)) => "permanent",
        Err(_) => "retryable",
    };
    metrics::histogram!("notifier_provider_seconds", "channel" => channel.as_str(), "result" => result_name)
        .record(started.elapsed().as_secs_f64());
    result
}

/// The retry of `job` after `err`, and its topic; `None` if it is not to be retried (a permanent
/// failure, or no retry topics left).
fn retry(
    context: &Context,
    job: &Job,
    err: &DeliveryError,
    now: OffsetDateTime,
) -> Option<(String, Job)> {
    let delays = &context.settings.retry_delays;
    let retry = job.attempt.saturating_sub(job.first_attempt) as usize;
    let delay = match (err, delays.get(retry)) {
        (DeliveryError::Retryable(_) | DeliveryError::RateLimited { .. }, Some(&delay)) => delay,
        _ => return None,
    };
    let wait = match err {
        // Honoured up to the longest delay: a provider cannot hold a retry topic's partition, and
        // every job behind it, for longer than that.
        DeliveryError::RateLimited { retry_after } => {
            delay.max((*retry_after).min(longest(delays)))
        }
        _ => delay,
    };
    // The retry topic whose delay covers the wait, so that a partition's head is never due much
    // later than the jobs behind it.
    let topic_delay = delays
        .iter()
        .copied()
        .find(|d| *d >= wait)
        .unwrap_or_else(|| longest(delays));
    let next = Job {
        id: Uuid::now_v7(),
        attempt: job.attempt.saturating_add(1),
        due_at_ms: Some(unix_millis(now).saturating_add(wait.as_millis() as i64)),
        ..job.clone()
    };
    Some((context.topology.retry(job.channel, topic_delay), next))
}

/// The dead letter for `job`, and its message for the dead-letter topic with the delivery's whole
/// history (what a person looking at the dead letters needs, without a database query).
async fn dead(
    context: &Context,
    job: &Job,
    user: &str,
    error: String,
    now: OffsetDateTime,
) -> anyhow::Result<Outcome> {
    let letter = DeadLetter {
        id: Uuid::now_v7(),
        notification_id: job.notification_id,
        channel: job.channel,
        error,
        attempts: job.attempt.saturating_add(1),
        created_at: now,
        redriven_at: None,
    };
    let mut history = context
        .store
        .notification(job.notification_id)
        .await?
        .and_then(|record| {
            record
                .deliveries
                .into_iter()
                .find(|delivery| delivery.channel == job.channel)
        })
        .map(|delivery| delivery.attempts)
        .unwrap_or_default();
    history.push(crate::store::AttemptRecord {
        at: now,
        outcome: "failed".to_owned(),
        error: Some(letter.error.clone()),
    });
    let message = json!({
        "dead_letter": &letter,
        "user_id": user,
        "history": history,
    });
    let event = outbox_event(
        context.topology.dead(),
        user,
        event_type::DEAD,
        &message,
        now,
    );
    Ok(Outcome::Dead { letter, event })
}

fn longest(delays: &[Duration]) -> Duration {
    delays.iter().copied().max().unwrap_or_default()
}
