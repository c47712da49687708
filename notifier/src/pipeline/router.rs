//! The router: reads the intake topic, decides per channel (preferences, throttle), and publishes
//! one job per queued channel to that channel's topic.
//!
//! It works a batch of intake records at a time (`consume.rs`): one query reads the batch's
//! notifications with their deliveries and users, one counts the users' recent deliveries for the
//! throttle, one stores every decision, one `publish_all` sends every job, and one commit covers
//! the batch. The throttle counts what the batch itself queues, in order, so a batch decides as
//! the records would have one by one.
//!
//! Replays are harmless by construction. A decision is stored with a conditional update
//! (`pending` → `queued` | `skipped` | `throttled`), so a replayed intake message finds nothing
//! pending and decides nothing twice; and it publishes the jobs of every delivery that is
//! `queued`, so a router that died between storing its decision and publishing (or before
//! committing) publishes them on the replay. A job published twice is skipped by the worker that
//! finds the delivery already final. The order (store, publish, commit) is what makes a crash at
//! any point lose nothing.

use std::{collections::HashMap, sync::Arc};

use anyhow::Context as _;
use platform::{
    shutdown::CancellationToken,
    topic::{
        Consumer, Delivery, Message,
        consume::{self, Handled},
    },
};
use uuid::Uuid;

use super::Context;
use crate::{
    domain::{Channel, DeliveryStatus, Priority, Route, route},
    messages::{Intake, Job, poison},
    store::{Decision, Work},
};

pub async fn run(context: Arc<Context>, consumer: Box<dyn Consumer>, stop: CancellationToken) {
    let batch_size = context.settings.batch_size;
    consume::run(
        crate::SYSTEM,
        "router",
        consumer,
        batch_size,
        stop,
        |batch| {
            let context = context.clone();
            async move { handle(&context, &batch).await }
        },
    )
    .await;
}

/// Routes a batch of intake messages; every record is done with once this returns.
pub async fn handle(context: &Context, batch: &[Delivery]) -> anyhow::Result<Vec<Handled>> {
    // A notification's intake message may come twice (the relay publishes at least once); it is
    // routed once.
    let mut ids: Vec<Uuid> = Vec::new();
    for delivery in batch {
        match serde_json::from_slice::<Intake>(&delivery.payload) {
            Ok(intake) if !ids.contains(&intake.notification_id) => {
                ids.push(intake.notification_id);
            }
            Ok(_) => {}
            Err(_) => poison("router", delivery),
        }
    }
    let mut works: HashMap<Uuid, Work> = context
        .store
        .work(&ids)
        .await?
        .into_iter()
        .map(|work| (work.notification.id, work))
        .collect();
    // In intake order, which is each user's order.
    let works: Vec<Work> = ids
        .iter()
        .filter_map(|id| {
            let work = works.remove(id);
            if work.is_none() {
                tracing::warn!(notification = %id, "the intake topic names an unknown notification");
            }
            work
        })
        .collect();

    let now = context.clock.now();
    let mut throttle = Throttling::count(context, &works, &ids, now).await?;
    let mut decisions = Vec::new();
    // Jobs to publish: decided `queued` here, or by an earlier delivery of the same message that
    // may not have published.
    let mut queued: Vec<(&Work, Channel)> = Vec::new();
    for work in &works {
        let notification = &work.notification;
        for &(channel, status) in &work.statuses {
            match status {
                DeliveryStatus::Pending => {
                    let decision = match &work.user {
                        None => Route::Skip("the user no longer exists".to_owned()),
                        Some(user) => {
                            // Only a normal notification to an opted-in channel can be throttled.
                            let counted =
                                notification.priority == Priority::Normal && user.opted_in(channel);
                            let recent = if counted {
                                throttle.recent(&notification.user_id, channel)
                            } else {
                                0
                            };
                            let decision = route(
                                notification.priority,
                                user,
                                channel,
                                recent,
                                context.settings.throttle,
                            );
                            if counted && decision == Route::Queue {
                                throttle.queued(&notification.user_id, channel);
                            }
                            decision
                        }
                    };
                    decisions.push((
                        work,
                        Decision {
                            notification_id: notification.id,
                            channel,
                            route: decision,
                        },
                    ));
                }
                DeliveryStatus::Queued => queued.push((work, channel)),
                _ => {}
            }
        }
    }

    let applied = context
        .store
        .route(
            &decisions
                .iter()
                .map(|(_, decision)| decision.clone())
                .collect::<Vec<_>>(),
            now,
        )
        .await?;
    // Notifications whose decision did not apply: another router decided first (this one was
    // presumed dead and its partition moved on, say). What it decided is re-read below.
    let mut raced: Vec<Uuid> = Vec::new();
    for ((work, decision), applied) in decisions.iter().zip(applied) {
        let name = match &decision.route {
            Route::Queue => "queued",
            Route::Skip(_) => "skipped",
            Route::Throttle(_) => "throttled",
        };
        metrics::counter!("notifier_routed_total", "channel" => decision.channel.as_str(), "decision" => name)
            .increment(1);
        if !applied {
            if !raced.contains(&decision.notification_id) {
                raced.push(decision.notification_id);
            }
        } else if decision.route == Route::Queue {
            queued.push((*work, decision.channel));
        }
    }

    let mut jobs: Vec<Message> = queued
        .iter()
        .map(|(work, channel)| {
            job(
                context,
                &work.notification.user_id,
                work.notification.id,
                *channel,
            )
        })
        .collect();
    if !raced.is_empty() {
        // The router that won may have died before publishing: publish whatever is queued now.
        // A duplicate job is harmless (the worker's claim lets one attempt through).
        for work in context.store.work(&raced).await? {
            for &(channel, status) in &work.statuses {
                let already = queued
                    .iter()
                    .any(|(w, c)| w.notification.id == work.notification.id && *c == channel);
                if status == DeliveryStatus::Queued && !already {
                    jobs.push(job(
                        context,
                        &work.notification.user_id,
                        work.notification.id,
                        channel,
                    ));
                }
            }
        }
    }
    context
        .producer
        .publish_all(jobs)
        .await
        .context("publishing jobs")?;
    Ok(vec![Handled::Done; batch.len()])
}

