//! The HTTP stack every sdlab service runs behind, and `serve` with graceful shutdown.
//!
//! [`service`] takes a system's routes and returns the router it actually serves:
//! - `/healthz`, `/readyz`, `/metrics`, `/openapi.json` and the `/docs` page are merged in;
//! - unknown paths and methods answer with problem+json (404, 405) rather than empty bodies;
//! - every request gets an `x-request-id` (kept if the client sent one, a UUID otherwise), which
//!   is echoed on the response and recorded on the tracing span around the request, so every log
//!   line a handler writes carries it; the response is logged at debug;
//! - `http_requests_total` and `http_request_duration_seconds` are recorded per service, method,
//!   route template (`/{code}`, never the raw path, which would make one series per code) and
//!   status;
//! - a panicking handler becomes a 500 problem instead of a dropped connection;
//! - bodies are limited to 64 KiB unless a route says otherwise, and a request that runs for
//!   30 s is cut off with a 503 problem; both are counted in the metrics like any response.

use std::{future::Future, net::SocketAddr, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, Request, State},
    http::{HeaderName, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    serve::ListenerExt,
};
use tokio::{net::TcpListener, time::Instant};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
};
use tracing::Instrument;

use crate::{
    health::Readiness,
    metrics::{self, HttpMetrics},
    openapi,
    problem::Problem,
};

const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A system's routes wrapped in the shared endpoints and middleware.
pub fn service(
    name: &'static str,
    routes: Router,
    readiness: Readiness,
    api: utoipa::openapi::OpenApi,
) -> Router {
    let routes = routes
        .merge(readiness.router())
        .merge(metrics::router())
        .merge(openapi::router(api))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(DEFAULT_BODY_LIMIT));
    instrument(name, routes)
}

/// The middleware alone, for a listener that must not have the shared endpoints (a proxy
/// forwards every path): request ids, the request span, metrics, the 30 s timeout and the panic
/// catcher. No body limit, so that a proxy can stream bodies of any size.
pub fn instrument(name: &'static str, routes: Router) -> Router {
    let x_request_id = HeaderName::from_static("x-request-id");
    routes
        // Layers added with `Router::layer` run after routing, so they see `MatchedPath`. The
        // panic catcher sits inside `observe`, so that panics are counted as 500s.
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("handler panicked");
            Problem::status(StatusCode::INTERNAL_SERVER_ERROR).into_response()
        }))
        .layer(middleware::from_fn_with_state(
            HttpMetrics::new(name),
            observe,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(
                    x_request_id.clone(),
                    MakeRequestUuid,
                ))
                .layer(PropagateRequestIdLayer::new(x_request_id)),
        )
}

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        // Small request/response exchanges should not wait for Nagle's algorithm.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::warn!(%err, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Everything the stack does around a request, in one middleware: opens the request's tracing
/// span (so every line a handler logs carries the request id), times the request out after
/// [`REQUEST_TIMEOUT`] (dropping the handler's future cancels whatever it was waiting for), logs
/// the response at debug, and records it in the HTTP metrics, timeouts included.
///
/// One `from_fn` rather than several layers: each `from_fn` boxes and clones the inner service
/// per request, and tower-http's `TraceLayer` also wraps and classifies every response body; the
/// redirect benchmark measured each at a few percent of throughput.
async fn observe(State(metrics): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-");
    // Display (`%`), not Debug: this runs on every request, and Debug quotes and escapes.
    let span = tracing::info_span!(
        "request",
        service = metrics.service(),
        request_id = %request_id,
        method = %method,
        path = %req.uri().path(),
    );

    let handled = tokio::time::timeout(REQUEST_TIMEOUT, next.run(req))
        .instrument(span.clone())
        .await;
    let response = handled.unwrap_or_else(|_| {
        tracing::warn!(parent: &span, timeout = ?REQUEST_TIMEOUT, "request timed out");
        Problem::status(StatusCode::SERVICE_UNAVAILABLE)
            .with_detail("The request took too long and was cancelled.")
            .into_response()
    });

    let elapsed = start.elapsed();
    tracing::debug!(parent: &span, status = response.status().as_u16(), ?elapsed, "response");
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    metrics.record(route, &method, response.status(), elapsed);
    response
}

async fn not_found() -> Problem {
    Problem::status(StatusCode::NOT_FOUND).with_detail("There is nothing at this path.")
}

async fn method_not_allowed() -> Problem {
    Problem::status(StatusCode::METHOD_NOT_ALLOWED)
        .with_detail("This path does not accept that method.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{body::Body, routing::get};
    use tower::ServiceExt;

    fn app() -> Router {
        let routes = Router::new()
            .route("/hello", get(|| async { "hello" }))
            .route("/slow", get(std::future::pending::<&str>))
            .route(
                "/panic",
                get(|| async {
                    if true {
                        panic!("boom");
                    }
                    "unreachable"
                }),
            );
        service(
            "test",
            routes,
            Readiness::new(),
            utoipa::openapi::OpenApi::default(),
        )
    }

    async fn send(request: Request<Body>) -> Response {
        app().oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn every_response_carries_a_request_id_and_a_clients_own_is_kept() {
        let fresh = send(Request::get("/hello").body(Body::empty()).unwrap()).await;
        assert!(fresh.headers().contains_key("x-request-id"));

        let kept = send(
            Request::get("/hello")
                .header("x-request-id", "abc-123")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(kept.headers()["x-request-id"], "abc-123");
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_are_problems() {
        let missing = send(Request::get("/nope").body(Body::empty()).unwrap()).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            missing.headers()["content-type"],
            crate::problem::CONTENT_TYPE
        );

        let wrong_method = send(Request::delete("/hello").body(Body::empty()).unwrap()).await;
        assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            wrong_method.headers()["content-type"],
            crate::problem::CONTENT_TYPE
        );
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_500_problem() {
        let response = send(Request::get("/panic").body(Body::empty()).unwrap()).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers()["content-type"],
            crate::problem::CONTENT_TYPE
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_past_the_timeout_is_a_503_problem() {
        let response = send(Request::get("/slow").body(Body::empty()).unwrap()).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers()["content-type"],
            crate::problem::CONTENT_TYPE
        );
    }

    #[tokio::test]
    async fn the_shared_endpoints_are_mounted() {
        for path in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs/"] {
            let response = send(Request::get(path).body(Body::empty()).unwrap()).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
        }
    }
}
