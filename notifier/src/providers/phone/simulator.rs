//! SMS and push providers to deliver to: a stand-in for an SMS gateway (Twilio) and a push
//! service (FCM, APNs), reached over HTTP like the real ones, with their own idempotency and
//! fault switches that tests and the lab turn on.
//!
//! ```text
//! POST /v1/sms/messages    Idempotency-Key: <k>   {"to": "+44…", "text": "…"}
//! POST /v1/push/messages   Idempotency-Key: <k>   {"to": "<device token>", "title": "…", "body": "…"}
//! 201 {"id": "msg_…"}   (a repeat of a key: 200 and the same id, not delivered again)
//! GET  /v1/messages        every message delivered, for tests and the benchmark to count:
//!      [{"id", "channel", "idempotency_key", "content", "received_at", "repeats"}, …]
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

use std::{
    collections::HashMap,
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

#[derive(Default)]
pub struct Simulator {
    delivered: Mutex<Delivered>,
    faults: Mutex<Faults>,
    /// What opens `/v1/faults` over HTTP; `None`: nothing does (`set_faults` still works).
    admin: Option<AdminToken>,
}

#[derive(Default)]
struct Delivered {
    messages: Vec<Message>,
    /// Idempotency key → the index of its message.
    by_key: HashMap<String, usize>,
}

impl Simulator {
    /// A simulator whose fault switches are set in process only.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// A simulator whose fault switches also open over HTTP, to `admin`.
    pub fn with_admin(admin: Option<AdminToken>) -> Arc<Self> {
        Arc::new(Self {
            admin,
            ..Self::default()
        })
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap() = faults;
    }

    pub fn faults(&self) -> Faults {
        *self.faults.lock().unwrap()
    }

    /// Every message delivered, in order.
    pub fn messages(&self) -> Vec<Message> {
        self.delivered.lock().unwrap().messages.clone()
    }

    /// How many messages were delivered: for a caller waiting for a number, without copying
    /// them all as [`messages`](Self::messages) does.
    pub fn count(&self) -> usize {
        self.delivered.lock().unwrap().messages.len()
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
    let (status, id) = {
        let mut delivered = simulator.delivered.lock().unwrap();
        let Delivered { messages, by_key } = &mut *delivered;
        match by_key.get(&key) {
            Some(&index) => {
                let message = &mut messages[index];
                message.repeats += 1;
                (StatusCode::OK, message.id.clone())
            }
            None => {
                let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
                by_key.insert(key.clone(), messages.len());
                messages.push(Message {
                    id: id.clone(),
                    channel,
                    idempotency_key: key,
                    content,
                    received_at,
                    repeats: 0,
                });
                (StatusCode::CREATED, id)
            }
        }
    };
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    Ok((status, Json(json!({ "id": id }))).into_response())
}

async fn list(State(simulator): State<Arc<Simulator>>) -> Json<Vec<Message>> {
    Json(simulator.messages())
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
        assert_eq!(simulator.count(), 2);
        let listed = send_to(
            &router,
            Request::get("/v1/messages").body(Body::empty()).unwrap(),
        )
        .await
        .json();
        let repeats: Vec<_> = listed
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
        let listed = send_to(
            &router,
            Request::get("/v1/messages").body(Body::empty()).unwrap(),
        )
        .await
        .json();
        let text = listed[0]["received_at"].as_str().unwrap();
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
