//! A fresh feed service per test, on its own database, caches and topics, driven through its
//! router, under the strategy the test asks for (with the fan-out running); and users made through
//! the API, each with their token.

use std::{future::Future, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use feed_service::{
    Application, Settings,
    domain::{PostId, UserId},
    fanout::{Fanout, FanoutStats},
    timeline::Strategy,
};
pub use platform::testing::http::{TestResponse, json_request, send_to};
use platform::{
    auth::AdminToken,
    clock::ManualClock,
    testing::{TestBackends, TestTopics},
};
use serde_json::{Value, json};

/// How long a test waits for fan-out before failing: generous, since a Kafka consumer group
/// takes seconds to form.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub struct TestApp {
    pub router: Router,
    /// Opens the fault switches.
    pub admin: AdminToken,
    pub clock: ManualClock,
    pub app: Application,
    pub backends: TestBackends,
    pub topics: TestTopics,
    _fanout: Option<Fanout>,
}

/// A user made through `POST /v1/users`.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub token: String,
}

impl TestApp {
    /// The service under pull, the default.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// The service under `strategy`, its fan-out running.
    pub async fn under(strategy: Strategy) -> Self {
        Self::spawn_with(|settings| settings.strategy = strategy).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let backends = TestBackends::from_env().await;
        let topics = TestTopics::from_env().await;
        let clock = ManualClock::starting_now();
        let admin = AdminToken::generate();
        let mut settings = Settings::for_tests();
        settings.backends.redis_url = platform::testing::redis_url();
        settings.admin_token = Some(admin.clone());
        configure(&mut settings);
        let app = Application::build_with(
            settings,
            backends.database.clone(),
            topics.topics.clone(),
            Arc::new(clock.clone()),
        )
        .await
        .unwrap_or_else(|err| panic!("building on {}: {err:?}", backends.describe()));
        let fanout = app.start_fanout().await.expect("starting the fan-out");
        Self {
            router: app.router(),
            admin,
            clock,
            app,
            backends,
            topics,
            _fanout: fanout,
        }
    }

    /// The service with `configure`d settings and no fan-out running (no relay, no workers): what
    /// a request does by itself, before any worker has handled its event.
    pub async fn without_fanout(configure: impl FnOnce(&mut Settings)) -> Self {
        let mut app = Self::spawn_with(configure).await;
        if let Some(fanout) = app._fanout.take() {
            fanout.stop().await;
        }
        app
    }

    /// Another instance of the service on the same database, topics and clock, with `settings`
    /// (its own instance number, or on purpose the same): its router.
    pub async fn another_instance(&self, settings: Settings) -> Router {
        let (database, _cache) = self.backends.another_instance().await;
        Application::build_with(
            settings,
            database,
            self.topics.topics.clone(),
            Arc::new(self.clock.clone()),
        )
        .await
        .unwrap()
        .router()
    }

    pub fn stats(&self) -> &FanoutStats {
        self.app.fanout_stats()
    }

    /// The post ids in `reader`'s cached timeline, newest first; `None` if it is not built.
    pub async fn timeline(&self, reader: &User) -> Option<Vec<String>> {
        let reader = UserId::parse(&reader.id).unwrap();
        self.app
            .timelines()
            .range(reader, None, 10_000)
            .await
            .unwrap()
            .map(|slice| slice.ids.iter().map(PostId::to_string).collect())
    }

    /// Waits until `reader`'s cached timeline satisfies `condition`.
    pub async fn until_timeline(&self, reader: &User, condition: impl Fn(&[String]) -> bool) {
        until("the timeline to change", || async {
            self.timeline(reader)
                .await
                .is_some_and(|ids| condition(&ids))
        })
        .await;
    }

    /// Waits until the fan-out workers have handled at least `events` post events.
    pub async fn until_fanned_out(&self, events: u64) {
        until("the fan-out to handle its events", || async {
            self.stats().events() >= events
        })
        .await;
    }

    /// Sets the fault switch `name` (`PUT /admin/faults/{name}`) to `fault`, which must be
    /// accepted.
    pub async fn fault(&self, name: &str, fault: Value) -> TestResponse {
        let response = self
            .send(json_request(
                Method::PUT,
                &format!("/admin/faults/{name}"),
                Some(self.admin.expose()),
                fault.to_string(),
            ))
            .await;
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
        response
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        send_to(&self.router, request).await
    }

