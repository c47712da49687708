//! The payments service's one error type, and the HTTP answer to each variant.
//!
//! None of these answers is stored against the idempotency key: each says "this attempt did not
//! happen, or did not finish", and a retry (fixed, or later) is welcome. The stored answers are
//! the outcomes of a finished payment: a 201, or a 402 decline.

use std::time::Duration;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use platform::problem::{FieldError, Problem};

use crate::{provider::ProviderError, store::StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("Idempotency-Key: {0}")]
    BadKey(&'static str),
    #[error("the API key is not known")]
    UnknownClient,
    /// Another request with this key is still being handled.
    #[error("a request with this idempotency key is in progress")]
    InFlight { retry_after: Duration },
    /// The key was first used for another request.
    #[error("this idempotency key was used with a different request")]
    KeyReused,
    #[error("no such payment")]
    NotFound,
    #[error("the cursor is not one this API returned")]
    BadCursor,
    /// The provider may or may not have charged; the key is unlocked, and a retry with the same
    /// key finds out and finishes.
    #[error("the payment provider did not answer")]
    ProviderUnavailable(#[source] ProviderError),
    /// The provider refused the charge request itself (our bug, not the card).
    #[error("the payment provider refused the request")]
    ProviderRefused(#[source] ProviderError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PaymentError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadKey(_) | Self::BadCursor => StatusCode::BAD_REQUEST,
            Self::UnknownClient => StatusCode::UNAUTHORIZED,
            Self::InFlight { .. } | Self::Store(StoreError::LockLost) => StatusCode::CONFLICT,
            Self::KeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::ProviderUnavailable(_) => StatusCode::BAD_GATEWAY,
            Self::Store(err) if err.is_unreachable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::ProviderRefused(_) | Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<PaymentError> for Problem {
    fn from(err: PaymentError) -> Self {
        let status = err.status();
        let retry_after = |seconds: u64| (header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        match &err {
            PaymentError::Invalid { field, reason } => {
                Problem::invalid_field(FieldError::body(field, reason.clone()))
            }
            PaymentError::BadKey(reason) => Problem::new(
                status,
                "invalid-idempotency-key",
                "Invalid Idempotency-Key",
            )
            .with_detail(format!(
                "Send a key of 1 to 255 printable ASCII characters in `Idempotency-Key`: it {reason}."
            ))
            .with_error(FieldError::parameter("Idempotency-Key", *reason)),
            PaymentError::UnknownClient => platform::auth::unauthorized("The API key is not known."),
            PaymentError::InFlight { retry_after: wait } => {
                let (name, value) = retry_after(wait.as_secs());
                Problem::new(status, "request-in-progress", "Request in progress")
                    .with_detail(
                        "A request with this idempotency key is still being handled; retry after \
                         it finishes to get its result.",
                    )
                    .with_header(name, value)
            }
            PaymentError::Store(StoreError::LockLost) => {
                let (name, value) = retry_after(1);
                Problem::new(status, "request-in-progress", "Request in progress")
                    .with_detail("Another request took this idempotency key over; retry to get its result.")
                    .with_header(name, value)
            }
            PaymentError::KeyReused => Problem::new(
                status,
                "idempotency-key-reused",
                "Idempotency key reused",
            )
            .with_detail(
                "This idempotency key was first used with a different request (method, path or \
                 body). Use a new key for a new payment.",
            )
            .with_error(FieldError::parameter(
                "Idempotency-Key",
                "was used with a different request",
            )),
            PaymentError::NotFound => {
                Problem::status(status).with_detail("There is no payment with this id.")
            }
            PaymentError::BadCursor => Problem::status(status)
                .with_detail(err.to_string())
                .with_error(FieldError::parameter("cursor", "is not a cursor this API returned")),
            PaymentError::ProviderUnavailable(source) => {
                tracing::warn!(error = %platform::problem::error_chain(source), "provider unavailable");
                let (name, value) = retry_after(1);
                Problem::new(status, "provider-unavailable", "Payment provider unavailable")
                    .with_detail(
                        "The payment provider did not answer. Whether the card was charged is not \
                         known yet: retry with the same Idempotency-Key, which finishes the payment \
                         and never charges twice.",
                    )
                    .with_header(name, value)
            }
            PaymentError::ProviderRefused(source) => Problem::internal(source),
            PaymentError::Store(source) if source.is_unreachable() => {
                tracing::warn!(error = %platform::problem::error_chain(source), "database unreachable");
                let (name, value) = retry_after(1);
                Problem::new(status, "database-unavailable", "Database unavailable")
                    .with_detail(
                        "The payments database did not answer, and this request stopped where it \
                         was. Retry with the same Idempotency-Key: the payment resumes from its \
                         last step, and is never charged twice.",
                    )
                    .with_header(name, value)
            }
            PaymentError::Store(source) => Problem::internal(source),
        }
    }
}

impl IntoResponse for PaymentError {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}
