//! A notification request, checked at intake, and what is kept of it.

use serde::Deserialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Channel, Invalid, Priority, Template, User, template};

/// The body of `POST /v1/notifications`, as sent.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationBody {
    #[schema(example = "user:42")]
    pub user_id: String,
    /// `welcome`, `payment_receipt` or `password_reset`.
    #[schema(example = "welcome")]
    pub template: String,
    /// The template's fields.
    #[schema(value_type = Object, example = json!({"name": "Ada"}))]
    pub data: Map<String, Value>,
    /// The channels to use; by default every channel the user can be reached on.
    pub channels: Option<Vec<String>>,
    #[serde(default)]
    pub priority: Priority,
    /// A repeat with the same key returns the first notification and sends nothing new.
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
        body: NotificationBody,
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
