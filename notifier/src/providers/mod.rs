//! The providers that deliver a rendered notification on each channel. Each one sorts its
//! failures into retryable (timeouts, connection errors, 408, 429, 5xx: the message goes to a
//! retry topic) and permanent (other 4xx, a refused address: the message goes to dead letters).
//!
//! Built so far: [`webhook`]. Email (SMTP), SMS and push come with the pipeline.

pub mod webhook;

/// Why a delivery failed, as the retry logic needs to know it.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Worth trying again later.
    #[error("retryable: {0}")]
    Retryable(String),
    /// Trying again cannot help.
    #[error("permanent: {0}")]
    Permanent(String),
}
