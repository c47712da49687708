//! The HTTP stack every sdlab service runs behind, and [`serve`], whose graceful shutdown
//! answers every request it accepted (its module, `http/graceful.rs`, says how).
//!
//! [`service`] takes a system's routes and returns the router it actually serves:
//! - `/healthz`, `/readyz`, `/metrics`, `/openapi.json` and the `/docs` page are merged in;
//! - unknown paths and methods answer with problem+json (404, 405) rather than empty bodies;
//! - every request gets an `x-request-id` (kept if the client sent one, a UUID otherwise), which
//!   is echoed on the response and recorded on the tracing span around the request, so every log
//!   line a handler writes carries it; the response is logged at debug;
//! - `http_requests_total` and `http_request_duration_seconds` are recorded per service, method,
//!   route template and status, each label from a fixed set: the route is the template the
//!   router matched (`/{code}`, never the raw path, which would make one series per code) or
//!   `unmatched`, a 405 keeps its route's template, and a method other than the standard ones
//!   is `other` (see [`HttpMetrics`]);
//! - a panicking handler becomes a 500 problem instead of a dropped connection;
//! - bodies are limited to 64 KiB unless a route says otherwise, and a request that runs for
//!   30 s is cut off with a 503 problem; both are counted in the metrics like any response.

mod graceful;

use std::{
    any::Any,
    convert::Infallible,
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::{HeaderName, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Timeout};
use tower::{Layer, Service};
use tracing::Span;

pub use self::graceful::{IDLE_GRACE, serve};

use crate::{
    health::Readiness,
    metrics::{self, HttpMetrics},
    openapi,
    problem::Problem,
};

const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A system's routes wrapped in the shared endpoints and middleware.
pub fn service(
    name: &'static str,
    routes: Router,
    readiness: Readiness,
    api: utoipa::openapi::OpenApi,
) -> Router {
    service_observed(observe(name), routes, readiness, api)
}

fn service_observed(
    observe: ObserveLayer,
    routes: Router,
    readiness: Readiness,
    api: utoipa::openapi::OpenApi,
) -> Router {
    let routes = routes
        .merge(readiness.router())
        .merge(metrics::router())
        .merge(openapi::router(api))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    // One `Router::layer` for both layers: each call wraps every route in one more boxed
    // service, which is cloned and whose future is boxed on every request.
    routes.layer((observe, DefaultBodyLimit::max(DEFAULT_BODY_LIMIT)))
}

/// The middleware alone, for a listener that must not have the shared endpoints (a proxy
/// forwards every path): request ids, the request span, metrics, the 30 s timeout and the panic
/// catcher. No body limit, so that a proxy can stream bodies of any size.
pub fn instrument(name: &'static str, routes: Router) -> Router {
    routes.layer(observe(name))
}

/// Layers added with `Router::layer` run after routing, so this one sees `MatchedPath`.
fn observe(name: &'static str) -> ObserveLayer {
    ObserveLayer {
        metrics: HttpMetrics::new(name),
    }
}

/// Everything the stack does around a request, in one layer: takes the client's `x-request-id`
/// or makes one (a UUID) and sets it on the request, so that a proxy forwards it, and on the
/// response; opens the request's tracing span (so every line a handler logs carries the id);
/// times the request out after [`REQUEST_TIMEOUT`] (dropping the handler's future cancels
/// whatever it was waiting for); turns a panicking handler into a 500 problem; logs the response
/// at debug; and records it in the HTTP metrics, timeouts and panics included.
///
/// One hand-written layer with a named future, rather than `middleware::from_fn` and
/// tower-http's request-id and catch-panic layers: those box the inner future, clone the inner
/// service and box the response body per request, each a few percent of a small request's
/// cost; measured on the rate limiter's decision API (`rate-limiter/DESIGN.md` §11).
#[derive(Clone)]
struct ObserveLayer {
    metrics: HttpMetrics,
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
struct Observe<S> {
    inner: S,
    metrics: HttpMetrics,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let start = Instant::now();
        let request_id = match req.headers().get(&X_REQUEST_ID) {
            Some(id) => id.clone(),
            None => {
                let id = HeaderValue::from_str(
                    uuid::Uuid::new_v4()
                        .hyphenated()
                        .encode_lower(&mut uuid::Uuid::encode_buffer()),
                )
                .expect("a UUID is a valid header value");
                req.headers_mut().insert(X_REQUEST_ID.clone(), id.clone());
                id
            }
        };
        let method = req.method().clone();
        let route = req.extensions().get::<MatchedPath>().cloned();
        // Display (`%`), not Debug: this runs on every request, and Debug quotes and escapes.
        let span = tracing::info_span!(
            "request",
            service = self.metrics.service(),
            request_id = %request_id.to_str().unwrap_or("-"),
            method = %method,
            path = %req.uri().path(),
        );
        let handling = {
            let _entered = span.enter();
            std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req)))
        };
        let (handling, panic) = match handling {
            Ok(future) => (Some(tokio::time::timeout(REQUEST_TIMEOUT, future)), None),
            Err(panic) => (None, Some(panic)),
        };
        Observed {
            handling,
            panic,
            record: Some(Record {
                span,
                start,
                method,
                route,
                request_id,
                metrics: self.metrics.clone(),
            }),
        }
    }
}

pin_project! {
    /// The future of one observed request: the handler's, under the timeout.
    struct Observed<F> {
        #[pin]
        handling: Option<Timeout<F>>,
        // Set when the handler panicked before it returned a future.
        panic: Option<Box<dyn Any + Send>>,
        record: Option<Record>,
    }
}

