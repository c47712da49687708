//! The providers that deliver a rendered notification on each channel. Each one sorts its
//! failures into retryable (timeouts, connection errors, 408, 429, 5xx, SMTP 4xx: the message goes
//! to a retry topic) and permanent (other 4xx, SMTP 5xx, a refused or unparsable address: the
//! message goes to dead letters).
//!
//! [`Providers::deliver`] is the one entry point the workers use: it renders the notification for
//! the channel and hands it to that channel's provider with the idempotency key
//! `<notification id>:<channel>` (`…:push:<n>` per device), the same on every retry.
//!
//! - email: [`email`], SMTP with lettre, to any server; [`mailbox`] is the SMTP sink with a page
//!   that the lab and the tests send to;
//! - SMS and push: [`phone::client`], the client of an HTTP provider, which the lab runs as
//!   [`phone::simulator`] (with fault switches);
//! - webhooks: [`webhook`], an HTTP POST, HMAC-signed and SSRF-guarded.

pub mod email;
pub mod mailbox;
pub mod phone;
pub mod webhook;

use std::time::Duration;

use reqwest::{StatusCode, header::HeaderMap};
use time::OffsetDateTime;

use self::{email::EmailSender, phone::client::ProviderClient, webhook::WebhookSender};
use crate::domain::{Channel, Notification, Rendered, User, template};

/// Every channel's provider.
#[derive(Clone)]
pub struct Providers {
    pub email: EmailSender,
    /// SMS and push.
    pub phone: ProviderClient,
    pub webhook: WebhookSender,
}

impl Providers {
    /// Renders `notification` for `channel` and sends it to `user`.
    pub async fn deliver(
        &self,
        notification: &Notification,
        user: &User,
        channel: Channel,
        now: OffsetDateTime,
    ) -> Result<(), DeliveryError> {
        let template = template::find(notification.template).ok_or_else(|| {
            DeliveryError::Permanent(format!("no template {:?}", notification.template))
        })?;
        let rendered = template
            .render(channel, &notification.data)
            .map_err(|err| DeliveryError::Permanent(format!("rendering: {err}")))?;
        let key = format!("{}:{channel}", notification.id);
        // The contact was checked at intake; the user may have removed it since.
        let no_contact = || DeliveryError::Permanent(format!("the user has no {channel} contact"));
        match rendered {
            Rendered::Email { subject, body } => {
                let to = user.email.as_deref().ok_or_else(no_contact)?;
                self.email.send(&key, to, &subject, &body).await
            }
            Rendered::Sms { text } => {
                let to = user.phone.as_deref().ok_or_else(no_contact)?;
                self.phone.send_sms(&key, to, &text).await
            }
            Rendered::Push { title, body } => {
                if user.push_tokens.is_empty() {
                    return Err(no_contact());
                }
                // Every device; on a retry the devices already reached answer from their keys.
                for (device, token) in user.push_tokens.iter().enumerate() {
                    self.phone
                        .send_push(&format!("{key}:{device}"), token, &title, &body)
                        .await?;
                }
                Ok(())
            }
            Rendered::Webhook { payload } => {
                let url = user.webhook_url.as_deref().ok_or_else(no_contact)?;
                self.webhook
                    .send(url, notification.id, &payload, now.unix_timestamp())
                    .await
            }
        }
    }
}

/// Why a delivery failed, as the retry logic needs to know it.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Worth trying again later.
    #[error("retryable: {0}")]
    Retryable(String),
    /// The provider asked us to slow down: try again after `retry_after`, not before (up to the
    /// longest retry delay: a worker waits no longer than that, see `pipeline/worker.rs`).
    #[error("rate limited for {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// Trying again cannot help.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// How long a 429 without a usable `Retry-After` waits.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Sorts a provider's answer: 2xx delivered; 429 rate limited (honouring `Retry-After` in
/// seconds); 408 and 5xx retryable; any other status permanent.
pub fn classify(status: StatusCode, headers: &HeaderMap) -> Result<(), DeliveryError> {
    match status {
        status if status.is_success() => Ok(()),
        StatusCode::TOO_MANY_REQUESTS => Err(DeliveryError::RateLimited {
            retry_after: headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok())
                .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs),
        }),
        status if status == StatusCode::REQUEST_TIMEOUT || status.is_server_error() => Err(
            DeliveryError::Retryable(format!("the provider answered {status}")),
        ),
        status => Err(DeliveryError::Permanent(format!(
            "the provider answered {status}"
        ))),
    }
}
