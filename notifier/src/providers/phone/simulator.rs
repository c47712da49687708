//! SMS and push providers to deliver to: a stand-in for an SMS gateway (Twilio) and a push
//! service (FCM, APNs), reached over HTTP like the real ones, with their own idempotency and
//! fault switches that tests and the lab turn on.
//!
//! ```text
//! POST /v1/sms/messages    Idempotency-Key: <k>   {"to": "+44…", "text": "…"}
//! POST /v1/push/messages   Idempotency-Key: <k>   {"to": "<device token>", "title": "…", "body": "…"}
//! 201 {"id": "msg_…"}   (a repeat of a key: 200 and the same id, not delivered again)
//! GET  /v1/messages        the messages kept, oldest first, and counts of every delivery and repeat:
//!      {"delivered": 3, "repeats": 1,
//!       "messages": [{"id", "channel", "idempotency_key", "content", "received_at", "repeats"}, …]}
//! GET  /v1/faults, PUT /v1/faults    (with the admin token, `SDLAB_ADMIN_TOKEN`)
//!      {"error_rate": 0.0, "rate_limit_rate": 0.0, "retry_after_secs": 1, "timeout_rate": 0.0, "latency_ms": 0}
//! ```
//!
//! Faults, probabilities per request: `error_rate` answers 503, `rate_limit_rate` 429 with
//! `Retry-After: retry_after_secs`, `timeout_rate` holds the request without delivering;
//! `latency_ms` delays every answer after delivering (a caller with a shorter timeout has been
//! delivered to without knowing, which its idempotency key covers). State is in memory: it
//! stands for someone else's service.
//!
//! Each message keeps when it was received and how many requests repeated its key afterwards.
//! The repeats are what a provider without idempotency keys would have delivered twice, so they
//! are how a benchmark or a load test counts duplicates at the provider (the list itself holds
//! one message per key by construction); the time is where "from intake to provider" ends.
//!
//! **The retention window.** The simulator keeps the newest [`DEFAULT_CAPACITY`] messages and
//! forgets a message's idempotency key when the message goes: a repeat after that is delivered
//! again. A real provider keeps keys for a limited time too (Stripe's, for one: at least 24
//! hours); counting messages instead of hours keeps the memory bounded under any load and needs
//! no clock. [`Counts`] stay exact past the window, so a long load test counts by them, not by
//! the listing.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::from_fn_with_state,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use platform::{
    auth::{AdminToken, require_admin},
    problem::{FieldError, Problem},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

const HOLD: Duration = Duration::from_secs(120);

/// How many messages, and so idempotency keys, the simulator keeps: more than a run of
/// `examples/pipeline_bench` delivers, since it times every message of the run.
pub const DEFAULT_CAPACITY: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    pub error_rate: f64,
    pub rate_limit_rate: f64,
    pub retry_after_secs: u64,
    pub timeout_rate: f64,
    pub latency_ms: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            error_rate: 0.0,
            rate_limit_rate: 0.0,
            retry_after_secs: 1,
            timeout_rate: 0.0,
            latency_ms: 0,
        }
    }
}

/// A message the provider delivered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub id: String,
    pub channel: String,
    pub idempotency_key: String,
    pub content: Value,
    /// When the request that delivered it arrived.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// Later requests with the same key, answered from it and not delivered again.
    pub repeats: u64,
}

/// Counts over every request since the start, kept or not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Messages delivered: one per key, while the key is kept.
    pub delivered: u64,
    /// Requests that repeated a key already held, answered from its message.
    pub repeats: u64,
}

pub struct Simulator {
    capacity: usize,
    delivered: Mutex<Delivered>,
    faults: Mutex<Faults>,
    /// What opens `/v1/faults` over HTTP; `None`: nothing does (`set_faults` still works).
    admin: Option<AdminToken>,
}

#[derive(Default)]
struct Delivered {
    /// Oldest first.
    messages: VecDeque<Message>,
    /// Idempotency key → its message's number in delivery order, from 0; its index in
    /// `messages` is that less the number of messages evicted. A number rather than an index,
    /// so that evicting one message does not renumber every key.
    by_key: HashMap<String, u64>,
    counts: Counts,
}

impl Delivered {
    fn evicted(&self) -> u64 {
        self.counts.delivered - self.messages.len() as u64
    }
}

