//! The feed's one error type, and the HTTP answer to each variant.
//!
//! A store error is a 500, logged with its cause and shown without it, unless what failed is a
//! dependency that is down or not answering (the database, Redis: `StoreError::unavailable`,
//! whether a fault switch or a real outage): then it is a 503 naming the dependency, since the
//! same request may succeed once it is back, and a client or a load balancer should know that.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use platform::problem::{BadParameter, FieldError, Problem};

use crate::{domain::Invalid, store::StoreError};

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// A member of the JSON body is not acceptable.
    #[error("{}: {}", .0.field, .0.reason)]
    Invalid(Invalid),
    /// A query parameter is malformed, out of range, or not one the endpoint takes.
    #[error(transparent)]
    BadParameter(#[from] BadParameter),
    #[error("you cannot follow yourself")]
    FollowSelf,
    #[error("the handle is taken")]
    HandleTaken,
    #[error("the token is not known")]
    UnknownToken,
    /// The request would act for another user, or read what is theirs alone.
    #[error("{0}")]
    NotYours(&'static str),
    #[error("no such user")]
    UserNotFound,
    #[error("no such post")]
    PostNotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl FeedError {
    pub fn bad_parameter(name: impl Into<String>, reason: &'static str) -> Self {
        Self::BadParameter(BadParameter::new(name, reason))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(_) | Self::FollowSelf => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadParameter(_) => StatusCode::BAD_REQUEST,
            Self::HandleTaken => StatusCode::CONFLICT,
            Self::UnknownToken => StatusCode::UNAUTHORIZED,
            Self::NotYours(_) => StatusCode::FORBIDDEN,
            Self::UserNotFound | Self::PostNotFound => StatusCode::NOT_FOUND,
            Self::Store(err) if err.unavailable().is_some() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<Invalid> for FeedError {
    fn from(invalid: Invalid) -> Self {
        Self::Invalid(invalid)
    }
}

impl From<FeedError> for Problem {
    fn from(err: FeedError) -> Self {
        let status = err.status();
        match &err {
            FeedError::Invalid(invalid) => {
                Problem::invalid_field(FieldError::body(invalid.field, invalid.reason.clone()))
            }
            FeedError::BadParameter(bad) => bad.clone().into(),
            FeedError::FollowSelf => Problem::invalid_field(FieldError::parameter(
                "target",
                "is you: your own posts are in your feed without following yourself",
            )),
            FeedError::HandleTaken => Problem::new(status, "handle-taken", "The handle is taken")
                .with_detail("Another user has this handle; choose another.")
                .with_error(FieldError::body("handle", "is taken")),
            FeedError::UnknownToken => platform::auth::unauthorized("The token is not known."),
            FeedError::NotYours(detail) => {
                Problem::new(status, "not-yours", "Not yours to act for").with_detail(*detail)
            }
            FeedError::UserNotFound => {
                Problem::status(status).with_detail("There is no user with this id.")
            }
            FeedError::PostNotFound => {
                Problem::status(status).with_detail("There is no post with this id.")
            }
            FeedError::Store(source) => match source.unavailable() {
                Some(dependency) => {
                    tracing::warn!(error = %platform::problem::error_chain(source), dependency, "a dependency is unavailable");
                    Problem::status(status).with_detail(format!(
                        "The service's `{dependency}` is unavailable; try again shortly."
                    ))
                }
                None => Problem::internal(source),
            },
        }
    }
}

impl IntoResponse for FeedError {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}
