//! The limiter's errors as HTTP problems.

use axum::{
    http::{HeaderValue, StatusCode, header::RETRY_AFTER},
    response::{IntoResponse, Response},
};
use platform::problem::{FieldError, Problem};

use crate::limiter::LimitError;

impl LimitError {
    pub fn status(&self) -> StatusCode {
        match self {
            LimitError::UnknownRule(_) | LimitError::CostExceedsCapacity { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            LimitError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<LimitError> for Problem {
    fn from(err: LimitError) -> Self {
        match &err {
            LimitError::UnknownRule(_) => {
                Problem::invalid_field(FieldError::body("rule", err.to_string()))
            }
            // Not a 429: waiting never helps, so the client must not be told to retry.
            LimitError::CostExceedsCapacity { .. } => {
                Problem::invalid_field(FieldError::body("cost", err.to_string()))
            }
            LimitError::Unavailable(_) => Problem::new(
                err.status(),
                "limiter-unavailable",
                "The rate limiter cannot decide",
            )
            .with_detail(err.to_string())
            .with_header(RETRY_AFTER, HeaderValue::from_static("1")),
        }
    }
}

impl IntoResponse for LimitError {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}
