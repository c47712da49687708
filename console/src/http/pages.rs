//! The HTML pages, rendered on the server with minijinja from `templates/`; their scripts only
//! refresh the numbers and draw the charts.

use std::sync::LazyLock;

use axum::{extract::State, response::Html};
use minijinja::{Environment, context};
use platform::{extract::Path, problem::Problem};

use super::{AppState, api::build_overview, design::design};

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut templates = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("../../templates/base.html")),
        (
            "overview.html",
            include_str!("../../templates/overview.html"),
        ),
        ("system.html", include_str!("../../templates/system.html")),
    ] {
        templates
            .add_template(name, source)
            .expect("the console's templates parse");
    }
    templates
});

/// `GET /`.
pub async fn overview(State(state): State<AppState>) -> Result<Html<String>, Problem> {
    let overview = build_overview(&state);
    let window_minutes = state.settings.window.as_secs() / 60;
    render("overview.html", context! { overview, window_minutes })
}

/// `GET /systems/{name}`: one system's charts, its replicas, and its design doc.
pub async fn system(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Html<String>, Problem> {
    let overview = build_overview(&state);
    let system = overview
        .systems
        .iter()
        .find(|system| system.now.name == name)
        .ok_or_else(|| super::not_watched(&name))?;
    let window_minutes = state.settings.window.as_secs() / 60;
    render(
        "system.html",
        context! {
            overview,
            system,
            design => design(&name),
            window_minutes,
            loadable => crate::load::LoadRunner::has_scenario(&name),
            interview => walkthrough::subject(&name).is_ok(),
        },
    )
}

fn render(template: &str, context: minijinja::Value) -> Result<Html<String>, Problem> {
    TEMPLATES
        .get_template(template)
        .and_then(|template| template.render(context))
        .map(Html)
        .map_err(|err| Problem::internal(&err))
}