/// What is recorded once the response is there.
struct Record {
    span: Span,
    start: Instant,
    method: Method,
    route: Option<MatchedPath>,
    request_id: HeaderValue,
    metrics: HttpMetrics,
}

impl<F> Future for Observed<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let record = this
            .record
            .as_ref()
            .expect("an observed request is not polled after it completed");
        let polled = {
            let _entered = record.span.enter();
            match (this.panic.take(), this.handling.as_pin_mut()) {
                (Some(panic), _) => Err(panic),
                (None, Some(handling)) => {
                    std::panic::catch_unwind(AssertUnwindSafe(|| handling.poll(cx)))
                }
                (None, None) => unreachable!("either the handler's future or its panic"),
            }
        };
        let response = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Ok(Ok(response)))) => response,
            Ok(Poll::Ready(Ok(Err(infallible)))) => match infallible {},
            Ok(Poll::Ready(Err(_elapsed))) => {
                tracing::warn!(parent: &record.span, timeout = ?REQUEST_TIMEOUT, "request timed out");
                Problem::status(StatusCode::SERVICE_UNAVAILABLE)
                    .with_detail("The request took too long and was cancelled.")
                    .into_response()
            }
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("(not a string)");
                tracing::error!(parent: &record.span, panic = message, "handler panicked");
                Problem::status(StatusCode::INTERNAL_SERVER_ERROR).into_response()
            }
        };
        let record = this.record.take().expect("checked above");
        Poll::Ready(Ok(record.finish(response)))
    }
}

impl Record {
    fn finish(self, mut response: Response) -> Response {
        let elapsed = self.start.elapsed();
        tracing::debug!(parent: &self.span, status = response.status().as_u16(), ?elapsed, "response");
        let route = self.route.as_ref().map_or("unmatched", MatchedPath::as_str);
        self.metrics
            .record(route, &self.method, response.status(), elapsed);
        response
            .headers_mut()
            .entry(&X_REQUEST_ID)
            .or_insert(self.request_id);
        response
    }
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
                "/echo-id",
                get(|headers: axum::http::HeaderMap| async move {
                    headers["x-request-id"].to_str().unwrap().to_owned()
                }),
            )
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
    async fn the_handler_sees_the_request_id_the_response_carries() {
        // A proxy forwards the request's headers, so the id must be on the request itself.
        let response = send(Request::get("/echo-id").body(Body::empty()).unwrap()).await;
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(body, id.as_bytes());
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
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

    /// The lines of the `/metrics` page that belong to `service`.
    fn series_of(service: &str) -> Vec<String> {
        let label = format!("service=\"{service}\"");
        metrics::handle()
            .render()
            .lines()
            .filter(|line| line.contains(&label))
            .map(str::to_owned)
            .collect()
    }

    /// A method token no standard method is: `X` and up to eight letters or digits.
    fn made_up_method() -> Method {
        const TOKEN: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut name = vec![b'X'];
        name.extend(
            (0..rand::random_range(0..9)).map(|_| TOKEN[rand::random_range(..TOKEN.len())]),
        );
        Method::from_bytes(&name).unwrap()
    }

    /// A path that may match a route (`/hello`, `/docs/…`) or nothing at all.
    fn random_path() -> String {
        let mut path = String::new();
        for _ in 0..rand::random_range(1..4) {
            path.push('/');
            path.push_str(
                match rand::random_range(0..5) {
                    0 => "hello".into(),
                    1 => "docs".into(),
                    2 => "%FF%00".into(),
                    _ => rand::random::<u32>().to_string(),
                }
                .as_str(),
            );
        }
        path
    }

    #[tokio::test]
    async fn requests_with_made_up_methods_and_paths_make_no_new_series() {
        // Arrange: one request of every standard method on a route, a path no route matches and
        // a path that matches a route with a tail (`/docs/…`), so that every series these
        // requests can make exists.
        let service = "bounded-series-test";
        let observe = observe(service);
        let kept = observe.metrics.clone();
        let app = service_observed(
            observe,
            Router::new().route("/hello", get(|| async { "hello" })),
            Readiness::new(),
            utoipa::openapi::OpenApi::default(),
        );
        let send = |method: Method, path: String| {
            let app = app.clone();
            async move {
                let request = Request::builder()
                    .method(method)
                    .uri(path)
                    .body(Body::empty())
                    .unwrap();
                app.oneshot(request).await.unwrap()
            }
        };
        let standard = [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::CONNECT,
            Method::OPTIONS,
            Method::TRACE,
            Method::PATCH,
        ];
        for method in standard.iter().cloned().chain([made_up_method()]) {
            for path in ["/hello", "/docs", "/docs/hello", "/nothing/here"] {
                send(method.clone(), path.into()).await;
            }
        }
        let series = series_of(service).len();
        let handles = kept.series_kept();

        // Act: 1,000 requests with made-up methods and paths.
        let mut raw = Vec::new();
        for _ in 0..1_000 {
            let method = made_up_method();
            let response = send(method.clone(), random_path()).await;
            assert!(
                response.status().is_client_error(),
                "{method} answered {}",
                response.status()
            );
            raw.push(method);
        }

        // Assert: no new series, no new handles, and no method as the client spelt it.
        let after = series_of(service);
        assert_eq!(after.len(), series, "series made:\n{}", after.join("\n"));
        assert_eq!(kept.series_kept(), handles);
        for method in raw {
            let label = format!("method=\"{method}\"");
            assert!(
                !after.iter().any(|line| line.contains(&label)),
                "{label} is a label"
            );
        }
    }

    #[tokio::test]
    async fn the_shared_endpoints_are_mounted() {
        for path in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs/"] {
            let response = send(Request::get(path).body(Body::empty()).unwrap()).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
        }
    }
}
