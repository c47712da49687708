//! The fault switch (`PUT /admin/faults/redis`), flipped over HTTP as the console does, on the
//! built-in rules the lab runs: `login` fails closed and `per-user` fails open, on the decision
//! API and in the gateway alike, and decisions are normal again once the switch is undone.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    http::{Method, Request, StatusCode},
};
use platform::{
    auth::AdminToken,
    testing::http::{TestResponse, json_request, send_to},
};
use rate_limiter::{Application, Settings, rules};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::helpers::{clock, store_with_clock};

/// The limiter as the lab runs it: the built-in rules, a gateway in front of an upstream that
/// counts what reaches it, and the switch open to an admin token.
struct TestLab {
    api: Router,
    gateway: Router,
    upstream_hits: Arc<AtomicUsize>,
    /// The operator's key, granted every rule of the decision API.
    key: String,
    admin: AdminToken,
}

impl TestLab {
    async fn spawn() -> Self {
        let upstream_hits = Arc::new(AtomicUsize::new(0));
        let hits = upstream_hits.clone();
        let upstream = Router::new().fallback(move || async move {
            hits.fetch_add(1, Ordering::SeqCst);
            "upstream"
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(platform::http::serve(
            listener,
            upstream,
            std::future::pending(),
        ));

        let admin = AdminToken::generate();
        let mut settings = Settings::for_tests();
        settings.upstream = Some(format!("http://{addr}").parse().unwrap());
        settings.admin_token = Some(admin.clone());
        let key = settings.caller_key.as_ref().unwrap().expose().to_owned();
        let rules = rules::parse(rules::DEFAULT_RULES, rules::Format::Toml, "rules.toml").unwrap();
        let store = store_with_clock(&clock()).await;
        let app = Application::build_with(settings, rules, store, "test".into())
            .await
            .unwrap();
        Self {
            api: app.router(),
            gateway: app.gateway_router().unwrap(),
            upstream_hits,
            key,
            admin,
        }
    }

    async fn check(&self, rule: &str) -> TestResponse {
        let body = json!({ "rule": rule, "key": "user:42" }).to_string();
        send_to(
            &self.api,
            json_request(Method::POST, "/api/v1/check", Some(&self.key), body),
        )
        .await
    }

    /// `GET /` through the gateway, from a client at 203.0.113.9.
    async fn through_the_gateway(&self) -> TestResponse {
        let mut request = Request::get("/").body(Body::empty()).unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([203, 0, 113, 9], 50_000))));
        send_to(&self.gateway, request).await
    }

    async fn set_fault(&self, fault: Value) {
        let response = send_to(
            &self.api,
            json_request(
                Method::PUT,
                "/admin/faults/redis",
                Some(self.admin.expose()),
                fault.to_string(),
            ),
        )
        .await;
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    }

    async fn get(&self, path: &str) -> TestResponse {
        let mut request = Request::get(path);
        if path.starts_with("/admin") {
            request = request.header("authorization", format!("Bearer {}", self.admin.expose()));
        }
        send_to(&self.api, request.body(Body::empty()).unwrap()).await
    }

    /// The sum of the `/metrics` series named `name` that carry every one of `labels`.
    async fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        let page = self.get("/metrics").await;
        String::from_utf8_lossy(&page.body)
            .lines()
            .filter(|line| line.starts_with(&format!("{name}{{")))
            .filter(|line| labels.iter().all(|label| line.contains(label)))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    async fn answers(&self, rule: &str, outcome: &str) -> f64 {
        self.metric(
            "ratelimit_decisions_total",
            &[
                &format!("rule=\"{rule}\""),
                &format!("outcome=\"{outcome}\""),
            ],
        )
        .await
    }

    async fn store_errors(&self, kind: &str) -> f64 {
        self.metric(
            "ratelimit_store_errors_total",
            &[&format!("kind=\"{kind}\"")],
        )
        .await
    }
}

/// The built-in rules the lab's caller key can check, by failure policy: a browser test of the
/// switch uses these two.
const FAILS_CLOSED: &str = "login";
const FAILS_OPEN: &str = "per-user";

#[tokio::test]
async fn the_limiter_has_one_switch_named_redis() {
    let lab = TestLab::spawn().await;

    let listed = lab.get("/admin/faults").await;

    assert_eq!(
        listed.json(),
        json!({ "redis": { "latency_ms": 0, "unreachable": false } })
    );
}

