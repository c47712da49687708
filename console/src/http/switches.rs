//! The fault switches a system's page flips: the console reads and sets each switch configured
//! for the system (`CONSOLE_SWITCHES`), forwarding the admin token. The console's own routes take
//! the same token (`SDLAB_ADMIN_TOKEN`, printed in the lab's banner): 401 without it, 403 when the
//! console has none, as every sdlab admin endpoint answers.

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use platform::{
    extract::{Json, Path},
    problem::Problem,
};
use serde::Serialize;
use serde_json::{Map, Value};

use super::AppState;
use crate::settings::Switch;

#[derive(Debug, Serialize)]
pub struct SwitchState {
    pub name: String,
    pub url: String,
    /// What the switch answered to `GET`; `None` when it did not answer with a JSON object.
    pub settings: Option<Map<String, Value>>,
    pub error: Option<String>,
}

/// `GET /api/systems/{name}/switches`: each of the system's switches and how it is set now.
pub async fn list(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<Vec<SwitchState>>, Problem> {
    watched(&state, &name)?;
    let mut switches = Vec::new();
    for switch in state.settings.switches.of(&name) {
        let (settings, error) = match read(&state, switch).await {
            Ok(settings) => (Some(settings), None),
            Err(error) => (None, Some(error)),
        };
        switches.push(SwitchState {
            name: switch.name.clone(),
            url: switch.url.to_string(),
            settings,
            error,
        });
    }
    Ok(axum::Json(switches))
}

/// `PUT /api/systems/{name}/switches/{switch}`: sets the switch, answering as it answered (its
/// new settings, or its problem naming the field it refused).
pub async fn set(
    State(state): State<AppState>,
    Path((name, switch)): Path<(String, String)>,
    Json(settings): Json<Map<String, Value>>,
) -> Result<Response, Problem> {
    watched(&state, &name)?;
    let switch = state.settings.switches.get(&name, &switch).ok_or_else(|| {
        Problem::status(StatusCode::NOT_FOUND)
            .with_detail(format!("{name} has no switch named `{switch}`."))
    })?;
    let response = authorized(&state, state.client.put(switch.url.clone()))
        .json(&settings)
        .send()
        .await
        .map_err(|err| unreachable(switch, &err))?;
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| header::HeaderValue::from_static("application/json"));
    let body = response
        .bytes()
        .await
        .map_err(|err| unreachable(switch, &err))?;
    Ok((status, [(header::CONTENT_TYPE, content_type)], body).into_response())
}

async fn read(state: &AppState, switch: &Switch) -> Result<Map<String, Value>, String> {
    let response = authorized(state, state.client.get(switch.url.clone()))
        .send()
        .await
        .map_err(|err| format!("no answer: {err}"))?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    match response.json::<Value>().await {
        Ok(Value::Object(settings)) => Ok(settings),
        _ => Err("did not answer with a JSON object".to_owned()),
    }
}

fn authorized(state: &AppState, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match &state.settings.admin_token {
        Some(token) => request.bearer_auth(token.expose()),
        None => request,
    }
}

fn watched(state: &AppState, name: &str) -> Result<(), Problem> {
    state.first_replica(name).map(|_| ())
}

fn unreachable(switch: &Switch, err: &reqwest::Error) -> Problem {
    Problem::status(StatusCode::BAD_GATEWAY).with_detail(format!(
        "The switch {}/{} at {} did not answer: {err}",
        switch.system, switch.name, switch.url
    ))
}
