//! A notification request, checked at intake, and what is kept of it.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Channel, Invalid, Priority, Template, User, template};

/// A notification as asked for, not yet checked: [`Notification::parse`] checks it.
#[derive(Debug, Clone)]
pub struct NotificationRequest {
    pub user_id: String,
    /// A template's name: `welcome`, `payment_receipt` or `password_reset`.
    pub template: String,
    /// The template's fields.
    pub data: Map<String, Value>,
    /// The channels to use, by name; `None`: every channel the user can be reached on.
    pub channels: Option<Vec<String>>,
    pub priority: Priority,
    /// A repeat with the same key is the first notification, and sends nothing new.
    pub idempotency_key: Option<String>,
}

/// A notification that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub id: Uuid,
    pub user_id: String,
    pub template: &'static str,
    pub data: Map<String, Value>,
    /// The channels asked for (before preferences, which the router applies).
    pub channels: Vec<Channel>,
    pub priority: Priority,
    pub idempotency_key: Option<String>,
    pub created_at: OffsetDateTime,
}

impl Notification {
    pub const MAX_KEY: usize = 255;

    /// Checks `body` against its template and its user (already looked up).
    pub fn parse(
        body: NotificationRequest,
        user: &User,
        now: OffsetDateTime,
    ) -> Result<Self, Invalid> {
        let template: &Template = template::find(&body.template)
            .ok_or_else(|| Invalid::new("template", "is not a known template"))?;
        if let Some(field) = template.missing_field(&body.data) {
            return Err(Invalid::new(
                format!("data/{field}"),
                "is required by the template",
            ));
        }
        let channels = match &body.channels {
            None => Channel::ALL
                .into_iter()
                .filter(|channel| user.reachable_on(*channel))
                .collect(),
            Some(names) => {
                let mut channels = Vec::new();
                for (i, name) in names.iter().enumerate() {
                    let channel = Channel::parse(name).ok_or_else(|| {
                        Invalid::new(
                            format!("channels/{i}"),
                            "is not a channel (email, sms, push, webhook)",
                        )
                    })?;
                    if !user.reachable_on(channel) {
                        return Err(Invalid::new(
                            format!("channels/{i}"),
                            format!("the user has no {channel} contact"),
                        ));
                    }
                    if !channels.contains(&channel) {
                        channels.push(channel);
                    }
                }
                channels
            }
        };
        if channels.is_empty() {
            return Err(Invalid::new(
                "channels",
                "the user cannot be reached on any channel",
            ));
        }
        if let Some(key) = &body.idempotency_key
            && (key.is_empty()
                || key.len() > Self::MAX_KEY
                || !key.bytes().all(|b| (0x20..=0x7e).contains(&b)))
        {
            return Err(Invalid::new(
                "idempotency_key",
                "must be 1 to 255 printable ASCII characters",
            ));
        }
        Ok(Self {
            id: Uuid::now_v7(),
            user_id: user.id.as_str().to_owned(),
            template: template.name,
            data: body.data,
            channels,
            priority: body.priority,
            idempotency_key: body.idempotency_key,
            created_at: now,
        })
    }
}
