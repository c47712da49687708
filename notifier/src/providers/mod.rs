//! The providers that deliver a rendered notification on each channel. Each one sorts its
//! failures into retryable (timeouts, connection errors, 408, 429, 5xx, SMTP 4xx: the message goes
//! to a retry topic) and permanent (other 4xx, SMTP 5xx, a refused or unparsable address: the
//! message goes to dead letters).
//!
//! - [`webhook`]: an HTTP POST, HMAC-signed and SSRF-guarded.
//! - [`email`]: SMTP with lettre, to any server; [`mailbox`] is the SMTP sink with a page that
//!   the lab and the tests send to.
//! - SMS and push: [`simulator`] (the providers, with fault switches) and [`simulated`] (their
//!   client).

pub mod email;
pub mod mailbox;
pub mod simulated;
pub mod simulator;
pub mod webhook;

use std::time::Duration;

use reqwest::{StatusCode, header::HeaderMap};

/// Why a delivery failed, as the retry logic needs to know it.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Worth trying again later.
    #[error("retryable: {0}")]
    Retryable(String),
    /// The provider asked us to slow down: try again after `retry_after`, not before.
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
