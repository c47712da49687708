//! A card processor to charge against: test cards, its own idempotency keys, and fault switches
//! that tests and the lab turn on to watch the payments service hold.
//!
//! ```text
//! POST /v1/charges   Idempotency-Key: <key>   {"amount": 2000, "currency": "USD", "source": "tok_visa"}
//! 201 {"id": "ch_…", "status": "succeeded", …}          402 {"id": "ch_…", "status": "failed", "failure_code": "card_declined", …}
//! GET  /v1/charges   {"made": 3, "replayed": 1, "charges": [...]}   the charges kept, oldest first,
//!                    and counts of every charge made and every replay, for tests and k6 to count
//! GET  /v1/faults, PUT /v1/faults   (with the admin token, `SDLAB_ADMIN_TOKEN`)
//!      {"latency_ms": 0, "error_rate": 0.0, "timeout_rate": 0.0, "crash_after_charge_rate": 0.0}
//! ```
//!
//! Test cards, named as Stripe's: `tok_visa` and `tok_mastercard` succeed;
//! `tok_chargeDeclined` is declined with `card_declined`,
//! `tok_chargeDeclinedInsufficientFunds` with `insufficient_funds`; any other token with
//! `invalid_source`. A decline is a charge too (a failed one), replayed like any other.
//!
//! Faults, each a probability from 0 to 1 per charge request, drawn in this order:
//! - `error_rate`: a 500 before charging;
//! - `timeout_rate`: no answer at all (the request is held until the caller gives up), no charge;
//! - `crash_after_charge_rate`: the charge is made, then the connection is dropped before an
//!   answer: the caller cannot tell this from a timeout, which is the case provider idempotency
//!   exists for.
//!
//! `latency_ms` delays every answer, after the charge is made: a caller whose timeout is shorter
//! has been charged without knowing it. State is in memory: the simulator stands for a
//! remote service, whose storage is not ours to design.
//!
//! **The retention window.** The simulator keeps the newest [`DEFAULT_CAPACITY`] charges and
//! forgets a charge's idempotency key when the charge goes: a retry after that is charged again.
//! A real provider keeps keys for a limited time too (Stripe: at least 24 hours); counting
//! charges instead of hours keeps the memory bounded under any load and needs no clock. The
//! counts stay exact past the window, so a long load test still proves "one charge per payment"
//! by `made`, not by the listing.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode},
    middleware::from_fn_with_state,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use platform::{
    auth::{AdminToken, require_admin},
    problem::{FieldError, Problem},
};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// How long a "timeout" holds a request: longer than any caller waits.
const HOLD: Duration = Duration::from_secs(120);

/// How many charges, and so idempotency keys, the simulator keeps: more than one k6 run of
/// `loadtests/bench-idempotency.sh` makes, so that its count finds each charge of the run listed.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// The fault switches; all off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    pub latency_ms: u64,
    pub error_rate: f64,
    pub timeout_rate: f64,
    pub crash_after_charge_rate: f64,
}

impl Faults {
    fn check(&self) -> Result<(), Problem> {
        for (name, rate) in [
            ("error_rate", self.error_rate),
            ("timeout_rate", self.timeout_rate),
            ("crash_after_charge_rate", self.crash_after_charge_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(Problem::invalid_field(FieldError::body(
                    name,
                    "must be a probability from 0 to 1",
                )));
            }
        }
        Ok(())
    }
}

/// A charge the provider made (or declined).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Charge {
    pub id: String,
    pub idempotency_key: String,
    pub amount: u64,
    pub currency: String,
    pub source: String,
    pub status: &'static str,
    pub failure_code: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChargeRequest {
    amount: u64,
    currency: String,
    source: String,
}

/// Counts over every request since the start, kept or not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Charges made, declines included.
    pub made: u64,
    /// Requests answered with the charge of a key already held: what a provider without
    /// idempotency keys would have charged again.
    pub replayed: u64,
}

pub struct Simulator {
    capacity: usize,
    state: Mutex<Ledger>,
    faults: Mutex<Faults>,
    /// What opens `/v1/faults` over HTTP; `None`: nothing does (`set_faults` still works).
    admin: Option<AdminToken>,
}

#[derive(Default)]
struct Ledger {
    /// The keys of the charges kept, and of the requests in flight.
    keys: HashMap<String, KeyState>,
    /// Oldest first.
    charges: VecDeque<Charge>,
    counts: Counts,
}