    pub async fn sign_up(&self, handle: &str) -> TestResponse {
        self.send(json_request(
            Method::POST,
            "/v1/users",
            None,
            json!({ "handle": handle }).to_string(),
        ))
        .await
    }

    /// Signs up a user that must be created.
    pub async fn user(&self, handle: &str) -> User {
        let response = self.sign_up(handle).await;
        assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
        let body = response.json();
        User {
            id: body["id"].as_str().expect("the id is a string").to_owned(),
            token: body["token"].as_str().unwrap().to_owned(),
        }
    }

    /// A request without a body, with `token` as the bearer if given.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>) -> TestResponse {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    pub async fn get(&self, path: &str, as_user: &User) -> TestResponse {
        self.call(Method::GET, path, Some(&as_user.token)).await
    }

    pub async fn post_as(&self, author: &User, body: Value) -> TestResponse {
        self.send(post_request(author, body)).await
    }

    /// Publishes a post that must be created, and returns its id.
    pub async fn post(&self, author: &User, text: &str) -> String {
        let response = self.post_as(author, json!({ "text": text })).await;
        assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
        response.json()["id"].as_str().unwrap().to_owned()
    }

    pub async fn delete_post(&self, id: &str, as_user: &User) -> TestResponse {
        self.call(
            Method::DELETE,
            &format!("/v1/posts/{id}"),
            Some(&as_user.token),
        )
        .await
    }

    /// `PUT` (follow) or `DELETE` (unfollow) `/v1/users/{id}/following/{target}` as `caller`.
    pub async fn following(
        &self,
        method: Method,
        caller: &User,
        id: &str,
        target: &str,
    ) -> TestResponse {
        self.call(
            method,
            &format!("/v1/users/{id}/following/{target}"),
            Some(&caller.token),
        )
        .await
    }

    /// `reader` follows `author`; it must succeed.
    pub async fn follow(&self, reader: &User, author: &User) {
        let response = self
            .following(Method::PUT, reader, &reader.id, &author.id)
            .await;
        assert_eq!(
            response.status,
            StatusCode::NO_CONTENT,
            "{:?}",
            response.body
        );
    }

    pub async fn feed(&self, reader: &User, query: &str) -> TestResponse {
        self.get(&format!("/v1/users/{}/feed{query}", reader.id), reader)
            .await
    }

    /// One page of `reader`'s feed, which must be served: its post ids and its next cursor.
    pub async fn page(&self, reader: &User, query: &str) -> (Vec<String>, Option<String>) {
        let response = self.feed(reader, query).await;
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
        let body = response.json();
        let ids = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|post| post["id"].as_str().unwrap().to_owned())
            .collect();
        let next = body["next_cursor"].as_str().map(str::to_owned);
        (ids, next)
    }

    /// The whole first page of `reader`'s feed, up to 100 posts.
    pub async fn feed_ids(&self, reader: &User) -> Vec<String> {
        self.page(reader, "?limit=100").await.0
    }
}

/// Runs one test, an `async fn` taking the strategy, once per strategy it applies to:
/// `under!(follower_feeds_are_newest_first: pull, push, hybrid)` makes the tests
/// `follower_feeds_are_newest_first::push` and so on.
macro_rules! under {
    ($test:ident: $($strategy:ident),+) => {
        mod $test {
            $(
                #[tokio::test]
                async fn $strategy() {
                    super::$test(stringify!($strategy).parse().unwrap()).await;
                }
            )+
        }
    };
}
pub(crate) use under;

/// A user who has read their feed once: their timeline is built, and fan-out counts them active.
pub async fn reader(app: &TestApp, handle: &str) -> User {
    let user = app.user(handle).await;
    app.feed_ids(&user).await;
    user
}

/// Polls `condition` until it holds, failing after [`PATIENCE`]. The pause between polls only
/// spaces them out; what the test waits for is the condition.
pub async fn until<F, Fut>(what: &str, condition: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let waited = tokio::time::timeout(PATIENCE, async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "waited {PATIENCE:?} for {what}");
}

/// `POST /v1/posts` as `author`.
pub fn post_request(author: &User, body: Value) -> Request<Body> {
    json_request(
        Method::POST,
        "/v1/posts",
        Some(&author.token),
        body.to_string(),
    )
}

/// Asserts a problem with this status whose `errors` name the query or path parameter `name`.
pub fn names_parameter(response: &TestResponse, status: StatusCode, name: &str) {
    let body = response.problem(status);
    assert_eq!(body["errors"][0]["parameter"], name, "{body}");
}
