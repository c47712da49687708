//! The fault switches a system's page flips, forwarding the admin token to each:
//! - the switches of the system's own dependencies (its database, Redis, broker, a worker), which
//!   every replica serves at `/admin/faults` (`platform::fault`): found by asking the first
//!   replica, and set on every replica, since a dependency down is down for all of them;
//! - the switches configured for the system (`CONSOLE_SWITCHES`), such as the simulators'
//!   `/v1/faults`, which live at URLs of their own;
//! - on the real engines, the proxies between the system and each engine (`proxy-redis`…),
//!   through the Toxiproxy API `CONSOLE_TOXIPROXY` names ([`crate::toxiproxy`]).
//!
//! The console's own routes take the same token (`SDLAB_ADMIN_TOKEN`, printed in the lab's
//! banner): 401 without it, 403 when the console has none, as every sdlab admin endpoint answers.

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
use std::fmt;
use url::Url;

use super::AppState;
use crate::toxiproxy::{SWITCH_PREFIX, Toxiproxy, ToxiproxyError};
use platform::fault::Fault;

/// Where a system's own dependency switches are, under each replica's base URL.
const OWN_SWITCHES: &str = "admin/faults";

#[derive(Debug, Serialize)]
pub struct SwitchState {
    pub name: String,
    /// Where it is set: its configured URL, or the first replica's `/admin/faults/{name}`.
    pub url: String,
    /// How many endpoints a `PUT` sets: 1, or one per replica for a dependency's switch.
    pub endpoints: usize,
    /// What the switch answered to `GET`; `None` when it did not answer with a JSON object.
    pub settings: Option<Map<String, Value>>,
    pub error: Option<String>,
}

/// `GET /api/systems/{name}/switches`: each of the system's switches and how it is set now.
pub async fn list(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<Vec<SwitchState>>, Problem> {
    let replicas = replicas(&state, &name)?;
    let mut switches = Vec::new();
    for switch in state.settings.switches.of(&name) {
        let (settings, error) = match read(&state, &switch.url).await {
            Ok(settings) => (Some(settings), None),
            Err(error) => (None, Some(error.to_string())),
        };
        switches.push(SwitchState {
            name: switch.name.clone(),
            url: switch.url.to_string(),
            endpoints: 1,
            settings,
            error,
        });
    }
    let own = own_switch(&replicas[0], "");
    match read(&state, &own).await {
        Ok(found) => {
            for (dependency, settings) in found {
                switches.push(SwitchState {
                    url: own_switch(&replicas[0], &dependency).to_string(),
                    name: dependency,
                    endpoints: replicas.len(),
                    settings: settings.as_object().cloned(),
                    error: None,
                });
            }
        }
        // A system without switches of its own (404), or one that is down: the overview says so.
        Err(Unanswered::Status(StatusCode::NOT_FOUND) | Unanswered::Connection(_)) => {}
        Err(error) => switches.push(SwitchState {
            name: OWN_SWITCHES.to_owned(),
            url: own.to_string(),
            endpoints: replicas.len(),
            settings: None,
            error: Some(error.to_string()),
        }),
    }
    if let Some(proxies) = toxiproxy(&state) {
        match proxies.switches(&name).await {
            Ok(found) => {
                for (engine, fault) in found {
                    switches.push(SwitchState {
                        url: format!(
                            "{}proxies/{name}-{engine}",
                            state.settings.toxiproxy.as_ref().map_or("", Url::as_str)
                        ),
                        name: format!("{SWITCH_PREFIX}{engine}"),
                        endpoints: 1,
                        settings: serde_json::to_value(fault)
                            .ok()
                            .and_then(|v| v.as_object().cloned()),
                        error: None,
                    });
                }
            }
            Err(error) => switches.push(SwitchState {
                name: "proxies".to_owned(),
                url: state
                    .settings
                    .toxiproxy
                    .as_ref()
                    .map_or_else(String::new, Url::to_string),
                endpoints: 1,
                settings: None,
                error: Some(error.to_string()),
            }),
        }
    }
    Ok(axum::Json(switches))
}

fn toxiproxy(state: &AppState) -> Option<Toxiproxy> {
    let base = state.settings.toxiproxy.clone()?;
    Some(Toxiproxy::new(
        state.client.clone(),
        base,
        state.settings.admin_token.clone(),
    ))
}

/// Sets a proxy's switch: `proxy-redis` is the proxy `<system>-redis`.
async fn set_proxy(
    proxies: &Toxiproxy,
    system: &str,
    engine: &str,
    settings: Map<String, Value>,
) -> Result<Response, Problem> {
    let fault: Fault = serde_json::from_value(Value::Object(settings)).map_err(|err| {
        Problem::status(StatusCode::UNPROCESSABLE_ENTITY).with_detail(format!(
            "A proxy's switch takes latency_ms and unreachable: {err}"
        ))
    })?;
    fault.check()?;
    match proxies.set(system, engine, fault).await {
        Ok(now) => Ok(axum::Json(now).into_response()),
        Err(ToxiproxyError::NoProxy { .. }) => Err(Problem::status(StatusCode::NOT_FOUND)
            .with_detail(format!(
                "{system} has no switch named `{SWITCH_PREFIX}{engine}`."
            ))),
        Err(err) => Err(Problem::status(StatusCode::BAD_GATEWAY).with_detail(err.to_string())),
    }
}

/// `PUT /api/systems/{name}/switches/{switch}`: sets the switch, answering as it answered (its
/// new settings, or its problem naming the field it refused).
pub async fn set(
    State(state): State<AppState>,
    Path((name, switch)): Path<(String, String)>,
    Json(settings): Json<Map<String, Value>>,
) -> Result<Response, Problem> {
    let replicas = replicas(&state, &name)?;
    if let Some(configured) = state.settings.switches.get(&name, &switch) {
        return put(&state, &configured.url, &settings).await;
    }
    if let (Some(engine), Some(proxies)) = (switch.strip_prefix(SWITCH_PREFIX), toxiproxy(&state)) {
        return set_proxy(&proxies, &name, engine, settings).await;
    }
    // A dependency's switch: set on every replica, answered as the first answered unless a
    // later one refused.
    if !read(&state, &own_switch(&replicas[0], ""))
        .await
        .is_ok_and(|found| found.contains_key(&switch))
    {
        return Err(Problem::status(StatusCode::NOT_FOUND)
            .with_detail(format!("{name} has no switch named `{switch}`.")));
    }
    let mut first = None;
    for replica in &replicas {
        let answer = put(&state, &own_switch(replica, &switch), &settings).await?;
        if !answer.status().is_success() {
            return Ok(answer);
        }
        first.get_or_insert(answer);
    }
    Ok(first.expect("a watched system has a replica"))
}

async fn put(
    state: &AppState,
    url: &Url,
    settings: &Map<String, Value>,
) -> Result<Response, Problem> {
    let response = authorized(state, state.client.put(url.clone()))
        .json(settings)
        .send()
        .await
        .map_err(|err| unreachable(url, &err))?;
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| header::HeaderValue::from_static("application/json"));
    let body = response
        .bytes()
        .await
        .map_err(|err| unreachable(url, &err))?;
    Ok((status, [(header::CONTENT_TYPE, content_type)], body).into_response())
}