impl Simulator {
    /// A simulator whose fault switches are set in process only.
    pub fn new() -> Arc<Self> {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    /// A simulator that keeps the newest `capacity` messages and their keys.
    pub fn with_capacity(capacity: usize) -> Arc<Self> {
        Self::build(capacity, None)
    }

    /// A simulator whose fault switches also open over HTTP, to `admin`.
    pub fn with_admin(admin: Option<AdminToken>) -> Arc<Self> {
        Self::build(DEFAULT_CAPACITY, admin)
    }

    fn build(capacity: usize, admin: Option<AdminToken>) -> Arc<Self> {
        Arc::new(Self {
            capacity,
            delivered: Mutex::default(),
            faults: Mutex::default(),
            admin,
        })
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap() = faults;
    }

    pub fn faults(&self) -> Faults {
        *self.faults.lock().unwrap()
    }

    /// The messages kept, oldest first.
    pub fn messages(&self) -> Vec<Message> {
        (self.delivered.lock().unwrap().messages.iter())
            .cloned()
            .collect()
    }

    /// For a caller waiting for a number of deliveries, without copying the messages as
    /// [`messages`](Self::messages) does.
    pub fn counts(&self) -> Counts {
        self.delivered.lock().unwrap().counts
    }

    /// Answers a repeat of `key` from its message (200), or delivers a new one (201); forgets
    /// the oldest message and its key past the capacity. Returns the status and the message's id.
    fn deliver(
        &self,
        key: String,
        channel: String,
        content: Value,
        received_at: OffsetDateTime,
    ) -> (StatusCode, String) {
        let mut delivered = self.delivered.lock().unwrap();
        if let Some(&number) = delivered.by_key.get(&key) {
            let index = (number - delivered.evicted()) as usize;
            delivered.counts.repeats += 1;
            let message = &mut delivered.messages[index];
            message.repeats += 1;
            return (StatusCode::OK, message.id.clone());
        }
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        let number = delivered.counts.delivered;
        delivered.by_key.insert(key.clone(), number);
        delivered.messages.push_back(Message {
            id: id.clone(),
            channel,
            idempotency_key: key,
            content,
            received_at,
            repeats: 0,
        });
        delivered.counts.delivered += 1;
        if delivered.messages.len() > self.capacity
            && let Some(oldest) = delivered.messages.pop_front()
        {
            // A key has one message kept at most: while it is kept, the key is answered with it.
            delivered.by_key.remove(&oldest.idempotency_key);
        }
        (StatusCode::CREATED, id)
    }

    pub fn router(self: &Arc<Self>) -> Router {
        let routes = Router::new()
            .route("/v1/{channel}/messages", post(deliver))
            .route("/v1/messages", get(list))
            .route(
                "/v1/faults",
                get(get_faults)
                    .put(put_faults)
                    .route_layer(from_fn_with_state(self.admin.clone(), require_admin)),
            )
            .with_state(self.clone());
        platform::http::service(
            "notification-providers",
            routes,
            platform::health::Readiness::new(),
            utoipa::openapi::OpenApi::default(),
        )
    }
}

async fn deliver(
    State(simulator): State<Arc<Simulator>>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    Json(content): Json<Value>,
) -> Result<Response, Problem> {
    if channel != "sms" && channel != "push" {
        return Err(Problem::status(StatusCode::NOT_FOUND));
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .filter(|key| !key.is_empty())
        .ok_or_else(|| {
            Problem::status(StatusCode::BAD_REQUEST)
                .with_error(FieldError::parameter("Idempotency-Key", "is required"))
        })?
        .to_owned();
    let faults = simulator.faults();
    if rand::random_bool(faults.error_rate) {
        return Err(Problem::status(StatusCode::SERVICE_UNAVAILABLE)
            .with_detail("Simulated provider outage (error_rate)."));
    }
    if rand::random_bool(faults.rate_limit_rate) {
        return Err(Problem::status(StatusCode::TOO_MANY_REQUESTS).with_header(
            header::RETRY_AFTER,
            HeaderValue::from(faults.retry_after_secs),
        ));
    }
    if rand::random_bool(faults.timeout_rate) {
        tokio::time::sleep(HOLD).await;
        return Err(Problem::status(StatusCode::GATEWAY_TIMEOUT));
    }
    let received_at = OffsetDateTime::now_utc();
    let (status, id) = simulator.deliver(key, channel, content, received_at);
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    Ok((status, Json(json!({ "id": id }))).into_response())
}

#[derive(Serialize)]
struct Listing {
    #[serde(flatten)]
    counts: Counts,
    messages: Vec<Message>,
}

async fn list(State(simulator): State<Arc<Simulator>>) -> Json<Listing> {
    let delivered = simulator.delivered.lock().unwrap();
    Json(Listing {
        counts: delivered.counts,
        messages: delivered.messages.iter().cloned().collect(),
    })
}

async fn get_faults(State(simulator): State<Arc<Simulator>>) -> Json<Faults> {
    Json(simulator.faults())
}

async fn put_faults(
    State(simulator): State<Arc<Simulator>>,
    platform::extract::Json(faults): platform::extract::Json<Faults>,
) -> Result<Json<Faults>, Problem> {
    for (name, rate) in [
        ("error_rate", faults.error_rate),
        ("rate_limit_rate", faults.rate_limit_rate),
        ("timeout_rate", faults.timeout_rate),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            return Err(Problem::invalid_field(FieldError::body(
                name,
                "must be a probability from 0 to 1",
            )));
        }
    }
    simulator.set_faults(faults);
    Ok(Json(faults))
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::Request};
    use platform::testing::http::{TestResponse, send_to};

    use super::*;

