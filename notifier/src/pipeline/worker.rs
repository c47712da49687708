//! The channel workers: deliver a job through its provider and record how it went. The same code
//! reads a channel's topic and its retry topics; a retry job carries a due time, and one that is
//! not due yet pauses its partition until it is.
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
use platform::{
    db::unix_millis,
    shutdown::CancellationToken,
    topic::{Consumer, Delivery, Message},
};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Context, Job, consume::Handled, event_type, outbox_event, router::poison};
use crate::{
    domain::{Channel, DeliveryStatus, UserId},
    providers::DeliveryError,
    store::{DeadLetter, Outcome},
};

pub async fn run(
    context: Arc<Context>,
    channel: Channel,
    consumer: Box<dyn Consumer>,
    stop: CancellationToken,
) {
    let stage = format!("worker.{channel}");
    super::consume::run(&stage, consumer, stop, |delivery| {
        let context = context.clone();
        async move { handle(&context, channel, &delivery).await }
    })
    .await;
}

/// Handles one job from `channel`'s topic or one of its retry topics.
pub async fn handle(
    context: &Context,
    channel: Channel,
    delivery: &Delivery,
) -> anyhow::Result<Handled> {
    let Ok(job) = serde_json::from_slice::<Job>(&delivery.payload) else {
        poison("worker", delivery);
        return Ok(Handled::Done);
    };
    if job.channel != channel {
        poison("worker", delivery);
        return Ok(Handled::Done);
    }
    if let Some(due) = job.due_at_ms {
        let wait = due.saturating_sub(unix_millis(context.clock.now()));
        if wait > 0 {
            return Ok(Handled::NotDue(Duration::from_millis(wait as u64)));
        }
    }

    let id = job.notification_id;
    let Some(work) = context.store.work(id).await? else {
        tracing::warn!(notification = %id, "a job names an unknown notification");
        return Ok(Handled::Done);
    };
    match work.status(channel) {
        Some(DeliveryStatus::Queued | DeliveryStatus::Retrying) => {}
        Some(status) => {
            // Final (a duplicate job: the first one finished it), or pending, which a job never
            // is: the router stores `queued` before it publishes.
            metrics::counter!("notifier_jobs_skipped_total", "channel" => channel.as_str(), "status" => status.as_str())
                .increment(1);
            return Ok(Handled::Done);
        }
        None => {
            tracing::warn!(notification = %id, %channel, "a job for a channel the notification does not have");
            return Ok(Handled::Done);
        }
    }
    // One attempt per attempt number: a duplicate of this job (or one from before a redrive)
    // finds the attempt taken, and does not call the provider.
    let claimed = context
        .store
        .claim(id, channel, job.attempt, job.id, context.clock.now())
        .await?;
    if !claimed {
        metrics::counter!("notifier_jobs_skipped_total", "channel" => channel.as_str(), "status" => "stale")
            .increment(1);
        return Ok(Handled::Done);
    }
    let notification = &work.notification;
    let user = match UserId::parse(&notification.user_id) {
        Some(user_id) => context.store.user(&user_id).await?,
        None => None,
    };

    let started = std::time::Instant::now();
    let now = context.clock.now();
    let result = match &user {
        Some(user) => {
            context
                .providers
                .deliver(notification, user, channel, now)
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

    let now = context.clock.now();
    let outcome = match result {
        Ok(()) => Outcome::Delivered,
        Err(err) => {
            let error = err.to_string();
            let delays = &context.settings.retry_delays;
            let retry = job.attempt.saturating_sub(job.first_attempt) as usize;
            match (&err, delays.get(retry)) {
                (DeliveryError::Retryable(_) | DeliveryError::RateLimited { .. }, Some(&delay)) => {
                    let wait = match err {
                        // Honoured up to the longest delay: a provider cannot hold a retry topic's
                        // partition, and every job behind it, for longer than that.
                        DeliveryError::RateLimited { retry_after } => {
                            delay.max(retry_after.min(longest(delays)))
                        }
                        _ => delay,
                    };
                    // The retry topic whose delay covers the wait, so that a partition's head is
                    // never due much later than the jobs behind it.
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
                    let topic = context.topology.retry(channel, topic_delay);
                    context
                        .producer
                        .publish(Message::new(
                            topic,
                            notification.user_id.clone(),
                            serde_json::to_vec(&next).expect("a job serialises"),
                        ))
                        .await
                        .context("publishing a retry")?;
                    Outcome::Retry { error }
                }
                _ => dead(context, &job, &notification.user_id, error, now).await?,
            }
        }
    };
    context.store.record(id, channel, &outcome, now).await?;
    let outcome_name = match &outcome {
        Outcome::Delivered => "delivered",
        Outcome::Retry { .. } => "retry",
        Outcome::Dead { .. } => {
            context.wake.notify_one();
            "dead"
        }
    };
    metrics::counter!("notifier_attempts_total", "channel" => channel.as_str(), "outcome" => outcome_name)
        .increment(1);
    Ok(Handled::Done)
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
