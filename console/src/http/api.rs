//! The JSON the pages refresh from.

use axum::extract::{RawQuery, State};
use platform::{
    extract::{Path, QueryParameters},
    problem::{BadParameter, Problem},
};
use serde::Serialize;

use super::AppState;
use crate::{
    signals::{Headline, headline},
    window::{SystemNow, SystemPoints},
};

#[derive(Debug, Serialize)]
pub struct Overview {
    /// Milliseconds between scrapes: how often a page should ask again.
    pub scrape_every_ms: u128,
    pub systems: Vec<SystemOverview>,
}

#[derive(Debug, Serialize)]
pub struct SystemOverview {
    #[serde(flatten)]
    pub now: SystemNow,
    pub headline: Option<Headline>,
}

/// `GET /api/overview`.
pub async fn overview(State(state): State<AppState>) -> axum::Json<Overview> {
    axum::Json(build_overview(&state))
}

pub fn build_overview(state: &AppState) -> Overview {
    let systems = state
        .window()
        .overview()
        .into_iter()
        .map(|now| SystemOverview {
            headline: now
                .latest
                .as_ref()
                .and_then(|point| headline(&now.name, point)),
            now,
        })
        .collect();
    Overview {
        scrape_every_ms: state.settings.scrape_every.as_millis(),
        systems,
    }
}

/// `GET /api/systems/{name}/points?since=`: the points newer than `since` (Unix ms; all of the
/// window without it).
pub async fn points(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<SystemPoints>, Problem> {
    let parameters = QueryParameters::parse(query.as_deref(), &["since"])?;
    let since = match parameters.get("since") {
        None => i64::MIN,
        Some(value) => value
            .parse()
            .map_err(|_| BadParameter::new("since", "must be a time in Unix milliseconds"))?,
    };
    state
        .window()
        .points(&name, since)
        .map(axum::Json)
        .ok_or_else(|| super::not_watched(&name))
}
