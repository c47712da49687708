//! The notifier's one error type, and the HTTP answer to each variant.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use platform::problem::{FieldError, Problem};

use crate::{domain::Invalid, store::StoreError};

#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    /// The request's API key is not one of a caller's.
    #[error("unknown API key")]
    UnknownCaller,
    #[error("{}: {}", .0.field, .0.reason)]
    Invalid(Invalid),
    #[error("no such user")]
    UserNotFound,
    #[error("no such notification")]
    NotificationNotFound,
    #[error("no such dead letter")]
    DeadLetterNotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Invalid> for NotifierError {
    fn from(invalid: Invalid) -> Self {
        Self::Invalid(invalid)
    }
}

impl From<NotifierError> for Problem {
    fn from(err: NotifierError) -> Self {
        match &err {
            NotifierError::UnknownCaller => {
                platform::auth::unauthorized("The API key is not known.")
            }
            NotifierError::Invalid(invalid) => {
                Problem::invalid_field(FieldError::body(&invalid.field, invalid.reason.clone()))
            }
            NotifierError::UserNotFound => {
                Problem::status(StatusCode::NOT_FOUND).with_detail("There is no user with this id.")
            }
            NotifierError::NotificationNotFound => Problem::status(StatusCode::NOT_FOUND)
                .with_detail("There is no notification with this id."),
            NotifierError::DeadLetterNotFound => Problem::status(StatusCode::NOT_FOUND)
                .with_detail("There is no dead letter with this id."),
            NotifierError::Store(source) if source.is_unreachable() => {
                tracing::warn!(error = %platform::problem::error_chain(source), "database unreachable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database-unavailable",
                    "Database unavailable",
                )
                .with_detail(
                    "The notifier's database did not answer, and nothing was stored. Retry \
                     later; a notification sent with an idempotency_key is accepted once \
                     however often it is retried.",
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from(1))
            }
            NotifierError::Store(source) => Problem::internal(source),
        }
    }
}

impl IntoResponse for NotifierError {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}
