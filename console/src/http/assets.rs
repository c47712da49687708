//! The files the pages load, compiled into the binary: the console works offline, and
//! `cargo build` needs no Node.js. uPlot (MIT, `assets/vendor/uplot/LICENSE`) is vendored from
//! the npm registry as its release built it.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use platform::{extract::Path, problem::Problem};

const FILES: &[(&str, &str, &[u8])] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/console.css"),
    ),
    (
        "overview.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/overview.js"),
    ),
    (
        "system.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/system.js"),
    ),
    (
        "send.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/send.js"),
    ),
    (
        "break.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/break.js"),
    ),
    (
        "walkthrough.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/walkthrough.js"),
    ),
    (
        "load.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/load.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/charts.js"),
    ),
    (
        "vendor/uplot/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vendor/uplot/uPlot.iife.min.js"),
    ),
    (
        "vendor/uplot/uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/vendor/uplot/uPlot.min.css"),
    ),
];

/// `GET /assets/{file}`.
pub async fn serve(Path(file): Path<String>) -> Result<Response, Problem> {
    let (_, content_type, bytes) = FILES
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(|| Problem::status(StatusCode::NOT_FOUND))?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Short: a rebuilt console serves new files under the same names.
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=60"),
            ),
        ],
        *bytes,
    )
        .into_response())
}
