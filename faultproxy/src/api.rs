//! Toxiproxy's HTTP API (v2), the part a console needs, at the same paths and with the same
//! bodies and statuses, so that one client drives this proxy and a real Toxiproxy alike:
//!
//! ```text
//! GET    /version                           {"version": "…"}
//! POST   /reset                             every proxy enabled, every toxic removed: 204
//! GET    /proxies                           every proxy, by name
//! POST   /proxies                           {name, listen?, upstream, enabled?}: 201, 409 if the name is taken
//! GET    /proxies/{proxy}                   {name, listen, upstream, enabled, toxics: [...]}
//! POST   /proxies/{proxy}                   (or PATCH) {listen?, upstream?, enabled?}: 200
//! DELETE /proxies/{proxy}                   204
//! GET    /proxies/{proxy}/toxics            [toxic, ...]
//! POST   /proxies/{proxy}/toxics            {name?, type, stream?, toxicity?, attributes}: 200, 409 if taken
//! GET    /proxies/{proxy}/toxics/{toxic}    toxic
//! POST   /proxies/{proxy}/toxics/{toxic}    (or PATCH) {toxicity?, attributes?}: 200
//! DELETE /proxies/{proxy}/toxics/{toxic}    204
//! ```
//!
//! Where it differs from Toxiproxy, it is in what every sdlab API does: errors are problem+json
//! (RFC 9457) rather than `{"error": …, "status": …}`, with the status Toxiproxy gives them; a
//! body of the wrong shape is a 422 naming the member (Toxiproxy answers 400 without naming
//! it), and a member neither knows is refused rather than ignored (except a proxy's `toxics`,
//! which Toxiproxy's clients send back with the proxy); and every path needs the admin token,
//! which Toxiproxy, with no token, ignores.

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    http::StatusCode,
    middleware::from_fn_with_state,
    response::IntoResponse,
    routing::{get, post},
};
use platform::{
    auth::{AdminToken, require_admin},
    extract::{self, Path},
    problem::Problem,
};
use serde::{Deserialize, de::IgnoredAny};
use serde_json::json;

use crate::{
    error::Error,
    proxy::{NewProxy, Proxies, ProxyUpdate, ProxyView},
    toxic::{NewToxic, Toxic, ToxicUpdate},
};

/// The API over `proxies`, opened by `admin`, with the request ids, tracing and metrics every
/// sdlab service has (`platform::http::instrument`).
pub fn router(proxies: Proxies, admin: Option<AdminToken>) -> Router {
    let routes = Router::new()
        .route("/version", get(version))
        .route("/reset", post(reset))
        .route("/proxies", get(list).post(create))
        .route(
            "/proxies/{proxy}",
            get(show).post(update).patch(update).delete(delete),
        )
        .route("/proxies/{proxy}/toxics", get(toxics).post(add_toxic))
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(show_toxic)
                .post(update_toxic)
                .patch(update_toxic)
                .delete(remove_toxic),
        )
        .route_layer(from_fn_with_state(admin, require_admin))
        .with_state(proxies)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(64 * 1024));
    platform::http::instrument("faultproxy", routes)
}

async fn version() -> Json<serde_json::Value> {
    Json(json!({ "version": env!("CARGO_PKG_VERSION"), "server": "faultproxy" }))
}

async fn reset(State(proxies): State<Proxies>) -> Result<StatusCode, Error> {
    proxies.reset().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list(
    State(proxies): State<Proxies>,
) -> Json<std::collections::BTreeMap<String, ProxyView>> {
    Json(proxies.list().await)
}

/// `POST /proxies`. `listen` defaults to any free port on 127.0.0.1 (Toxiproxy's default, any
/// free port on every interface, is not for a proxy that hands out an engine).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateProxy {
    name: String,
    #[serde(default)]
    listen: Option<String>,
    upstream: String,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default, rename = "toxics")]
    _toxics: IgnoredAny,
}

async fn create(
    State(proxies): State<Proxies>,
    extract::Json(body): extract::Json<CreateProxy>,
) -> Result<impl IntoResponse, Error> {
    let view = proxies
        .create(NewProxy {
            name: body.name,
            listen: body.listen.unwrap_or_else(|| "127.0.0.1:0".to_owned()),
            upstream: body.upstream,
            enabled: body.enabled.unwrap_or(true),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn show(
    State(proxies): State<Proxies>,
    Path(name): Path<String>,
) -> Result<Json<ProxyView>, Error> {
    Ok(Json(proxies.get(&name).await?))
}

/// `POST /proxies/{proxy}`: what is left out stays as it is. A client that sends the proxy back
/// whole may repeat its name, which cannot change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateProxy {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    listen: Option<String>,
    #[serde(default)]
    upstream: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default, rename = "toxics")]
    _toxics: IgnoredAny,
}

async fn update(
    State(proxies): State<Proxies>,
    Path(name): Path<String>,
    extract::Json(body): extract::Json<UpdateProxy>,
) -> Result<Json<ProxyView>, Error> {
    if body.name.as_ref().is_some_and(|renamed| *renamed != name) {
        return Err(Error::invalid(
            "name",
            "cannot change: delete the proxy and create another",
        ));
    }
    let update = ProxyUpdate {
        listen: body.listen,
        upstream: body.upstream,
        enabled: body.enabled,
    };
    Ok(Json(proxies.update(&name, update).await?))
}

async fn delete(
    State(proxies): State<Proxies>,
    Path(name): Path<String>,
) -> Result<StatusCode, Error> {
    proxies.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn toxics(
    State(proxies): State<Proxies>,
    Path(name): Path<String>,
) -> Result<Json<Vec<Toxic>>, Error> {
    Ok(Json(proxies.toxics(&name).await?))
}

/// `POST /proxies/{proxy}/toxics`: 200 with the toxic, as Toxiproxy answers (not 201).
async fn add_toxic(
    State(proxies): State<Proxies>,
    Path(name): Path<String>,
    extract::Json(body): extract::Json<NewToxic>,
) -> Result<Json<Toxic>, Error> {
    // An unknown proxy is a 404 before the toxic is checked, as in Toxiproxy.
    proxies.get(&name).await?;
    Ok(Json(proxies.add_toxic(&name, body.into_toxic()?).await?))
}

async fn show_toxic(
    State(proxies): State<Proxies>,
    Path((name, toxic)): Path<(String, String)>,
) -> Result<Json<Toxic>, Error> {
    Ok(Json(proxies.toxic(&name, &toxic).await?))
}

async fn update_toxic(
    State(proxies): State<Proxies>,
    Path((name, toxic)): Path<(String, String)>,
    extract::Json(body): extract::Json<ToxicUpdate>,
) -> Result<Json<Toxic>, Error> {
    Ok(Json(proxies.update_toxic(&name, &toxic, body).await?))
}

async fn remove_toxic(
    State(proxies): State<Proxies>,
    Path((name, toxic)): Path<(String, String)>,
) -> Result<StatusCode, Error> {
    proxies.remove_toxic(&name, &toxic).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn not_found() -> Problem {
    Problem::status(StatusCode::NOT_FOUND).with_detail("There is nothing at this path.")
}

async fn method_not_allowed() -> Problem {
    Problem::status(StatusCode::METHOD_NOT_ALLOWED)
        .with_detail("This path does not accept that method.")
}
