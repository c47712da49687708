//! The console's pages and the JSON they refresh from.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /` | the overview: every system's health, throughput, latency, errors and headline |
//! | `GET /systems/{name}` | one system: its charts (its own signals too), replicas and design doc |
//! | `GET /api/overview` | the same, as JSON, refreshed by the page every scrape |
//! | `GET /api/systems/{name}/points?since=` | a system's history, summed and per replica |
//! | `POST /api/systems/{name}/send` | a request a page sends to the system, and its answer, raw |
//! | `GET /api/systems/{name}/switches`, `PUT …/switches/{switch}` | its fault switches (admin token) |
//! | `POST /api/systems/{name}/load`, `GET`/`DELETE /api/load` | its k6 scenario: start, watch, stop |
//! | `GET /api/systems/{name}/walkthrough?{input}=` | its mock interview, the estimate from the inputs |
//! | `POST /api/systems/{name}/walkthrough/demos/{demo}` | a claim of it shown happening |
//! | `GET /source/{*path}` | a file a walkthrough's claim names |
//! | `GET /assets/{file}` | the stylesheet, the scripts and the vendored chart library |
//!
//! The shared endpoints (`/healthz`, `/readyz`, `/metrics`) come from `platform::http::service`.

mod api;
mod assets;
mod design;
mod load;
mod pages;
mod send;
mod switches;
mod walkthrough;

use std::sync::{Arc, Mutex};

use axum::{
    Router, middleware,
    routing::{get, post, put},
};
use platform::{auth::require_admin, health::Readiness, problem::Problem};

use crate::{settings::Settings, window::Window};

#[derive(Clone)]
pub struct AppState {
    pub window: Arc<Mutex<Window>>,
    pub settings: Arc<Settings>,
    /// For the requests pages send: redirects are shown, not followed.
    pub client: reqwest::Client,
    pub load: crate::load::LoadRunner,
    /// Runs the walkthroughs' demonstrations.
    pub demos: Arc<::walkthrough::view::Demos>,
}

impl AppState {
    /// Where a page's requests and loads go: the first replica of `name`, or 404 naming it.
    fn first_replica(&self, name: &str) -> Result<&url::Url, Problem> {
        self.settings
            .targets
            .get(name)
            .and_then(|target| target.instances.first())
            .ok_or_else(|| not_watched(name))
    }

    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window
            .lock()
            .expect("the window's lock is never held across a panic")
    }
}

/// The 404 for a system the console does not watch.
fn not_watched(name: &str) -> Problem {
    Problem::status(axum::http::StatusCode::NOT_FOUND).with_detail(format!(
        "The console does not watch a system named `{name}`."
    ))
}

/// The complete service: the routes above inside the shared stack.
pub fn app(state: AppState) -> Router {
    let admin = Router::new()
        .route("/api/systems/{name}/switches", get(switches::list))
        .route("/api/systems/{name}/switches/{switch}", put(switches::set))
        .route_layer(middleware::from_fn_with_state(
            state.settings.admin_token.clone(),
            require_admin,
        ));
    let routes = Router::new()
        .route("/", get(pages::overview))
        .route("/systems/{name}", get(pages::system))
        .route("/api/overview", get(api::overview))
        .route("/api/systems/{name}/points", get(api::points))
        .route("/api/systems/{name}/send", post(send::send))
        .route("/api/systems/{name}/load", post(load::start))
        .route("/api/load", get(load::current).delete(load::stop))
        .route(
            "/api/systems/{name}/walkthrough",
            get(walkthrough::interview),
        )
        .route(
            "/api/systems/{name}/walkthrough/demos/{demo}",
            post(walkthrough::demonstrate),
        )
        .route("/source/{*path}", get(walkthrough::source))
        .route("/assets/{*file}", get(assets::serve))
        .merge(admin)
        .with_state(state);
    platform::http::service(
        crate::SYSTEM,
        routes,
        Readiness::new(),
        utoipa::openapi::OpenApi::default(),
    )
}
