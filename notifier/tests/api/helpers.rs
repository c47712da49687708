//! A fresh notifier per test, on its own database and its own topics (a prefix of its own on a
//! shared broker), driven through its router, with its providers served locally: the SMS/push
//! simulator, the mailbox, and a webhook receiver that checks signatures.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU16, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, Method, Request, StatusCode, header},
    routing::post,
};
use notifier::{
    Application, Settings,
    pipeline::Pipeline,
    providers::{mailbox::Mailbox, phone::simulator::Simulator, webhook},
};
pub use platform::testing::http::{TestResponse, json_request, send_to};
use platform::{
    auth::AdminToken,
    clock::SystemClock,
    testing::{TestBackends, TestTopics},
    topic::Topics,
};
use serde_json::{Value, json};

/// How long a test waits for the pipeline before failing. Generous: with Kafka, each consumer
/// group takes seconds to form. Nothing waits this long when things work.
pub const GUARD: Duration = Duration::from_secs(90);

pub struct TestApp {
    pub router: Router,
    /// A caller's API key, which [`send`](Self::send) puts on every request without one.
    pub key: String,
    pub app: Application,
    pub topics: Arc<dyn Topics>,
    pub settings: Settings,
    pub receiver: WebhookReceiver,
    pipeline: Option<Pipeline>,
    /// Held so that the test's database lives as long as the test.
    _backends: TestBackends,
    /// Held so that the test's embedded topics file lives as long as the test.
    _test_topics: TestTopics,
}

impl TestApp {
    /// The API alone: nothing is delivered until [`start`](Self::start).
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// The API and the pipeline.
    pub async fn running() -> Self {
        Self::running_with(|_| {}).await
    }