#[tokio::test]
async fn with_redis_unreachable_a_fail_closed_rule_refuses_and_a_fail_open_rule_admits_until_undone()
 {
    let lab = TestLab::spawn().await;
    assert_eq!(lab.check(FAILS_CLOSED).await.json()["remaining"], 4);
    assert_eq!(lab.check(FAILS_OPEN).await.json()["remaining"], 19);
    let unreachable_before = lab.store_errors("unreachable").await;
    let closed_before = lab.answers(FAILS_CLOSED, "failed_closed").await;
    let open_before = lab.answers(FAILS_OPEN, "failed_open").await;
    let gateway_open_before = lab.answers("gateway-ip", "failed_open").await;

    lab.set_fault(json!({ "unreachable": true })).await;
    let closed = lab.check(FAILS_CLOSED).await;
    let open = lab.check(FAILS_OPEN).await;
    let forwarded = lab.through_the_gateway().await;
    let readiness = lab.get("/readyz").await;

    let problem = closed.problem(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem["type"], "tag:sdlab.dev,2026:limiter-unavailable");
    assert_eq!(closed.header("retry-after"), "1");
    assert_eq!(open.status, StatusCode::OK);
    assert_eq!(open.json()["allowed"], true);
    assert_eq!(open.json()["failed_open"], true);
    assert_eq!(
        forwarded.status,
        StatusCode::OK,
        "the gateway's rules fail open"
    );
    assert_eq!(lab.upstream_hits.load(Ordering::SeqCst), 1);
    assert_eq!(readiness.status, StatusCode::OK, "open rules still answer");
    assert_eq!(readiness.json()["status"], "degraded");
    assert!(readiness.json()["checks"]["store"]["error"].is_string());
    assert!(lab.store_errors("unreachable").await >= unreachable_before + 3.0);
    assert!(lab.answers(FAILS_CLOSED, "failed_closed").await > closed_before);
    assert!(lab.answers(FAILS_OPEN, "failed_open").await > open_before);
    assert!(lab.answers("gateway-ip", "failed_open").await > gateway_open_before);

    lab.set_fault(json!({})).await;

    let closed = lab.check(FAILS_CLOSED).await;
    let open = lab.check(FAILS_OPEN).await;
    assert_eq!(closed.status, StatusCode::OK);
    assert_eq!(
        closed.json()["remaining"],
        3,
        "counted as before, and nothing was spent while the store was away"
    );
    assert_eq!(open.json()["remaining"], 18);
    assert!(open.json().get("failed_open").is_none());
    assert_eq!(lab.get("/readyz").await.json()["status"], "ready");
}

#[tokio::test]
async fn redis_slower_than_a_rules_timeout_counts_as_a_store_failure_for_that_rule() {
    let lab = TestLab::spawn().await;
    let timeouts_before = lab.store_errors("timeout").await;

    // A second: far past both rules' timeouts (100 ms for `login`, 50 ms for `per-user`).
    lab.set_fault(json!({ "latency_ms": 1000 })).await;
    let closed = lab.check(FAILS_CLOSED).await;
    let open = lab.check(FAILS_OPEN).await;

    closed.problem(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(open.json()["failed_open"], true);
    assert!(lab.store_errors("timeout").await >= timeouts_before + 2.0);

    lab.set_fault(json!({})).await;
    assert_eq!(lab.check(FAILS_CLOSED).await.json()["remaining"], 4);
    assert_eq!(lab.check(FAILS_OPEN).await.json()["remaining"], 19);
}

#[tokio::test]
async fn decisions_are_counted_by_rule_algorithm_and_outcome() {
    let lab = TestLab::spawn().await;
    let before = lab
        .metric(
            "ratelimit_decisions_total",
            &[
                r#"rule="login""#,
                r#"algorithm="sliding_log""#,
                r#"outcome="allowed""#,
            ],
        )
        .await;

    lab.check(FAILS_CLOSED).await;

    let after = lab
        .metric(
            "ratelimit_decisions_total",
            &[
                r#"rule="login""#,
                r#"algorithm="sliding_log""#,
                r#"outcome="allowed""#,
            ],
        )
        .await;
    assert!(after > before);
}
