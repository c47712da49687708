//! The router: reads the intake topic, decides per channel (preferences, throttle), and publishes
//! one job per queued channel to that channel's topic.
//!
//! Replays are harmless by construction. A decision is stored with a conditional update
//! (`pending` → `queued` | `skipped` | `throttled`), so a replayed intake message finds nothing
//! pending and decides nothing twice; and it publishes the jobs of every delivery that is
//! `queued`, so a router that died between storing its decision and publishing (or before
//! committing) publishes them on the replay. A job published twice is skipped by the worker that
//! finds the delivery already final. The order (store, publish, commit) is what makes a crash at
//! any point lose nothing.

use std::sync::Arc;

use anyhow::Context as _;
use platform::{
    shutdown::CancellationToken,
    topic::{Consumer, Delivery, Message},
};

use super::{Context, Intake, Job, consume::Handled};
use crate::domain::{DeliveryStatus, Priority, Route, UserId, route};

pub async fn run(context: Arc<Context>, consumer: Box<dyn Consumer>, stop: CancellationToken) {
    super::consume::run("router", consumer, stop, |delivery| {
        let context = context.clone();
        async move { handle(&context, &delivery).await }
    })
    .await;
}

/// Routes one intake message.
pub async fn handle(context: &Context, delivery: &Delivery) -> anyhow::Result<Handled> {
    let Ok(intake) = serde_json::from_slice::<Intake>(&delivery.payload) else {
        poison("router", delivery);
        return Ok(Handled::Done);
    };
    let id = intake.notification_id;
    let Some(work) = context.store.work(id).await? else {
        tracing::warn!(notification = %id, "the intake topic names an unknown notification");
        return Ok(Handled::Done);
    };
    let notification = &work.notification;
    let user = match UserId::parse(&notification.user_id) {
        Some(user_id) => context.store.user(&user_id).await?,
        None => None,
    };
    let now = context.clock.now();
    let throttle = context.settings.throttle;

    let mut queued = Vec::new();
    // A decision that did not apply: another router decided first (this one was presumed dead
    // and its partition moved on, say). What it decided is re-read below.
    let mut raced = false;
    for &(channel, status) in &work.statuses {
        match status {
            DeliveryStatus::Pending => {
                let decision = match &user {
                    None => Route::Skip("the user no longer exists".to_owned()),
                    Some(user) => {
                        // Counting costs a query; only a normal notification to an opted-in
                        // channel can be throttled.
                        let recent = if notification.priority == Priority::Normal
                            && user.opted_in(channel)
                        {
                            context
                                .store
                                .queued_since(
                                    &notification.user_id,
                                    channel,
                                    now - throttle.window,
                                    id,
                                )
                                .await?
                        } else {
                            0
                        };
                        route(notification.priority, user, channel, recent, throttle)
                    }
                };
                let changed = context.store.route(id, channel, &decision, now).await?;
                let name = match &decision {
                    Route::Queue => "queued",
                    Route::Skip(_) => "skipped",
                    Route::Throttle(_) => "throttled",
                };
                metrics::counter!("notifier_routed_total", "channel" => channel.as_str(), "decision" => name)
                    .increment(1);
                if !changed {
                    raced = true;
                } else if decision == Route::Queue {
                    queued.push(channel);
                }
            }
            // Decided by an earlier delivery of this message that may not have published.
            DeliveryStatus::Queued => queued.push(channel),
            _ => {}
        }
    }

    if raced {
        // The router that won may have died before publishing: publish whatever is queued now.
        // A duplicate job is harmless (the worker's claim lets one attempt through).
        let now_queued = context.store.work(id).await?.map(|work| work.statuses);
        for (channel, status) in now_queued.unwrap_or_default() {
            if status == DeliveryStatus::Queued && !queued.contains(&channel) {
                queued.push(channel);
            }
        }
    }

    let jobs = queued
        .into_iter()
        .map(|channel| {
            let job = Job::first(id, channel, 0);
            Message::new(
                context.topology.channel(channel),
                notification.user_id.clone(),
                serde_json::to_vec(&job).expect("a job serialises"),
            )
        })
        .collect();
    context
        .producer
        .publish_all(jobs)
        .await
        .context("publishing jobs")?;
    Ok(Handled::Done)
}

/// A record no handler can ever understand: logged and counted, then committed past, since
/// retrying cannot change it and leaving it would block its partition for ever.
pub(super) fn poison(stage: &'static str, delivery: &Delivery) {
    metrics::counter!("notifier_poison_messages_total", "stage" => stage).increment(1);
    tracing::error!(
        stage, topic = %delivery.topic, partition = delivery.partition, offset = delivery.offset,
        "a message that does not parse; skipped"
    );
}