enum KeyState {
    /// A request with this key is being handled; a concurrent one gets a 409.
    InFlight,
    Done {
        request: ChargeRequest,
        charge: Charge,
    },
}

impl Simulator {
    /// A simulator whose fault switches are set in process only.
    pub fn new() -> Arc<Self> {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    /// A simulator that keeps the newest `capacity` charges and their keys.
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
            state: Mutex::default(),
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

    /// The charges kept, oldest first.
    pub fn charges(&self) -> Vec<Charge> {
        self.state.lock().unwrap().charges.iter().cloned().collect()
    }

    pub fn counts(&self) -> Counts {
        self.state.lock().unwrap().counts
    }

    /// Records `charge` as the answer to `key`, and forgets the oldest charge and its key past
    /// the capacity.
    fn keep(&self, key: String, request: ChargeRequest, charge: Charge) {
        let mut state = self.state.lock().unwrap();
        state.counts.made += 1;
        state.charges.push_back(charge.clone());
        state.keys.insert(key, KeyState::Done { request, charge });
        if state.charges.len() > self.capacity
            && let Some(oldest) = state.charges.pop_front()
        {
            // A key has one charge kept at most: while it is kept, the key is answered with it.
            state.keys.remove(&oldest.idempotency_key);
        }
    }

    /// The provider's routes, with the shared middleware and `/healthz`.
    pub fn router(self: &Arc<Self>) -> Router {
        let routes = Router::new()
            .route("/v1/charges", post(charge).get(list_charges))
            .route(
                "/v1/faults",
                get(get_faults)
                    .put(put_faults)
                    .route_layer(from_fn_with_state(self.admin.clone(), require_admin)),
            )
            .with_state(self.clone());
        platform::http::service(
            "payment-provider",
            routes,
            platform::health::Readiness::new(),
            utoipa::openapi::OpenApi::default(),
        )
    }
}

/// Removes the in-flight marker of a request that ends without a charge (an error, a caller
/// that hung up), so that the key can be used again.
struct InFlight<'a> {
    simulator: &'a Simulator,
    key: Option<String>,
}

impl InFlight<'_> {
    fn completed(mut self) {
        self.key = None;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.simulator.state.lock().unwrap().keys.remove(&key);
        }
    }
}

async fn charge(
    State(simulator): State<Arc<Simulator>>,
    headers: HeaderMap,
    Json(request): Json<ChargeRequest>,
) -> Result<Response, Problem> {
    let key = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .filter(|key| !key.is_empty())
        .ok_or_else(|| {
            Problem::status(StatusCode::BAD_REQUEST)
                .with_detail("Charges need an Idempotency-Key header.")
        })?
        .to_owned();
    let faults = simulator.faults();

    {
        let mut state = simulator.state.lock().unwrap();
        match state.keys.get(&key) {
            Some(KeyState::Done {
                request: first,
                charge,
            }) => {
                return if *first == request {
                    let replay = answer(charge);
                    state.counts.replayed += 1;
                    Ok(replay)
                } else {
                    Err(Problem::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "idempotency-key-reused",
                        "Idempotency key reused",
                    )
                    .with_detail("This key was used for a charge with other parameters."))
                };
            }
            Some(KeyState::InFlight) => {
                return Err(Problem::status(StatusCode::CONFLICT)
                    .with_detail("A charge with this key is in progress."));
            }
            None => {
                state.keys.insert(key.clone(), KeyState::InFlight);
            }
        }
    }
    let in_flight = InFlight {
        simulator: &simulator,
        key: Some(key.clone()),
    };

    if rand::random_bool(faults.error_rate) {
        return Err(Problem::status(StatusCode::INTERNAL_SERVER_ERROR)
            .with_detail("Simulated provider error (error_rate)."));
    }
    if rand::random_bool(faults.timeout_rate) {
        tokio::time::sleep(HOLD).await;
        return Err(Problem::status(StatusCode::GATEWAY_TIMEOUT));
    }

    let failure_code = match request.source.as_str() {
        "tok_visa" | "tok_mastercard" => None,
        "tok_chargeDeclined" => Some("card_declined"),
        "tok_chargeDeclinedInsufficientFunds" => Some("insufficient_funds"),
        _ => Some("invalid_source"),
    };
    let charge = Charge {
        id: format!("ch_{}", uuid::Uuid::new_v4().simple()),
        idempotency_key: key.clone(),
        amount: request.amount,
        currency: request.currency.clone(),
        source: request.source.clone(),
        status: if failure_code.is_some() {
            "failed"
        } else {
            "succeeded"
        },
        failure_code,
    };
    simulator.keep(key, request, charge.clone());
    in_flight.completed();

    // After the charge: a caller that gives up before this answer has been charged all the same.
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }

    if rand::random_bool(faults.crash_after_charge_rate) {
        // The charge stands; the caller gets a connection that breaks before any answer.
        return Ok((StatusCode::CREATED, broken_body()).into_response());
    }
    Ok(answer(&charge))
}