    async fn send_sms(router: &Router, key: &str) -> TestResponse {
        let request = Request::post("/v1/sms/messages")
            .header(header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", key)
            .body(Body::from(r#"{"to": "+442071838750", "text": "hello"}"#))
            .unwrap();
        send_to(router, request).await
    }

    async fn listing(router: &Router) -> Value {
        let request = Request::get("/v1/messages").body(Body::empty()).unwrap();
        send_to(router, request).await.json()
    }

    #[tokio::test]
    async fn only_the_newest_messages_and_their_keys_are_kept_but_every_one_is_counted() {
        let simulator = Simulator::with_capacity(2);
        let router = simulator.router();

        for key in ["n1:sms", "n2:sms", "n3:sms"] {
            send_sms(&router, key).await;
        }
        let repeat = send_sms(&router, "n3:sms").await;
        let listed = listing(&router).await;

        let kept: Vec<_> = (simulator.messages().into_iter())
            .map(|message| (message.idempotency_key, message.repeats))
            .collect();
        assert_eq!(kept, [("n2:sms".to_owned(), 0), ("n3:sms".to_owned(), 1)]);
        assert_eq!(simulator.delivered.lock().unwrap().by_key.len(), 2);
        assert_eq!(repeat.status, StatusCode::OK);
        assert_eq!(
            simulator.counts(),
            Counts {
                delivered: 3,
                repeats: 1
            }
        );
        assert_eq!(listed["delivered"], 3);
        assert_eq!(listed["repeats"], 1);
        let listed_keys: Vec<_> = listed["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|message| message["idempotency_key"].clone())
            .collect();
        assert_eq!(listed_keys, [json!("n2:sms"), json!("n3:sms")]);
    }

    #[tokio::test]
    async fn a_key_is_delivered_again_once_its_message_has_left_the_window() {
        let simulator = Simulator::with_capacity(1);
        let router = simulator.router();

        let first = send_sms(&router, "n1:sms").await;
        send_sms(&router, "n2:sms").await;
        let again = send_sms(&router, "n1:sms").await;

        assert_eq!(again.status, StatusCode::CREATED);
        assert_ne!(again.json()["id"], first.json()["id"]);
        assert_eq!(simulator.counts().delivered, 3);
    }

    #[tokio::test]
    async fn a_repeated_key_is_answered_with_its_message_and_counted_on_it() {
        let simulator = Simulator::new();
        let router = simulator.router();

        let first = send_sms(&router, "n1:sms").await;
        let repeat = send_sms(&router, "n1:sms").await;
        let again = send_sms(&router, "n1:sms").await;
        let other = send_sms(&router, "n2:sms").await;

        assert_eq!(first.status, StatusCode::CREATED);
        assert_eq!(repeat.status, StatusCode::OK);
        assert_eq!(repeat.json()["id"], first.json()["id"]);
        assert_eq!(again.json()["id"], first.json()["id"]);
        assert_eq!(other.status, StatusCode::CREATED);
        assert_eq!(
            simulator.counts(),
            Counts {
                delivered: 2,
                repeats: 2
            }
        );
        let listed = listing(&router).await;
        let repeats: Vec<_> = listed["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|message| {
                (
                    message["idempotency_key"].clone(),
                    message["repeats"].clone(),
                )
            })
            .collect();
        assert_eq!(
            repeats,
            [(json!("n1:sms"), json!(2)), (json!("n2:sms"), json!(0))]
        );
    }

    #[tokio::test]
    async fn a_message_keeps_the_time_its_first_request_arrived() {
        let simulator = Simulator::new();
        let router = simulator.router();

        let before = OffsetDateTime::now_utc();
        send_sms(&router, "n1:sms").await;
        let after = OffsetDateTime::now_utc();
        send_sms(&router, "n1:sms").await;

        let received_at = simulator.messages()[0].received_at;
        assert!(
            before <= received_at && received_at <= after,
            "{received_at} is not between {before} and {after}"
        );
        let listed = listing(&router).await;
        let text = listed["messages"][0]["received_at"].as_str().unwrap();
        let parsed =
            OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap();
        assert_eq!(parsed, received_at);
    }

    #[tokio::test]
    async fn the_fault_switches_open_to_the_admin_token_alone() {
        let admin = AdminToken::generate();
        let simulator = Simulator::with_admin(Some(admin.clone()));
        let router = simulator.router();
        let put = |key: Option<&str>| {
            platform::testing::http::json_request(
                axum::http::Method::PUT,
                "/v1/faults",
                key,
                r#"{"error_rate": 1.0}"#.to_owned(),
            )
        };

        let anonymous = send_to(&router, put(None)).await;
        let stranger = send_to(&router, put(Some(AdminToken::generate().expose()))).await;
        let untouched = simulator.faults();
        let operator = send_to(&router, put(Some(admin.expose()))).await;

        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
        assert_eq!(stranger.status, StatusCode::UNAUTHORIZED);
        assert_eq!(untouched, Faults::default());
        assert_eq!(operator.status, StatusCode::OK);
        assert_eq!(simulator.faults().error_rate, 1.0);
    }
}
