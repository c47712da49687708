//! The gateway in front of a real upstream, and the rate-limit layer in front of a plain router.
//!
//! The upstream is an axum server on a free port that echoes what it received and counts the
//! requests that reached it. The gateway itself is driven with `oneshot`, with the peer address
//! `platform::http::serve` would record inserted by hand; one test goes through the application's
//! own listener, to show the wiring end to end.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, Request, State},
    http::{
        HeaderMap, HeaderName, HeaderValue, Method, StatusCode,
        header::{AUTHORIZATION, CONTENT_TYPE},
    },
    response::{IntoResponse, Response},
    routing::get,
};
use http_body_util::BodyExt;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use platform::testing::http::{TestResponse, send_to};
use rate_limiter::{
    Application, Settings, gateway,
    layer::{RateLimitLayer, client_key},
    limiter::Limiter,
    rules::{self, ClientSource},
    store::MemoryStore,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::helpers::{Fault, FaultyBackend, clock, store_with_clock};

/// A server that answers every request with what it received, and counts them.
struct Echo {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Echo {
    async fn spawn() -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let app = Router::new().fallback(echo).with_state(hits.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(platform::http::serve(listener, app, std::future::pending()));
        Self { addr, hits }
    }

    fn upstream(&self) -> rate_limiter::settings::Upstream {
        format!("http://{}", self.addr).parse().unwrap()
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn echo(State(hits): State<Arc<AtomicUsize>>, request: Request) -> Response {
    hits.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = request.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let mut headers = serde_json::Map::new();
    for name in parts.headers.keys() {
        let values: Vec<&str> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|value| value.to_str().unwrap())
            .collect();
        headers.insert(name.to_string(), values.join(", ").into());
    }
    let received = json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    (
        // A hop-by-hop header the gateway must not pass on, and one it must.
        [("keep-alive", "timeout=5"), ("x-upstream", "echo")],
        axum::Json(received),
    )
        .into_response()
}

async fn limiter(rules: &str) -> Arc<Limiter> {
    let rules = rules::parse(rules, rules::Format::Toml, "test.toml").unwrap();
    let store = store_with_clock(&clock()).await;
    Arc::new(Limiter::new(rules.rules, store, 1000))
}

/// A gateway with `rules` in front of a fresh echo server.
struct TestGateway {
    router: Router,
    upstream: Echo,
}

impl TestGateway {
    async fn new(rules: &str) -> Self {
        let upstream = Echo::spawn().await;
        let router = gateway::router(limiter(rules).await, upstream.upstream());
        Self { router, upstream }
    }

    /// Sends `request` as if from a client at `peer`.
    async fn send(&self, peer: &str, mut request: Request) -> TestResponse {
        let peer: IpAddr = peer.parse().unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(peer, 50_000)));
        send_to(&self.router, request).await
    }

    async fn get(&self, peer: &str, path: &str) -> TestResponse {
        self.send(peer, Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    async fn post_with_key(&self, peer: &str, path: &str, key: &str) -> TestResponse {
        let request = Request::post(path)
            .header(AUTHORIZATION, format!("Bearer {key}"))
            .body(Body::from("{}"))
            .unwrap();
        self.send(peer, request).await
    }
}

/// `r`, the units left, of `rule`'s item in the `RateLimit` header.
fn remaining(response: &TestResponse, rule: &str) -> u64 {
    let prefix = format!("\"{rule}\";");
    response
        .header("ratelimit")
        .split(", ")
        .find_map(|item| item.strip_prefix(&prefix))
        .and_then(|params| params.split(';').find_map(|p| p.strip_prefix("r=")))
        .unwrap_or_else(|| panic!("no `{rule}` in {:?}", response.header("ratelimit")))
        .parse()
        .unwrap()
}

const PER_IP: &str = r#"
[rules.per-ip]
algorithm = "fixed_window"
limit = 3
window = "1h"
match = { path_prefix = "/", client = "ip" }
"#;

#[tokio::test]
async fn an_allowed_request_is_forwarded_intact_with_the_ratelimit_headers() {
    let gateway = TestGateway::new(PER_IP).await;
    let request = Request::post("/echo/a%20path?x=1&y=two")
        .header("host", "gateway.example")
        .header(CONTENT_TYPE, "text/plain")
        .header("x-custom", "kept")
        .header("x-forwarded-for", "198.51.100.1")
        .header("x-forwarded-host", "forged.example")
        .header("connection", "x-hop")
        .header("x-hop", "for this connection only")
        .header("keep-alive", "timeout=300")
        .header("te", "trailers")
        .body(Body::from("hello, upstream"))
        .unwrap();

    let response = gateway.send("203.0.113.7", request).await;

    assert_eq!(response.status, StatusCode::OK);
    let received = response.json();
    assert_eq!(received["method"], "POST");
    assert_eq!(received["path"], "/echo/a%20path");
    assert_eq!(received["query"], "x=1&y=two");
    assert_eq!(received["body"], "hello, upstream");
    let headers = &received["headers"];
    assert_eq!(headers["x-custom"], "kept");
    assert_eq!(headers["x-forwarded-for"], "198.51.100.1, 203.0.113.7");
    assert_eq!(headers["x-forwarded-host"], "gateway.example");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["host"], gateway.upstream.addr.to_string());
    for hop_by_hop in ["x-hop", "keep-alive", "te"] {
        assert!(
            headers.get(hop_by_hop).is_none(),
            "{hop_by_hop} was forwarded"
        );
    }
    assert_eq!(
        headers["x-request-id"],
        response.header("x-request-id"),
        "the upstream sees the request id the client gets back"
    );

    assert_eq!(response.header("x-upstream"), "echo");
    assert!(response.headers.get("keep-alive").is_none());
    assert_eq!(response.header("ratelimit-policy"), "\"per-ip\";q=3;w=3600");
    assert_eq!(remaining(&response, "per-ip"), 2);
}

#[tokio::test]
async fn the_request_past_the_limit_is_a_429_problem_that_never_reaches_the_upstream() {
    let gateway = TestGateway::new(PER_IP).await;
    for _ in 0..3 {
        let allowed = gateway.get("203.0.113.7", "/").await;
        assert_eq!(allowed.status, StatusCode::OK);
    }

    let rejected = gateway.get("203.0.113.7", "/").await;

    let problem = rejected.problem(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(problem["type"], "tag:sdlab.dev,2026:rate-limited");
    assert!(
        problem["detail"].as_str().unwrap().contains("`per-ip`"),
        "{problem}"
    );
    let retry_after: u64 = rejected.header("retry-after").parse().unwrap();
    assert!(retry_after >= 1);
    assert_eq!(remaining(&rejected, "per-ip"), 0);
    assert!(rejected.headers.contains_key("x-request-id"));
    assert_eq!(gateway.upstream.hits(), 3);

    let other_client = gateway.get("203.0.113.8", "/").await;
    assert_eq!(other_client.status, StatusCode::OK, "IPs are counted apart");
}

#[tokio::test]
async fn two_rules_on_one_route_admit_a_request_only_together() {
    let gateway = TestGateway::new(
        r#"
        [rules.per-ip]
        algorithm = "fixed_window"
        limit = 4
        window = "1h"
        match = { path_prefix = "/", client = "ip" }

        [rules.per-key]
        algorithm = "fixed_window"
        limit = 2
        window = "1h"
        match = { path_prefix = "/api/", methods = ["POST"], client = "api_key" }
        "#,
    )
    .await;
    let ip = "198.51.100.9";
    for left in [1, 0] {
        let allowed = gateway.post_with_key(ip, "/api/links", "sk_a").await;
        assert_eq!(allowed.status, StatusCode::OK);
        assert_eq!(remaining(&allowed, "per-key"), left);
    }

    let key_a_over = gateway.post_with_key(ip, "/api/links", "sk_a").await;
    let problem = key_a_over.problem(StatusCode::TOO_MANY_REQUESTS);
    assert!(
        problem["detail"].as_str().unwrap().contains("`per-key`")
            && !problem["detail"].as_str().unwrap().contains("`per-ip`"),
        "{problem}"
    );

    let key_b = gateway.post_with_key(ip, "/api/links", "sk_b").await;
    assert_eq!(key_b.status, StatusCode::OK);
    assert_eq!(remaining(&key_b, "per-key"), 1, "keys are counted apart");
    assert_eq!(
        remaining(&key_b, "per-ip"),
        1,
        "the request per-key rejected spent nothing of per-ip"
    );

    let read = gateway.get(ip, "/api/links").await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(remaining(&read, "per-ip"), 0);

    let ip_over = gateway.post_with_key(ip, "/api/links", "sk_c").await;
    let problem = ip_over.problem(StatusCode::TOO_MANY_REQUESTS);
    assert!(
        problem["detail"].as_str().unwrap().contains("`per-ip`"),
        "{problem}"
    );
    let key_c_elsewhere = gateway
        .post_with_key("198.51.100.10", "/api/links", "sk_c")
        .await;
    assert_eq!(
        remaining(&key_c_elsewhere, "per-key"),
        1,
        "the request per-ip rejected spent nothing of per-key"
    );
    assert_eq!(gateway.upstream.hits(), 5);
}

#[test]
fn an_api_key_is_counted_by_a_hash_never_by_its_value() {
    let peer = Some("203.0.113.7".parse().unwrap());
    let bearer = |value: &str| headers(AUTHORIZATION, value);

    let key = client_key(
        &ClientSource::ApiKey,
        &bearer("Bearer sk_test_secret"),
        peer,
    );

    // The first 16 bytes of SHA-256("sk_test_secret").
    assert_eq!(key.as_str(), "key:189fca54c1d14f1a296cccd59e3cee0a");
    assert!(!key.as_str().contains("sk_test_secret"));
    assert_eq!(
        client_key(
            &ClientSource::ApiKey,
            &bearer("bearer sk_test_secret"),
            peer
        ),
        key,
        "the scheme is case-insensitive"
    );
    assert_ne!(
        client_key(&ClientSource::ApiKey, &bearer("Bearer sk_other"), peer),
        key
    );
}

#[test]
fn a_request_without_the_credential_its_rule_counts_by_is_counted_by_ip() {
    let peer = Some("203.0.113.7".parse().unwrap());
    let user = HeaderName::from_static("x-user-id");
    let cases = [
        (ClientSource::ApiKey, HeaderMap::new()),
        (
            ClientSource::ApiKey,
            headers(AUTHORIZATION, "Basic dXNlcjpwYXNz"),
        ),
        (ClientSource::ApiKey, headers(AUTHORIZATION, "Bearer ")),
        (ClientSource::Header(user.clone()), HeaderMap::new()),
        (
            ClientSource::Header(user.clone()),
            headers(user.clone(), "tab\there"),
        ),
        (
            ClientSource::Header(user.clone()),
            headers(user.clone(), &"u".repeat(300)),
        ),
    ];
    for (source, headers) in cases {
        assert_eq!(
            client_key(&source, &headers, peer).as_str(),
            "ip:203.0.113.7",
            "{source:?} {headers:?}"
        );
    }
    assert_eq!(
        client_key(
            &ClientSource::Header(user.clone()),
            &headers(user, "user-42"),
            peer
        )
        .as_str(),
        "hdr:user-42"
    );
}

#[test]
fn an_ip_key_is_the_canonical_address_or_unknown_without_a_peer() {
    let none = HeaderMap::new();
    let mapped = Some("::ffff:192.0.2.1".parse().unwrap());
    assert_eq!(
        client_key(&ClientSource::Ip, &none, mapped).as_str(),
        "ip:192.0.2.1"
    );
    // Every address of one IPv6 /64 is one client.
    for address in ["2001:db8::1", "2001:db8::ffff:1234:5678:9abc"] {
        let v6 = Some(address.parse().unwrap());
        assert_eq!(
            client_key(&ClientSource::Ip, &none, v6).as_str(),
            "ip:2001:db8::/64"
        );
    }
    assert_eq!(
        client_key(&ClientSource::Ip, &none, None).as_str(),
        "ip:unknown"
    );
}

const API_ONLY: &str = r#"
[rules.api-only]
algorithm = "fixed_window"
limit = 1
window = "1h"
match = { path_prefix = "/api/", client = "ip" }
"#;

#[tokio::test]
async fn a_route_no_rule_matches_is_forwarded_without_ratelimit_headers() {
    let gateway = TestGateway::new(API_ONLY).await;

    for _ in 0..3 {
        let response = gateway.get("203.0.113.7", "/public/page").await;
        assert_eq!(response.status, StatusCode::OK);
        assert!(response.headers.get("ratelimit-policy").is_none());
        assert!(response.headers.get("ratelimit").is_none());
    }
    assert_eq!(gateway.upstream.hits(), 3);
}

#[tokio::test]
async fn an_upstream_that_is_down_is_a_502_problem() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", closed.local_addr().unwrap())
        .parse()
        .unwrap();
    drop(closed);
    let router = gateway::router(limiter(PER_IP).await, upstream);

    let mut request = Request::get("/").body(Body::empty()).unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([203, 0, 113, 7], 50_000))));
    let response = send_to(&router, request).await;

    let problem = response.problem(StatusCode::BAD_GATEWAY);
    assert_eq!(problem["type"], "tag:sdlab.dev,2026:upstream-unreachable");
    assert!(
        !problem.to_string().contains("127.0.0.1"),
        "the upstream's address is for the logs: {problem}"
    );
    assert_eq!(
        remaining(&response, "per-ip"),
        2,
        "the request was admitted, and spent"
    );
}

