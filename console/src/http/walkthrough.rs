//! A system's walkthrough on its page (issue 21): the same mock interview `sdlab walkthrough`
//! runs in the terminal, from the `walkthrough` crate.
//!
//! - `GET /api/systems/{name}/walkthrough?links_per_day=2e8…`: the phases, with the estimate
//!   computed from the inputs in the query (each a `--set`: an unknown name or a bad value is a
//!   422 naming it) and the endpoints from the OpenAPI document of the instance the console
//!   watches.
//! - `POST /api/systems/{name}/walkthrough/demos/{demo}`: runs a claim's demonstration on a
//!   system started for it, in a process of its own (`walkthrough::view::Demos`), not on the
//!   watched one, whose traffic would blur the counters a demonstration reads.
//! - `GET /source/{*path}`: the file that implements a claim, as text.

use axum::{
    Json,
    extract::{RawQuery, State},
    http::{StatusCode, header},
    response::IntoResponse,
};
use platform::{
    extract::Path,
    problem::{FieldError, Problem},
};
use walkthrough::{
    Subject,
    view::{Demonstration, Interview},
};

use super::AppState;

/// `GET /api/systems/{name}/walkthrough`.
pub async fn interview(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Interview>, Problem> {
    let subject = subject(&name)?;
    let mut inputs = subject.inputs();
    for (input, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        inputs
            .set(&format!("{input}={value}"))
            .map_err(|detail| Problem::invalid_field(FieldError::parameter(&input, detail)))?;
    }
    let openapi = state
        .first_replica(&name)
        .ok()
        .map(|url| url.as_str().trim_end_matches('/').to_owned());
    walkthrough::view::interview(subject, &inputs, openapi.as_deref())
        .await
        .map(Json)
        .map_err(|err| Problem::internal(err.as_ref()))
}

/// `POST /api/systems/{name}/walkthrough/demos/{demo}`.
pub async fn demonstrate(
    State(state): State<AppState>,
    Path((name, demo)): Path<(String, String)>,
) -> Result<Json<Demonstration>, Problem> {
    let subject = subject(&name)?;
    if !subject.demos().contains(&demo.as_str()) {
        return Err(Problem::status(StatusCode::NOT_FOUND).with_detail(format!(
            "{name}'s walkthrough has no demonstration `{demo}`; it has {}.",
            subject.demos().join(", ")
        )));
    }
    state
        .demos
        .run(&name, &demo)
        .await
        .map(Json)
        .map_err(|err| {
            Problem::status(StatusCode::SERVICE_UNAVAILABLE)
                .with_detail(format!("The demonstration could not run: {err:#}"))
        })
}

/// `GET /source/{*path}`: a file a claim names, as plain text.
pub async fn source(Path(path): Path<String>) -> Result<impl IntoResponse, Problem> {
    let text = walkthrough::view::source(&path).ok_or_else(|| {
        Problem::status(StatusCode::NOT_FOUND).with_detail(format!(
            "`{path}` is not a file a walkthrough's claim names."
        ))
    })?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text))
}

/// The walkthrough of `name`, or 404 saying which systems have one.
fn subject(name: &str) -> Result<&'static dyn Subject, Problem> {
    walkthrough::subject(name)
        .map_err(|err| Problem::status(StatusCode::NOT_FOUND).with_detail(err.to_string()))
}
