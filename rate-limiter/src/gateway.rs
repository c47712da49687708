//! The gateway: a reverse proxy that applies the rules with a `match` to every request, then
//! forwards the admitted ones to one upstream.
//!
//! ```text
//! client ──▶ request id ──▶ RateLimitLayer ──▶ proxy ──▶ upstream (RATE_LIMITER_UPSTREAM)
//!                               │ 429 problem+json, never forwarded
//! ```
//!
//! It listens on a port of its own (`RATE_LIMITER_GATEWAY_ADDR`) rather than beside the decision
//! API, because every path belongs to the upstream: the shared stack of
//! `platform::http::service` would answer `/healthz` or `/metrics` itself and hide the
//! upstream's. So this router is the proxy as the fallback, the limiter in front of it
//! ([`crate::layer`]), and around both only the shared middleware, `platform::http::instrument`
//! (request ids, the request span, metrics, the 30 s timeout), without the shared endpoints.
//!
//! What the proxy does to an exchange, as RFC 9110 section 7.6 asks of an intermediary:
//! - **Hop-by-hop headers** (`Connection` and those it names, `Keep-Alive`, `TE`, `Trailer`,
//!   `Transfer-Encoding`, `Upgrade`, `Proxy-Connection`) describe one connection, so they are
//!   removed in both directions. A consequence: upgrades (WebSocket) do not pass through.
//! - **`Host`** becomes the upstream's authority, and the client's goes in `X-Forwarded-Host`;
//!   the peer's address is appended to `X-Forwarded-For` (appended, not replaced: the upstream
//!   decides how many hops it trusts), and `X-Forwarded-Proto` is `http`, since that is all the
//!   gateway serves.
//! - **Bodies stream** in both directions, never buffered: memory stays flat whatever the size,
//!   and the first bytes of a large response reach the client as soon as the upstream sends them.
//!
//! One hyper client is built per router and shared by every request, so connections to the
//! upstream are kept alive and reused from its pool instead of paying a TCP handshake each time.
//! An upstream that refuses the connection is a 502; one that has not sent its response headers
//! after 20 s is a 504. The body that follows is not timed: a long download is not a hung
//! upstream.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, Request, State},
    http::{
        HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, Version,
        header::{CONNECTION, HOST, TE, TRAILER, TRANSFER_ENCODING, UPGRADE},
    },
    response::{IntoResponse, Response},
};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use platform::problem::Problem;

use crate::{layer::RateLimitLayer, limiter::Limiter, settings::Upstream};

/// How long the upstream has to send its response headers.
///
/// Inside the 30 s every request gets from the shared middleware, with room for the longest
/// hold a leaky bucket may impose on a gateway request ([`crate::rules::MAX_GATEWAY_HOLD`]): so
/// a slow upstream is a 504 from here, never the shared 503.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(20);

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The gateway to `upstream`, limited by the rules of `limiter` that have a `match`. Serve it
/// with `platform::http::serve`, which records the peer addresses the IP rules count by.
pub fn router(limiter: Arc<Limiter>, upstream: Upstream) -> Router {
    let mut connector = HttpConnector::new();
    // As `platform::http::serve` does for its clients: small exchanges should not wait for
    // Nagle's algorithm.
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new()).build(connector);
    let routes = Router::new()
        .fallback(proxy)
        .with_state(Arc::new(Proxy { client, upstream }))
        .layer(RateLimitLayer::new(limiter))
        .layer(axum::middleware::from_fn(canonical_paths_only));
    // The shared middleware outside the limiter: a rejection is logged, counted and answered
    // with the request id too, and the id goes upstream with the request, so the upstream's
    // logs carry the same one.
    platform::http::instrument(GATEWAY, routes)
}

/// Refuses, with 400, a path the rules might read differently from the upstream.
///
/// The rules match the path as sent; upstreams often clean it up first (nginx merges slashes,
/// frameworks resolve `.` and `..`, decode `%61` to `a`, or take a backslash or `%2F` for `/`). Forwarded
/// as sent, `//api/v1/links` or `/api/./v1/links` would miss a rule on `/api/v1/links` and still
/// reach the handler it protects. Rather than guess each upstream's normalisation, the gateway
/// accepts only paths that every normalisation leaves unchanged; browsers and HTTP clients send
/// nothing else.
async fn canonical_paths_only(request: Request, next: axum::middleware::Next) -> Response {
    if is_canonical(request.uri().path()) {
        return next.run(request).await;
    }
    Problem::new(
        StatusCode::BAD_REQUEST,
        "non-canonical-path",
        "The path is not canonical",
    )
    .with_detail(
        "Send the path without empty or dot segments, backslashes, encoded slashes or \
             percent-encoded letters and digits.",
    )
    .into_response()
}