    pub async fn running_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let mut app = Self::spawn_with(configure).await;
        app.start().await;
        app
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = Settings::for_tests();
        settings.admin_token = Some(AdminToken::generate());
        configure(&mut settings);
        let receiver = WebhookReceiver::start(settings.webhook_secret.clone()).await;
        Self::build(
            settings,
            TestBackends::from_env().await,
            TestTopics::from_env().await,
            receiver,
        )
        .await
    }

    async fn build(
        settings: Settings,
        backends: TestBackends,
        test_topics: TestTopics,
        receiver: WebhookReceiver,
    ) -> Self {
        let topics = test_topics.topics.clone();
        let app = Application::build_with(
            settings.clone(),
            backends.database.clone(),
            topics.clone(),
            Arc::new(SystemClock),
        )
        .await
        .unwrap_or_else(|err| panic!("building on {}: {err:?}", backends.describe()));
        let key = app
            .notifier()
            .issue_caller_key("tests")
            .await
            .expect("issuing the tests' API key");
        Self {
            router: app.router(),
            key: key.expose().to_owned(),
            app,
            topics,
            settings,
            receiver,
            pipeline: None,
            _backends: backends,
            _test_topics: test_topics,
        }
    }

    /// Ends the process, as far as a test can: the pipeline killed wherever it is, the
    /// application, its local providers and its topics dropped (the embedded transport closes its
    /// file). Then starts it again on the same database and topics (the embedded transport reads
    /// its file back), with new providers, and the pipeline running.
    pub async fn restart(mut self) -> Self {
        if let Some(pipeline) = self.pipeline.take() {
            pipeline.kill().await;
        }
        let Self {
            router,
            app,
            topics,
            settings,
            receiver,
            _backends: backends,
            _test_topics: test_topics,
            ..
        } = self;
        drop((router, app, topics));
        let test_topics = test_topics.restart().await;
        let mut restarted = Self::build(settings, backends, test_topics, receiver).await;
        restarted.start().await;
        restarted
    }

    pub async fn start(&mut self) {
        assert!(self.pipeline.is_none(), "the pipeline is already running");
        self.pipeline = Some(
            self.app
                .start_pipeline()
                .await
                .expect("starting the pipeline"),
        );
    }

    /// Kills the pipeline as a crash would, wherever each stage is.
    pub async fn kill(&mut self) {
        self.pipeline
            .take()
            .expect("a running pipeline")
            .kill()
            .await;
    }

    pub fn simulator(&self) -> &Arc<Simulator> {
        &self
            .app
            .local_providers()
            .simulator
            .as_ref()
            .unwrap()
            .provider
    }

    /// The idempotency key of every message the SMS and push simulator received, sorted, repeats
    /// kept: a key twice is a device that got a notification twice.
    pub fn simulated_keys(&self) -> Vec<String> {
        let mut keys: Vec<_> = self
            .simulator()
            .messages()
            .into_iter()
            .map(|message| message.idempotency_key)
            .collect();
        keys.sort();
        keys
    }

    pub fn mailbox(&self) -> &Arc<Mailbox> {
        &self
            .app
            .local_providers()
            .mailbox
            .as_ref()
            .unwrap()
            .provider
    }

    /// Sends `request` as the tests' caller, unless it carries an `Authorization` of its own.
    pub async fn send(&self, mut request: Request<Body>) -> TestResponse {
        if !request.headers().contains_key(header::AUTHORIZATION) {
            let bearer = format!("Bearer {}", self.key);
            request
                .headers_mut()
                .insert(header::AUTHORIZATION, bearer.parse().unwrap());
        }
        send_to(&self.router, request).await
    }

    /// Sends `request` as it is: no key unless it has one.
    pub async fn send_anonymous(&self, request: Request<Body>) -> TestResponse {
        send_to(&self.router, request).await
    }

    pub async fn put_user(&self, id: &str, body: Value) -> TestResponse {
        self.send(json_request(
            Method::PUT,
            &format!("/v1/users/{id}"),
            None,
            body.to_string(),
        ))
        .await
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    pub async fn post(&self, path: &str) -> TestResponse {
        self.send(json_request(Method::POST, path, None, String::new()))
            .await
    }

    pub async fn notify(&self, body: Value) -> TestResponse {
        self.send(json_request(
            Method::POST,
            "/v1/notifications",
            None,
            body.to_string(),
        ))
        .await
    }

    /// Sends a notification that must be accepted, and returns its id.
    pub async fn accepted(&self, body: Value) -> String {
        let response = self.notify(body).await;
        assert_eq!(response.status, StatusCode::ACCEPTED, "{:?}", response.body);
        response.json()["id"].as_str().unwrap().to_owned()
    }

    /// A user reachable on every channel, opted out of SMS.
    pub async fn ada(&self) {
        let response = self
            .put_user(
                "ada",
                json!({
                    "email": "ada@example.com",
                    "phone": "+442071838750",
                    "push_tokens": ["device-1"],
                    "webhook_url": "https://example.com/hooks",
                    "preferences": {"sms": false},
                }),
            )
            .await;
        assert_eq!(response.status, 200, "{:?}", response.body);
    }

    /// A user reachable on every channel, with webhooks to this test's receiver.
    pub async fn grace(&self) {
        let response = self
            .put_user(
                "grace",
                json!({
                    "email": "grace@example.com",
                    "phone": "+14155550100",
                    "push_tokens": ["device-a", "device-b"],
                    "webhook_url": self.receiver.url(),
                }),
            )
            .await;
        assert_eq!(response.status, 200, "{:?}", response.body);
    }

    /// Polls the notification until `done` holds, and returns it; fails after [`GUARD`].
    pub async fn wait_for(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + GUARD;
        loop {
            let record = self.get(&format!("/v1/notifications/{id}")).await.json();
            if done(&record) {
                return record;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited {GUARD:?} for {what}; the notification is {record:#}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Turns the notifier's fault switch `name` unreachable or back, over HTTP with the admin
    /// token, as the console does.
    pub async fn switch(&self, name: &str, unreachable: bool) {
        let token = self
            .settings
            .admin_token
            .as_ref()
            .expect("tests have a token");
        let request = json_request(
            Method::PUT,
            &format!("/admin/faults/{name}"),
            Some(token.expose()),
            json!({ "unreachable": unreachable }).to_string(),
        );
        let response = self.send(request).await;
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
        assert_eq!(response.json()["unreachable"], unreachable);
    }

    /// Waits until no delivery of the notification is pending, queued or retrying.
    pub async fn wait_until_settled(&self, id: &str) -> Value {
        self.wait_for(id, "every delivery to settle", |record| {
            statuses(record)
                .values()
                .all(|status| !["pending", "queued", "retrying"].contains(&status.as_str()))
        })
        .await
    }
}

/// The sum of the series of `name` whose labels include each of `labels`, as the process's
/// recorder renders it now; `None` if there is no such series yet.
pub fn metric(name: &str, labels: &[&str]) -> Option<f64> {
    let values: Vec<f64> = platform::metrics::handle()
        .render()
        .lines()
        .filter(|line| {
            line.starts_with(&format!("{name} ")) || line.starts_with(&format!("{name}{{"))
        })
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Channel → status.
pub fn statuses(record: &Value) -> BTreeMap<String, String> {
    record["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|delivery| {
            (
                delivery["channel"].as_str().unwrap().to_owned(),
                delivery["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The outcomes of one channel's attempts, in order.
pub fn outcomes(record: &Value, channel: &str) -> Vec<String> {
    record["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|delivery| delivery["channel"] == channel)
        .unwrap_or_else(|| panic!("no {channel} delivery in {record:#}"))["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|attempt| attempt["outcome"].as_str().unwrap().to_owned())
        .collect()
}

/// A webhook endpoint, as a customer would run one: it checks each request's signature with the
/// shared secret and answers with the status a test chose.
#[derive(Clone)]
pub struct WebhookReceiver {
    state: Arc<ReceiverState>,
    url: String,
}

struct ReceiverState {
    secret: String,
    status: AtomicU16,
    /// Every request: its idempotency key, whether its signature verified, its body, and the
    /// status it was answered with.
    requests: Mutex<Vec<Received>>,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub idempotency_key: String,
    pub verified: bool,
    pub body: Value,
    pub answered: u16,
}

impl WebhookReceiver {
    async fn start(secret: String) -> Self {
        let state = Arc::new(ReceiverState {
            secret,
            status: AtomicU16::new(200),
            requests: Mutex::default(),
        });
        let router = Router::new()
            .route("/hooks", post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { state, url }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Answers every request with `status` from now on.
    pub fn answer(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    pub fn requests(&self) -> Vec<Received> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The requests it accepted (2xx) for `key`.
    pub fn accepted(&self, key: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.idempotency_key == key && (200..300).contains(&r.answered))
            .count()
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let verified = webhook::verify(
        state.secret.as_bytes(),
        &text(webhook::SIGNATURE_HEADER),
        &body,
        time::OffsetDateTime::now_utc().unix_timestamp(),
        Duration::from_secs(300),
    )
    .is_ok();
    let answered = state.status.load(Ordering::SeqCst);
    state.requests.lock().unwrap().push(Received {
        idempotency_key: text("idempotency-key"),
        verified,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        answered,
    });
    StatusCode::from_u16(answered).unwrap()
}