/// Why a switch could not be read.
#[derive(Debug)]
enum Unanswered {
    Connection(reqwest::Error),
    Status(StatusCode),
    NotAnObject,
}

impl fmt::Display for Unanswered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connection(err) => write!(f, "no answer: {err}"),
            Self::Status(status) => write!(f, "answered {status}"),
            Self::NotAnObject => f.write_str("did not answer with a JSON object"),
        }
    }
}

async fn read(state: &AppState, url: &Url) -> Result<Map<String, Value>, Unanswered> {
    let response = authorized(state, state.client.get(url.clone()))
        .send()
        .await
        .map_err(Unanswered::Connection)?;
    if !response.status().is_success() {
        return Err(Unanswered::Status(response.status()));
    }
    match response.json::<Value>().await {
        Ok(Value::Object(settings)) => Ok(settings),
        _ => Err(Unanswered::NotAnObject),
    }
}

/// `{replica}/admin/faults/{dependency}`, or the list's URL for an empty `dependency`.
fn own_switch(replica: &Url, dependency: &str) -> Url {
    let mut url = replica.clone();
    let base = url.path().trim_end_matches('/').to_owned();
    if dependency.is_empty() {
        url.set_path(&format!("{base}/{OWN_SWITCHES}"));
    } else {
        url.set_path(&format!("{base}/{OWN_SWITCHES}/{dependency}"));
    }
    url
}

fn authorized(state: &AppState, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match &state.settings.admin_token {
        Some(token) => request.bearer_auth(token.expose()),
        None => request,
    }
}

/// The system's replicas' base URLs (at least one), or 404 if it is not watched.
fn replicas(state: &AppState, name: &str) -> Result<Vec<Url>, Problem> {
    state.first_replica(name)?;
    Ok(state
        .settings
        .targets
        .get(name)
        .map(|target| target.instances.clone())
        .unwrap_or_default())
}

fn unreachable(url: &Url, err: &reqwest::Error) -> Problem {
    Problem::status(StatusCode::BAD_GATEWAY)
        .with_detail(format!("The switch at {url} did not answer: {err}"))
}