#[tokio::test]
async fn an_upstream_that_does_not_answer_is_a_504_problem() {
    // Accepts connections and never answers on them.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", silent.local_addr().unwrap())
        .parse()
        .unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            held.push(connection);
        }
    });
    // No rule applies to the path, so the store is not asked while time is stopped.
    let router = gateway::router(limiter(API_ONLY).await, upstream);
    // With time stopped, the runtime jumps to the upstream timeout as soon as it is idle.
    tokio::time::pause();

    let response = send_to(&router, Request::get("/slow").body(Body::empty()).unwrap()).await;

    let problem = response.problem(StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(problem["type"], "tag:sdlab.dev,2026:upstream-timeout");
}

#[tokio::test]
async fn a_shadow_rule_never_rejects_and_is_not_advertised() {
    let gateway = TestGateway::new(
        r#"
        [rules.candidate]
        algorithm = "fixed_window"
        limit = 1
        window = "1h"
        shadow = true
        match = { path_prefix = "/", client = "ip" }
        "#,
    )
    .await;

    for _ in 0..4 {
        let response = gateway.get("203.0.113.7", "/").await;
        assert_eq!(response.status, StatusCode::OK);
        assert!(response.headers.get("ratelimit-policy").is_none());
    }
    assert_eq!(gateway.upstream.hits(), 4);
}

