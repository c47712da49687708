//! A fresh shortener per test, on its own backends, driven through its router.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode, header},
};
pub use platform::testing::http::{TestResponse, json_request, send_to};
use platform::{
    auth::AdminToken,
    clock::{Clock, ManualClock},
    testing::TestBackends,
};
use serde_json::{Value, json};
use url_shortener::{Application, Settings, service::Shortener, targets::Resolver};

pub const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

pub struct TestApp {
    pub router: Router,
    pub shortener: Arc<Shortener>,
    pub clock: ManualClock,
    pub backends: TestBackends,
    pub settings: Settings,
    /// What host names resolve to for this app: no test asks the network.
    pub hosts: Hosts,
    /// The address the app's listener was bound to: a port target URLs must not lead back to
    /// (tests drive the router without serving it).
    pub addr: SocketAddr,
    /// An API key created for this test.
    pub key: String,
}

/// A resolver that answers from a table, as `/etc/hosts` would; any other name does not resolve.
#[derive(Debug, Clone, Default)]
pub struct Hosts(HashMap<String, Vec<IpAddr>>);

impl Hosts {
    pub fn with(mut self, name: &str, address: &str) -> Self {
        self.0
            .entry(name.to_owned())
            .or_default()
            .push(address.parse().unwrap());
        self
    }
}

#[async_trait]
impl Resolver for Hosts {
    async fn lookup(&self, host: &str) -> Vec<IpAddr> {
        self.0.get(host).cloned().unwrap_or_default()
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = Settings::for_tests();
        configure(&mut settings);
        Self::on_backends(TestBackends::from_env().await, settings, Hosts::default()).await
    }

    /// An app for which the names in `hosts` resolve as given.
    pub async fn spawn_resolving(hosts: Hosts) -> Self {
        Self::on_backends(TestBackends::from_env().await, Settings::for_tests(), hosts).await
    }

    /// A second instance on the same database and (for Redis) the same cache.
    pub async fn another_instance(&self) -> (Arc<Shortener>, Router) {
        let (database, cache) = self.backends.another_instance().await;
        let app = Application::build_with(
            self.settings.clone(),
            database,
            cache,
            Arc::new(self.clock.clone()),
            Arc::new(self.hosts.clone()),
        )
        .await
        .unwrap();
        (app.shortener().clone(), app.router())
    }

    async fn on_backends(backends: TestBackends, mut settings: Settings, hosts: Hosts) -> Self {
        settings
            .admin_token
            .get_or_insert_with(AdminToken::generate);
        let clock = ManualClock::starting_now();
        let app = Application::build_with(
            settings.clone(),
            backends.database.clone(),
            backends.cache.clone(),
            Arc::new(clock.clone()),
            Arc::new(hosts.clone()),
        )
        .await
        .unwrap_or_else(|err| panic!("building on {}: {err:?}", backends.describe()));
        let mut test_app = Self {
            router: app.router(),
            shortener: app.shortener().clone(),
            clock,
            backends,
            settings,
            hosts,
            addr: app.local_addr(),
            key: String::new(),
        };
        test_app.key = test_app.new_key().await;
        test_app
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        send_to(&self.router, request).await
    }

    pub async fn new_key(&self) -> String {
        let response = self
            .post_json("/api/v1/keys", None, json!({ "name": "test" }))
            .await;
        assert_eq!(response.status, StatusCode::CREATED);
        response.json()["key"].as_str().unwrap().to_owned()
    }

    pub async fn post_json(&self, path: &str, key: Option<&str>, body: Value) -> TestResponse {
        self.send(json_request(Method::POST, path, key, body.to_string()))
            .await
    }

    /// `POST /api/v1/links` with this test's key.
    pub async fn create(&self, body: Value) -> TestResponse {
        self.post_json("/api/v1/links", Some(&self.key), body).await
    }

    /// Creates a link and returns its code.
    pub async fn create_code(&self, body: Value) -> String {
        let response = self.create(body).await;
        assert_eq!(
            response.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        response.json()["code"].as_str().unwrap().to_owned()
    }

    /// Creates a link and follows it once: it is in the cache and has a visit tallied.
    pub async fn code_visited_once(&self) -> String {
        let code = self
            .create_code(json!({ "url": "https://example.com/" }))
            .await;
        assert_eq!(self.visit(&code).await.status, StatusCode::FOUND);
        code
    }

    /// `GET /readyz`.
    pub async fn readiness(&self) -> TestResponse {
        self.send(Request::get("/readyz").body(Body::empty()).unwrap())
            .await
    }

    /// `GET /{code}` as a browser would.
    pub async fn visit(&self, code: &str) -> TestResponse {
        self.visit_as(code, Some(BROWSER)).await
    }

    pub async fn visit_as(&self, code: &str, user_agent: Option<&str>) -> TestResponse {
        let mut request = Request::get(format!("/{code}"));
        if let Some(agent) = user_agent {
            request = request.header(header::USER_AGENT, agent);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    pub async fn head(&self, code: &str) -> TestResponse {
        self.send(
            Request::head(format!("/{code}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// `GET /api/v1/links/{code}` with `key`.
    pub async fn stats(&self, code: &str, key: &str) -> TestResponse {
        self.send(authorized(
            Method::GET,
            &format!("/api/v1/links/{code}"),
            key,
        ))
        .await
    }

    /// `DELETE /api/v1/links/{code}` with `key`.
    pub async fn delete(&self, code: &str, key: &str) -> TestResponse {
        self.send(authorized(
            Method::DELETE,
            &format!("/api/v1/links/{code}"),
            key,
        ))
        .await
    }

    /// `PUT /admin/faults/{name}` with the admin token: `{"unreachable": true}`,
    /// `{"latency_ms": 1000}`, or `{}` to undo.
    pub async fn set_fault(&self, name: &str, fault: Value) -> TestResponse {
        let token = self
            .settings
            .admin_token
            .as_ref()
            .expect("set by on_backends");
        let response = self
            .send(json_request(
                Method::PUT,
                &format!("/admin/faults/{name}"),
                Some(token.expose()),
                fault.to_string(),
            ))
            .await;
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
        response
    }

    /// One line of `/metrics`: the value of the series that starts with `series`, 0 if absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let page = self
            .send(Request::get("/metrics").body(Body::empty()).unwrap())
            .await;
        String::from_utf8_lossy(&page.body)
            .lines()
            .filter(|line| line.starts_with(series))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn in_an_hour(&self) -> String {
        rfc3339(self.clock.now() + Duration::from_secs(3600))
    }
}

pub fn authorized(method: Method, path: &str, key: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap()
}

pub fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}