/// The first job of `notification`'s delivery on `channel`, for that channel's topic.
fn job(context: &Context, user: &str, notification: Uuid, channel: Channel) -> Message {
    Message::new(
        context.topology.channel(channel),
        user.to_owned(),
        serde_json::to_vec(&Job::first(notification, channel, 0)).expect("a job serialises"),
    )
}

/// Each user's recent deliveries per channel, for the throttle: what the database holds from
/// before this batch, plus what the batch has queued so far.
struct Throttling {
    counts: HashMap<(String, Channel), u32>,
}

impl Throttling {
    /// Counts, in one query, the recent deliveries of the batch's users on the channels its
    /// notifications could be throttled on. The batch's own notifications are left out of the
    /// query and counted here instead: those decided by an earlier delivery of their intake
    /// message as they stand (queued or sent, as one at a time would have counted them), the
    /// pending ones as the batch queues them.
    async fn count(
        context: &Context,
        works: &[Work],
        ids: &[Uuid],
        now: time::OffsetDateTime,
    ) -> anyhow::Result<Self> {
        let counted = |work: &Work, channel: Channel| {
            work.notification.priority == Priority::Normal
                && work
                    .user
                    .as_ref()
                    .is_some_and(|user| user.opted_in(channel))
        };
        let mut users: Vec<String> = Vec::new();
        let mut channels: Vec<Channel> = Vec::new();
        for work in works {
            for &(channel, status) in &work.statuses {
                if status == DeliveryStatus::Pending && counted(work, channel) {
                    if !users.contains(&work.notification.user_id) {
                        users.push(work.notification.user_id.clone());
                    }
                    if !channels.contains(&channel) {
                        channels.push(channel);
                    }
                }
            }
        }
        let since = now - context.settings.throttle.window;
        let mut counts = context
            .store
            .queued_since(&users, &channels, since, ids)
            .await?;
        for work in works {
            for &(channel, status) in &work.statuses {
                let sent = matches!(
                    status,
                    DeliveryStatus::Queued
                        | DeliveryStatus::Retrying
                        | DeliveryStatus::Delivered
                        | DeliveryStatus::Dead
                );
                if sent && work.notification.priority == Priority::Normal {
                    *counts
                        .entry((work.notification.user_id.clone(), channel))
                        .or_default() += 1;
                }
            }
        }
        Ok(Self { counts })
    }

    fn recent(&self, user: &str, channel: Channel) -> u32 {
        self.counts
            .get(&(user.to_owned(), channel))
            .copied()
            .unwrap_or(0)
    }

    fn queued(&mut self, user: &str, channel: Channel) {
        *self.counts.entry((user.to_owned(), channel)).or_default() += 1;
    }
}
