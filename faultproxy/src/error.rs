//! What a request to the proxies can fail with, each with its status: the ones Toxiproxy answers
//! (404 for an unknown proxy or toxic, 409 for a name that is taken), as problem+json.

use std::{io, net::SocketAddr};

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use platform::problem::{FieldError, Problem};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("there is no proxy named `{0}`")]
    ProxyNotFound(String),
    #[error("a proxy named `{0}` exists already")]
    ProxyExists(String),
    #[error("proxy `{proxy}` has no toxic named `{toxic}`")]
    ToxicNotFound { proxy: String, toxic: String },
    #[error("proxy `{proxy}` has a toxic named `{toxic}` already")]
    ToxicExists { proxy: String, toxic: String },
    /// A member of the request's body that parsed but cannot be used, named by its JSON pointer
    /// path (`listen`, `attributes/latency`).
    #[error("{field}: {detail}")]
    Invalid { field: String, detail: String },
    /// The address is taken (by another proxy, or another process), or cannot be bound.
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_owned(),
            detail: detail.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::ProxyNotFound(_) | Self::ToxicNotFound { .. } => StatusCode::NOT_FOUND,
            Self::ProxyExists(_) | Self::ToxicExists { .. } | Self::Listen { .. } => {
                StatusCode::CONFLICT
            }
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let problem = match &self {
            Self::Invalid { field, detail } => {
                Problem::invalid_field(FieldError::body(field, detail.clone()))
            }
            Self::ProxyExists(_) => Problem::new(self.status(), "proxy-exists", "Proxy exists")
                .with_detail(format!("{self}.")),
            Self::ToxicExists { .. } => Problem::new(self.status(), "toxic-exists", "Toxic exists")
                .with_detail(format!("{self}.")),
            // The address and the operating system's reason: what the caller needs to pick
            // another port, and nothing the caller does not know already.
            Self::Listen { source, .. } => {
                Problem::new(self.status(), "cannot-listen", "Cannot listen")
                    .with_detail(format!("{self}: {source}."))
            }
            Self::ProxyNotFound(_) | Self::ToxicNotFound { .. } => {
                Problem::status(self.status()).with_detail(format!("{self}."))
            }
        };
        problem.into_response()
    }
}