/// Whether `path` has no empty, `.` or `..` segment, no backslash, and no percent-encoding of an
/// unreserved character (RFC 3986 section 2.3), a slash or a backslash.
pub fn is_canonical(path: &str) -> bool {
    if !path.starts_with('/') || path.contains('\\') {
        return false;
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    let segments_ok = segments.iter().enumerate().all(|(i, segment)| {
        // An empty last segment is a trailing slash, which is a different resource, not a trick.
        (!segment.is_empty() || i == last) && *segment != "." && *segment != ".."
    });
    let bytes = path.as_bytes();
    let escapes_ok = bytes.iter().enumerate().all(|(i, byte)| {
        if *byte != b'%' {
            return true;
        }
        let Some(hex) = path.get(i + 1..i + 3) else {
            return false;
        };
        match u8::from_str_radix(hex, 16) {
            Ok(decoded) => !(decoded.is_ascii_alphanumeric() || b"-._~/\\".contains(&decoded)),
            Err(_) => false,
        }
    });
    segments_ok && escapes_ok
}

/// The gateway's name in metrics and logs.
pub const GATEWAY: &str = "rate-limiter-gateway";

struct Proxy {
    client: Client<HttpConnector, Body>,
    upstream: Upstream,
}

async fn proxy(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical());
    // The client's host: its `Host` header, or the authority of an absolute-form target.
    let client_host = parts.headers.get(HOST).cloned().or_else(|| {
        let authority = parts.uri.authority()?;
        HeaderValue::from_str(authority.as_str()).ok()
    });

    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |path_and_query| path_and_query.as_str());
    parts.uri = Uri::builder()
        .scheme("http")
        .authority(proxy.upstream.0.clone())
        .path_and_query(path_and_query)
        .build()
        .expect("an authority and a request's own path make a URI");
    // The client may have spoken HTTP/1.0 or 2; the upstream connection is HTTP/1.1, and hyper
    // refuses to send a request whose version the connection does not speak.
    parts.version = Version::HTTP_11;

    let headers = &mut parts.headers;
    remove_hop_by_hop(headers);
    if let Some(value) = forwarded_for(headers, peer) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    // Replaced, not appended: a client could otherwise pass off any host as its own.
    headers.remove(X_FORWARDED_HOST);
    if let Some(host) = client_host {
        headers.insert(X_FORWARDED_HOST, host);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    headers.insert(
        HOST,
        HeaderValue::from_str(proxy.upstream.0.as_str()).expect("an authority is a valid header"),
    );

    let sent = proxy.client.request(Request::from_parts(parts, body));
    match tokio::time::timeout(UPSTREAM_TIMEOUT, sent).await {
        Ok(Ok(response)) => {
            let (mut parts, body) = response.into_parts();
            remove_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Body::new(body))
        }
        Ok(Err(err)) => {
            // The cause (refused, reset, bad response) is for the operator, not the client.
            tracing::warn!(
                upstream = %proxy.upstream,
                error = %platform::problem::error_chain(&err),
                "the upstream failed"
            );
            Problem::new(
                StatusCode::BAD_GATEWAY,
                "upstream-unreachable",
                "The upstream did not answer",
            )
            .with_detail("The service behind this gateway could not be reached; try again later.")
            .into_response()
        }
        Err(_elapsed) => {
            tracing::warn!(
                upstream = %proxy.upstream,
                timeout = ?UPSTREAM_TIMEOUT,
                "the upstream timed out"
            );
            Problem::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream-timeout",
                "The upstream took too long",
            )
            .with_detail(format!(
                "The service behind this gateway did not answer within {} s.",
                UPSTREAM_TIMEOUT.as_secs()
            ))
            .into_response()
        }
    }
}

/// Removes the headers that belong to one connection rather than to the message.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // `Connection: close, x-session-hint` makes `x-session-hint` hop-by-hop as well.
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        CONNECTION,
        KEEP_ALIVE,
        PROXY_CONNECTION,
        TE,
        TRAILER,
        TRANSFER_ENCODING,
        UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// The client's `X-Forwarded-For` entries, on one line, with the peer's address appended.
fn forwarded_for(headers: &HeaderMap, peer: Option<IpAddr>) -> Option<HeaderValue> {
    let mut hops: Vec<String> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(str::to_owned)
        .collect();
    hops.extend(peer.map(|ip| ip.to_string()));
    if hops.is_empty() {
        return None;
    }
    HeaderValue::try_from(hops.join(", ")).ok()
}
