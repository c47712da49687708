//! What travels on the pipeline's topics: their names ([`Topology`]), the messages on them
//! ([`Intake`], [`Job`]), the outbox events that carry those messages, and what becomes of a record
//! that does not parse ([`poison`]). Intake and redrive write these messages (`service.rs`), the
//! stages read them (`pipeline/`), and both depend on this module rather than on each other.

use std::time::Duration;

use platform::{outbox::OutboxEvent, topic::Delivery};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::Channel;

/// The names of the pipeline's topics and consumer groups, all under one prefix (so that tests
/// sharing a broker do not see each other's messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
}

impl Topology {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn intake(&self) -> String {
        format!("{}.intake", self.prefix)
    }

    pub fn channel(&self, channel: Channel) -> String {
        format!("{}.{channel}", self.prefix)
    }

    /// The retry topic with `delay`, named after it (`notifications.sms.retry.30s`,
    /// `….retry.1m30s`: no spaces, which topic names cannot have).
    pub fn retry(&self, channel: Channel, delay: Duration) -> String {
        let delay = humantime::format_duration(delay)
            .to_string()
            .replace(' ', "");
        format!("{}.{channel}.retry.{delay}", self.prefix)
    }

    pub fn dead(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// A consumer group: `<prefix>.<role>`.
    pub fn group(&self, role: &str) -> String {
        format!("{}.{role}", self.prefix)
    }
}

/// The message on the intake topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intake {
    pub notification_id: Uuid,
}

/// The message on a channel or retry topic: deliver `notification_id` on `channel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// This job, as distinct from its duplicates' reruns: copies of one message share it, a
    /// router replay or a retry makes a new one. The worker claims an attempt with it.
    pub id: Uuid,
    pub notification_id: Uuid,
    pub channel: Channel,
    /// The delivery's attempt this job makes, counted over the delivery's whole life (0 for the
    /// first); a worker claims it only if the delivery has made exactly this many.
    pub attempt: u32,
    /// The attempt this chain of retries started at: 0, or the attempts made before a redrive.
    /// The retry budget counts from here.
    #[serde(default)]
    pub first_attempt: u32,
    /// Not to be tried before this instant (unix milliseconds); set on retry topics.
    pub due_at_ms: Option<i64>,
}

impl Job {
    /// The first attempt of a delivery's chain, starting after `attempts` already made.
    pub fn first(notification_id: Uuid, channel: Channel, attempts: u32) -> Self {
        Self {
            id: Uuid::now_v7(),
            notification_id,
            channel,
            attempt: attempts,
            first_attempt: attempts,
            due_at_ms: None,
        }
    }
}

/// The event types the pipeline writes to the outbox.
pub mod event_type {
    pub const ACCEPTED: &str = "notification.accepted";
    pub const REDRIVEN: &str = "delivery.redriven";
    pub const DEAD: &str = "delivery.dead";
}

/// An outbox event keyed by `user`.
pub fn outbox_event(
    topic: String,
    user: &str,
    event_type: &str,
    payload: &impl Serialize,
    now: OffsetDateTime,
) -> OutboxEvent {
    OutboxEvent {
        event_id: Uuid::now_v7(),
        topic,
        key: user.to_owned(),
        event_type: event_type.to_owned(),
        payload: serde_json::to_vec(payload).expect("a pipeline message serialises"),
        created_at: now,
    }
}

/// A record no handler can ever understand: logged and counted, then committed past, since
/// retrying cannot change it and leaving it would block its partition for ever.
pub fn poison(stage: &'static str, delivery: &Delivery) {
    metrics::counter!("notifier_poison_messages_total", "stage" => stage).increment(1);
    tracing::error!(
        stage, topic = %delivery.topic, partition = delivery.partition, offset = delivery.offset,
        "a message that does not parse; skipped"
    );
}