/// A body that fails at once: hyper aborts the connection instead of finishing the response.
fn broken_body() -> Body {
    let failure = std::io::Error::other("simulated crash after charging");
    Body::from_stream(futures::stream::once(async move {
        Err::<axum::body::Bytes, _>(failure)
    }))
}

fn answer(charge: &Charge) -> Response {
    let status = if charge.failure_code.is_some() {
        StatusCode::PAYMENT_REQUIRED
    } else {
        StatusCode::CREATED
    };
    (
        status,
        Json(json!({
            "id": charge.id,
            "status": charge.status,
            "amount": charge.amount,
            "currency": charge.currency,
            "failure_code": charge.failure_code,
        })),
    )
        .into_response()
}

#[derive(Serialize)]
struct Listing {
    #[serde(flatten)]
    counts: Counts,
    charges: Vec<Charge>,
}

async fn list_charges(State(simulator): State<Arc<Simulator>>) -> Json<Listing> {
    let state = simulator.state.lock().unwrap();
    Json(Listing {
        counts: state.counts,
        charges: state.charges.iter().cloned().collect(),
    })
}

async fn get_faults(State(simulator): State<Arc<Simulator>>) -> Json<Faults> {
    Json(simulator.faults())
}

async fn put_faults(
    State(simulator): State<Arc<Simulator>>,
    platform::extract::Json(faults): platform::extract::Json<Faults>,
) -> Result<Json<Faults>, Problem> {
    faults.check()?;
    simulator.set_faults(faults);
    Ok(Json(faults))
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::Request};
    use platform::testing::http::{TestResponse, send_to};

    use super::*;

    async fn charge(router: &Router, key: &str) -> TestResponse {
        let request = Request::post("/v1/charges")
            .header(axum::http::header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", key)
            .body(Body::from(
                r#"{"amount": 2000, "currency": "usd", "source": "tok_visa"}"#,
            ))
            .unwrap();
        send_to(router, request).await
    }

    async fn listing(router: &Router) -> serde_json::Value {
        let request = Request::get("/v1/charges").body(Body::empty()).unwrap();
        send_to(router, request).await.json()
    }

    #[tokio::test]
    async fn only_the_newest_charges_and_their_keys_are_kept_but_every_one_is_counted() {
        let simulator = Simulator::with_capacity(2);
        let router = simulator.router();

        for key in ["k1", "k2", "k3"] {
            charge(&router, key).await;
        }
        let repeat = charge(&router, "k3").await;
        let listed = listing(&router).await;

        let kept = simulator.charges();
        let keys: Vec<_> = kept.iter().map(|c| c.idempotency_key.as_str()).collect();
        assert_eq!(keys, ["k2", "k3"]);
        assert_eq!(simulator.state.lock().unwrap().keys.len(), 2);
        assert_eq!(repeat.status, StatusCode::CREATED);
        assert_eq!(repeat.json()["id"], kept[1].id);
        assert_eq!(
            simulator.counts(),
            Counts {
                made: 3,
                replayed: 1
            }
        );
        assert_eq!(listed["made"], 3);
        assert_eq!(listed["replayed"], 1);
        let listed_keys: Vec<_> = listed["charges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["idempotency_key"].clone())
            .collect();
        assert_eq!(listed_keys, [json!("k2"), json!("k3")]);
    }

    #[tokio::test]
    async fn a_key_is_charged_again_once_its_charge_has_left_the_window() {
        let simulator = Simulator::with_capacity(1);
        let router = simulator.router();

        let first = charge(&router, "k1").await;
        charge(&router, "k2").await;
        let again = charge(&router, "k1").await;

        assert_eq!(again.status, StatusCode::CREATED);
        assert_ne!(again.json()["id"], first.json()["id"]);
        assert_eq!(simulator.counts().made, 3);
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
