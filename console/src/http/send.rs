//! Requests a page sends to a system through the console, shown raw: the request as it went
//! out, the response as it came back. Through the console rather than from the browser, so that
//! a page can call a system on another origin without the system allowing it (CORS), and so the
//! exchange can be shown byte for byte.
//!
//! Only a path is taken, never a host: the console sends to the system's own first replica and
//! nowhere else, so it cannot be made to reach an address it was not configured with.

use std::time::Duration;

use axum::{
    extract::State,
    http::{HeaderName, HeaderValue, Method, StatusCode},
};
use platform::{
    extract::{Json, Path},
    problem::{FieldError, Problem},
};
use serde::{Deserialize, Serialize};

use super::AppState;

/// The most of a response body a page is shown.
const MAX_SHOWN: usize = 64 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outgoing {
    /// `GET`, `POST`, `PUT`, `DELETE`, `HEAD` or `PATCH`.
    pub method: String,
    /// The path and query, from `/`: `/api/v1/links?x=1`.
    pub path: String,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Exchange {
    pub request: Shown,
    pub response: Shown,
    /// Milliseconds from sending to the last byte of the response.
    pub elapsed_ms: f64,
}

/// One side of an exchange as it is written on the wire.
#[derive(Debug, Serialize)]
pub struct Shown {
    /// `POST /api/v1/links HTTP/1.1`, or `HTTP/1.1 201 Created`.
    pub line: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Whether the body was cut at 64 KiB.
    pub truncated: bool,
}

/// `POST /api/systems/{name}/send`.
pub async fn send(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(outgoing): Json<Outgoing>,
) -> Result<axum::Json<Exchange>, Problem> {
    let base = state.first_replica(&name)?;
    let method = match outgoing.method.to_ascii_uppercase().as_str() {
        "GET" => Method::GET,
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "DELETE" => Method::DELETE,
        "HEAD" => Method::HEAD,
        "PATCH" => Method::PATCH,
        _ => {
            return Err(invalid(
                "method",
                "must be GET, POST, PUT, DELETE, HEAD or PATCH",
            ));
        }
    };
    if !outgoing.path.starts_with('/') || outgoing.path.starts_with("//") {
        return Err(invalid(
            "path",
            "must be a path on the system, starting with one `/`",
        ));
    }
    let url = base
        .join(&outgoing.path)
        .map_err(|err| invalid("path", &format!("is not a path: {err}")))?;
    let mut request = state.client.request(method.clone(), url.clone());
    let mut sent_headers = vec![("host".to_owned(), host(&url))];
    for (i, (name, value)) in outgoing.headers.iter().enumerate() {
        let name = HeaderName::try_from(name.as_str())
            .map_err(|_| invalid(&format!("headers/{i}/0"), "is not a header name"))?;
        let value = HeaderValue::try_from(value.as_str())
            .map_err(|_| invalid(&format!("headers/{i}/1"), "is not a header value"))?;
        sent_headers.push((
            name.to_string(),
            value.to_str().unwrap_or_default().to_owned(),
        ));
        request = request.header(name, value);
    }
    let body = outgoing.body.unwrap_or_default();
    if !body.is_empty() {
        sent_headers.push(("content-length".to_owned(), body.len().to_string()));
        request = request.body(body.clone());
    }
    let started = std::time::Instant::now();
    let response = request.timeout(TIMEOUT).send().await.map_err(|err| {
        Problem::status(StatusCode::BAD_GATEWAY)
            .with_detail(format!("{name} did not answer: {err}"))
    })?;
    let status = response.status();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let bytes = response.bytes().await.map_err(|err| {
        Problem::status(StatusCode::BAD_GATEWAY)
            .with_detail(format!("{name}'s answer broke off: {err}"))
    })?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let truncated = bytes.len() > MAX_SHOWN;
    let shown = &bytes[..bytes.len().min(MAX_SHOWN)];
    Ok(axum::Json(Exchange {
        request: Shown {
            line: format!("{method} {} HTTP/1.1", &url[url::Position::BeforePath..]),
            headers: sent_headers,
            body,
            truncated: false,
        },
        response: Shown {
            line: format!(
                "HTTP/1.1 {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or_default()
            ),
            headers,
            body: String::from_utf8_lossy(shown).into_owned(),
            truncated,
        },
        elapsed_ms,
    }))
}

fn host(url: &url::Url) -> String {
    match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    }
}

fn invalid(field: &str, detail: &str) -> Problem {
    Problem::invalid_field(FieldError::body(field, detail))
}
