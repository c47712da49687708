//! `GET /{code}` and `HEAD /{code}`: the hot path.
//!
//! 302 by default: the browser asks us every time, so every visit is counted and a deleted or
//! expired link stops working at once. A permanent redirect (301/308, when configured) lets the
//! browser skip us next time, which is faster for the visitor and cheaper for us, but the visit is
//! never seen and the browser keeps following the old target after a delete. That is why:
//! - a permanent redirect carries `Cache-Control: private, max-age=N`, so browsers keep it for
//!   `N` seconds rather than forever, and shared caches not at all;
//! - `N` never reaches past the link's expiry;
//! - a link with `max_visits` is always answered with a temporary redirect (302, or 307 when 308
//!   is configured), since each visit must reach us to be counted against its limit.
//!
//! `HEAD` answers like `GET` but counts nothing: link checkers and unfurlers send it, and a `HEAD`
//! must not use up a `max_visits` link.

use axum::{
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use platform::{extract::Path, problem::Problem};

use super::AppState;
use crate::{domain::bot, error::ShortenerError, service::Destination, settings::RedirectPolicy};

/// Follow a short link.
#[utoipa::path(
    get,
    path = "/{code}",
    tag = "redirect",
    params(("code" = String, Path, description = "The short code or alias")),
    responses(
        (status = 302, description = "Redirect to the link's URL (301/307/308 when so configured)",
            headers(("location" = String))),
        (status = 404, description = "Unknown, expired, deleted or used up", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Not in the cache (or limited), and the database is unavailable; `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn follow(
    State(state): State<AppState>,
    Path(code): Path<String>,
    // The request itself rather than a `HeaderMap` extractor, which would clone every header.
    request: Request,
) -> Result<Response, ShortenerError> {
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok());
    let destination = state
        .shortener
        .resolve(&code, bot::is_bot(user_agent))
        .await?;
    Ok(redirect(&state.redirect, &destination))
}

/// Check a short link without following it or counting a visit.
#[utoipa::path(
    head,
    path = "/{code}",
    tag = "redirect",
    params(("code" = String, Path, description = "The short code or alias")),
    responses(
        (status = 302, description = "The link redirects", headers(("location" = String))),
        (status = 404, description = "Unknown, expired, deleted or used up"),
        (status = 503, description = "Not in the cache (or limited), and the database is unavailable"),
    )
)]
pub async fn peek(
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<Response, ShortenerError> {
    let destination = state.shortener.peek(&code).await?;
    Ok(redirect(&state.redirect, &destination))
}

/// The redirect response for a destination under a policy.
pub fn redirect(policy: &RedirectPolicy, destination: &Destination) -> Response {
    let Ok(location) = HeaderValue::from_str(&destination.url) else {
        // Stored URLs are normalised by the `url` crate, which only emits valid header bytes.
        return Problem::status(StatusCode::INTERNAL_SERVER_ERROR).into_response();
    };
    let permanent = policy.is_permanent() && !destination.limited;
    let status = match policy.status {
        _ if permanent => policy.status,
        StatusCode::MOVED_PERMANENTLY => StatusCode::FOUND,
        StatusCode::PERMANENT_REDIRECT => StatusCode::TEMPORARY_REDIRECT,
        temporary => temporary,
    };
    let mut response = (status, [(header::LOCATION, location)]).into_response();
    if permanent {
        let max_age = destination
            .expires_in
            .map_or(policy.max_age, |left| left.min(policy.max_age));
        let value = format!("private, max-age={}", max_age.as_secs());
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_str(&value).expect("digits are a valid header"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn destination(expires_in: Option<Duration>, limited: bool) -> Destination {
        Destination {
            url: "https://example.com/".into(),
            expires_in,
            limited,
        }
    }

    fn policy(status: StatusCode) -> RedirectPolicy {
        RedirectPolicy {
            status,
            max_age: Duration::from_secs(3600),
        }
    }

    #[test]
    fn a_temporary_redirect_has_no_cache_lifetime() {
        let response = redirect(&policy(StatusCode::FOUND), &destination(None, false));
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(response.headers()[header::LOCATION], "https://example.com/");
        assert!(!response.headers().contains_key(header::CACHE_CONTROL));
    }

    #[test]
    fn a_permanent_redirect_carries_the_configured_lifetime() {
        let response = redirect(
            &policy(StatusCode::MOVED_PERMANENTLY),
            &destination(None, false),
        );
        assert_eq!(response.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(
            response.headers()[header::CACHE_CONTROL],
            "private, max-age=3600"
        );
    }

    #[test]
    fn a_permanent_redirect_is_never_cached_past_the_links_expiry() {
        let ten_minutes = Duration::from_secs(600);
        let response = redirect(
            &policy(StatusCode::MOVED_PERMANENTLY),
            &destination(Some(ten_minutes), false),
        );
        assert_eq!(
            response.headers()[header::CACHE_CONTROL],
            "private, max-age=600"
        );
    }

    #[test]
    fn a_link_with_a_visit_limit_is_always_redirected_temporarily() {
        let moved = redirect(
            &policy(StatusCode::MOVED_PERMANENTLY),
            &destination(None, true),
        );
        assert_eq!(moved.status(), StatusCode::FOUND);
        assert!(!moved.headers().contains_key(header::CACHE_CONTROL));

        let permanent = redirect(
            &policy(StatusCode::PERMANENT_REDIRECT),
            &destination(None, true),
        );
        assert_eq!(permanent.status(), StatusCode::TEMPORARY_REDIRECT);
    }
}
