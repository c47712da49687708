//! The HTML pages, rendered on the server with minijinja from `templates/`; their scripts only
//! refresh the numbers and draw the charts.

use std::sync::LazyLock;

use axum::{extract::State, response::Html};
use minijinja::{Environment, context};
use platform::problem::Problem;

use super::{AppState, api::build_overview};

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut templates = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("../../templates/base.html")),
        (
            "overview.html",
            include_str!("../../templates/overview.html"),
        ),
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
    TEMPLATES
        .get_template("overview.html")
        .and_then(|template| template.render(context! { overview, window_minutes }))
        .map(Html)
        .map_err(|err| Problem::internal(&err))
}