#[tokio::test]
async fn a_fail_closed_rule_whose_store_is_down_is_a_503_problem_and_nothing_is_forwarded() {
    let upstream = Echo::spawn().await;
    let backend = FaultyBackend::new().await;
    let rules = rules::parse(
        r#"
        [rules.guarded]
        algorithm = "fixed_window"
        limit = 10
        window = "1h"
        on_failure = "closed"
        timeout = "100ms"
        match = { path_prefix = "/", client = "ip" }
        "#,
        rules::Format::Toml,
        "test.toml",
    )
    .unwrap();
    let limiter = Arc::new(Limiter::new(rules.rules, backend.store.clone(), 1000));
    let router = gateway::router(limiter, upstream.upstream());
    backend.set(Fault::Down);

    let response = send_to(&router, Request::get("/").body(Body::empty()).unwrap()).await;

    let problem = response.problem(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem["type"], "tag:sdlab.dev,2026:limiter-unavailable");
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn the_layer_limits_a_plain_router_before_its_handler_runs() {
    let limiter = limiter(
        r#"
        [rules.per-user]
        algorithm = "fixed_window"
        limit = 2
        window = "1h"
        match = { path_prefix = "/", methods = ["GET"], client = "header:x-user-id" }
        "#,
    )
    .await;
    let handled = Arc::new(AtomicUsize::new(0));
    let counter = handled.clone();
    let app = Router::new()
        .route(
            "/",
            get(move || async move {
                counter.fetch_add(1, Ordering::SeqCst);
                "hello"
            }),
        )
        .layer(RateLimitLayer::new(limiter));
    let as_user = |user: &str| {
        Request::get("/")
            .header("x-user-id", user)
            .body(Body::empty())
            .unwrap()
    };

    for _ in 0..2 {
        let allowed = send_to(&app, as_user("alice")).await;
        assert_eq!(allowed.status, StatusCode::OK);
        assert_eq!(allowed.body, "hello");
    }
    let rejected = send_to(&app, as_user("alice")).await;
    let other_user = send_to(&app, as_user("bob")).await;

    rejected.problem(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(other_user.status, StatusCode::OK);
    assert_eq!(remaining(&other_user, "per-user"), 1);
    assert_eq!(handled.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn the_application_serves_the_gateway_on_its_own_port_when_an_upstream_is_set() {
    let upstream = Echo::spawn().await;
    let mut settings = Settings::for_tests();
    settings.upstream = Some(upstream.upstream());
    let rules = rules::parse(PER_IP, rules::Format::Toml, "test.toml").unwrap();
    let store = store_with_clock(&clock()).await;
    let app = Application::build_with(settings, rules, store, "test".into())
        .await
        .unwrap();
    let port = app
        .gateway_port()
        .expect("a gateway, since there is an upstream");
    assert_ne!(port, app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));

    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let request = Request::builder()
        .method(Method::PUT)
        .uri(format!("http://127.0.0.1:{port}/over/the/wire?q=1"))
        .body(Body::from("payload"))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("ratelimit"));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let received: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(received["method"], "PUT");
    assert_eq!(received["path"], "/over/the/wire");
    assert_eq!(received["body"], "payload");
    assert_eq!(
        received["headers"]["x-forwarded-for"], "127.0.0.1",
        "the peer address comes from the real connection"
    );
    assert_eq!(
        received["headers"]["x-forwarded-host"],
        format!("127.0.0.1:{port}")
    );
    drop(client);

    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn without_an_upstream_there_is_no_gateway() {
    let rules = rules::parse(PER_IP, rules::Format::Toml, "test.toml").unwrap();
    let store = store_with_clock(&clock()).await;
    let app = Application::build_with(Settings::for_tests(), rules, store, "test".into())
        .await
        .unwrap();

    assert_eq!(app.gateway_port(), None);
    assert!(app.gateway_router().is_none());
}

fn headers(name: HeaderName, value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(name, HeaderValue::from_str(value).unwrap());
    headers
}

#[tokio::test]
async fn a_path_the_rules_might_read_differently_from_the_upstream_is_refused() {
    let gateway = TestGateway::new(PER_IP).await;
    for path in [
        "//api/v1/links",
        "/api/./v1/links",
        "/api/v1/../v1/links",
        "/api/%76%31/links",
        "/api%2Fv1/links",
        "/api%5cv1/links",
        "/api/%zz",
    ] {
        let response = gateway.get("203.0.113.7", path).await;
        let problem = response.problem(StatusCode::BAD_REQUEST);
        assert_eq!(
            problem["type"], "tag:sdlab.dev,2026:non-canonical-path",
            "{path}"
        );
    }
    assert_eq!(
        gateway.upstream.hits(),
        0,
        "a non-canonical path was forwarded"
    );

    for path in ["/api/v1/links/", "/a%20b", "/caf%C3%A9"] {
        let response = gateway.get("203.0.113.7", path).await;
        assert_eq!(response.status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn a_head_request_is_counted_by_a_rule_on_get() {
    let gateway = TestGateway::new(
        r#"
        [rules.reads]
        algorithm = "fixed_window"
        limit = 1
        window = "1h"
        match = { path_prefix = "/", methods = ["GET"], client = "ip" }
        "#,
    )
    .await;
    assert_eq!(
        gateway.get("203.0.113.7", "/x").await.status,
        StatusCode::OK
    );
    let head = Request::head("/x").body(Body::empty()).unwrap();
    let response = gateway.send("203.0.113.7", head).await;
    assert_eq!(response.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(gateway.upstream.hits(), 1);
}

/// The leaky bucket shapes: the layer holds each admitted request until its turn. On the
/// in-process store whatever `REDIS_URL` says, because tokio's paused clock (which makes the
/// hold measurable without sleeping) would also fire the store's timeout while Redis answers.
#[tokio::test]
async fn the_leaky_bucket_holds_each_request_until_its_turn_to_leave() {
    let rules = rules::parse(
        r#"
        [rules.steady]
        algorithm = "leaky_bucket"
        rate = 10
        per = "1s"
        capacity = 3
        match = { path_prefix = "/", client = "ip" }
        "#,
        rules::Format::Toml,
        "test.toml",
    )
    .unwrap();
    let store = Arc::new(MemoryStore::new(Arc::new(clock())));
    let app = Router::new()
        .route("/", get(|| async { "sent on" }))
        .layer(RateLimitLayer::new(Arc::new(Limiter::new(
            rules.rules,
            store,
            0,
        ))));
    tokio::time::pause();

    let mut held = vec![];
    for _ in 0..3 {
        let started = tokio::time::Instant::now();
        let response = send_to(&app, Request::get("/").body(Body::empty()).unwrap()).await;
        assert_eq!(response.status, StatusCode::OK);
        held.push(started.elapsed().as_millis());
    }
    let overflow = send_to(&app, Request::get("/").body(Body::empty()).unwrap()).await;

    // The limiter's own clock stands still: the three arrive together, and leave 100 ms apart
    // (tokio's timer rounds a sleep up to its next millisecond tick).
    for (held, turn) in held.iter().zip([0, 100, 200]) {
        assert!(
            (turn..=turn + 1).contains(held),
            "held {held} ms for a turn at {turn} ms"
        );
    }
    assert_eq!(
        overflow.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the queue holds three"
    );
}
