//! `GET /v1/users/{id}/feed?limit=&cursor=`: a home feed, a page at a time.

use axum::extract::{RawQuery, State};
use platform::{
    extract::{Path, QueryParameters},
    problem::Problem,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::{AppState, Caller, posts::Post, user_in_path};
use crate::{
    domain::{Cursor, Limit},
    error::FeedError,
};

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedPage {
    /// Newest first.
    pub data: Vec<Post>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The caller's home feed: their own posts and those of everyone they follow, newest first.
///
/// Keyset pagination: each page starts strictly below the last post of the previous one, so
/// posts published meanwhile never shift a page (no duplicates, no gaps); they show on the next
/// read from the top. The cursor is opaque: pass back `next_cursor` as it came.
#[utoipa::path(
    get,
    path = "/v1/users/{id}/feed",
    tag = "feed",
    params(
        ("id" = String, Path, description = "The reader: the caller", pattern = "^[1-9][0-9]{0,15}$"),
        ("limit" = Option<u32>, Query, description = "1 to 100, default 20", minimum = 1, maximum = 100),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "A page of the feed", body = FeedPage),
        (status = 403, description = "Someone else's feed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "A backend the request needs is unavailable (the database, or Redis for a feed); the problem names it", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn home_feed(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<FeedPage>, FeedError> {
    let (limit, cursor) = page_parameters(query.as_deref())?;
    let page = state
        .feed
        .home(&caller, user_in_path(&id)?, cursor, limit)
        .await?;
    Ok(axum::Json(FeedPage {
        data: page.posts.into_iter().map(Post::from).collect(),
        next_cursor: page.next.map(Cursor::encode),
    }))
}

/// `limit` and `cursor` from the query string, each at most once; anything else is refused
/// rather than ignored, so that a misspelt `limt=5` is a 400 and not a silent page of 20.
fn page_parameters(query: Option<&str>) -> Result<(Limit, Option<Cursor>), FeedError> {
    let parameters = QueryParameters::parse(query, &["limit", "cursor"])?;
    let limit = match parameters.get("limit") {
        None => Limit::default(),
        Some(value) => Limit::parse(value).ok_or_else(|| {
            FeedError::bad_parameter("limit", "must be a whole number from 1 to 100")
        })?,
    };
    let cursor = match parameters.get("cursor") {
        None => None,
        Some(value) => Some(Cursor::parse(value).ok_or_else(|| {
            FeedError::bad_parameter("cursor", "is not a cursor this API returned")
        })?),
    };
    Ok((limit, cursor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(query: &str) -> String {
        match page_parameters(Some(query)).unwrap_err() {
            FeedError::BadParameter(bad) => bad.name,
            other => panic!("{query:?}: {other:?}"),
        }
    }

    #[test]
    fn no_parameters_is_the_newest_twenty() {
        assert_eq!(page_parameters(None).unwrap(), (Limit::default(), None));
    }

    #[test]
    fn parameters_are_percent_decoded() {
        let (limit, _) = page_parameters(Some("limit=%35")).unwrap();
        assert_eq!(limit.get(), 5);
    }

    #[test]
    fn each_bad_parameter_is_named() {
        assert_eq!(refused("limit=0"), "limit");
        assert_eq!(refused("limit="), "limit");
        assert_eq!(refused("limit=5&limit=6"), "limit");
        assert_eq!(refused("cursor=%FF%FE"), "cursor");
        assert_eq!(refused("limit=5&page=2"), "page");
        assert_eq!(refused("limt=5"), "limt");
    }
}
