//! The shortener's one error type, and the HTTP status each variant means.

use axum::{
    http::{HeaderValue, StatusCode, header::RETRY_AFTER},
    response::{IntoResponse, Response},
};
use platform::problem::{FieldError, Problem};

use crate::{ids::GenerateError, store::StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ShortenerError {
    /// A member of the request body is not acceptable.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("the alias {0:?} is taken")]
    AliasTaken(String),
    /// No live link has the code, or it expired, or it reached `max_visits`. One answer for all
    /// three: a redirect must not tell a visitor more than "nothing here".
    #[error("no such link")]
    NotFound,
    #[error("the API key is not known")]
    UnknownKey,
    /// The link exists but belongs to another API key.
    #[error("the link belongs to another API key")]
    NotOwner,
    #[error(transparent)]
    Generate(#[from] GenerateError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ShortenerError {
    pub fn invalid(field: &'static str, reason: impl ToString) -> Self {
        Self::Invalid {
            field,
            reason: reason.to_string(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::AliasTaken(_) => StatusCode::CONFLICT,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::UnknownKey => StatusCode::UNAUTHORIZED,
            Self::NotOwner => StatusCode::FORBIDDEN,
            Self::Generate(GenerateError::Exhausted) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Generate(GenerateError::Store(err)) | Self::Store(err) => {
                if err.is_unavailable() {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            }
        }
    }
}

impl From<ShortenerError> for Problem {
    fn from(err: ShortenerError) -> Self {
        let status = err.status();
        match &err {
            ShortenerError::Invalid { field, reason } => {
                Problem::invalid_field(FieldError::body(field, reason.clone()))
            }
            ShortenerError::AliasTaken(_) => {
                Problem::new(status, "alias-taken", "The alias is taken")
                    .with_detail(err.to_string())
                    .with_error(FieldError::body("alias", "is taken"))
            }
            ShortenerError::NotFound => {
                Problem::status(status).with_detail("There is no link with this code.")
            }
            ShortenerError::UnknownKey => platform::auth::unauthorized("The API key is not known."),
            ShortenerError::NotOwner => Problem::new(status, "not-owner", "Not your link")
                .with_detail(
                    "Only the API key that created a link may read its stats or delete it.",
                ),
            ShortenerError::Generate(GenerateError::Exhausted) => {
                Problem::status(status).with_detail(err.to_string())
            }
            ShortenerError::Generate(GenerateError::Store(source))
            | ShortenerError::Store(source)
                if source.is_unavailable() =>
            {
                // Logged here, as a 500 is: the client learns only that it may retry.
                tracing::warn!(error = %source, "the database is unavailable");
                Problem::new(
                    status,
                    "database-unavailable",
                    "The database is unavailable",
                )
                .with_detail(
                    "The shortener cannot reach its database just now, and nothing was changed. \
                     Links already cached still redirect; try again shortly.",
                )
                .with_header(RETRY_AFTER, HeaderValue::from_static("1"))
            }
            ShortenerError::Generate(GenerateError::Store(source))
            | ShortenerError::Store(source) => Problem::internal(source),
        }
    }
}

impl IntoResponse for ShortenerError {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}
