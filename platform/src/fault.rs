//! Fault switches for a system's own dependencies: its database, its cache or store, its broker,
//! a worker. Each dependency a system can lose gets a [`FaultSwitch`], which the code that calls
//! the dependency passes through ([`FaultSwitch::pass`]) before every call: it waits the switch's
//! latency, then fails as the dependency would if it were down. The switch sits at the trait the
//! system already has for that dependency (a store, a cache, a producer), so it acts the same on
//! the embedded backends and on the real engines, and the system's own error handling is what
//! the user watches: a cache-aside read falling back to the database, a rate-limit rule failing
//! open or closed, an outbox holding what the broker cannot take.
//!
//! Over HTTP ([`FaultSwitches::router`]), on the system's own port:
//!
//! ```text
//! GET /admin/faults              every switch of the system, by name
//! GET /admin/faults/{name}       one switch: {"latency_ms": 0, "unreachable": false}
//! PUT /admin/faults/{name}       sets it (the same body); answers with what it now is
//! ```
//!
//! Each needs the admin token (`SDLAB_ADMIN_TOKEN`) and a caller on the same machine: a switch
//! that takes a system down is not for the network, whatever address the API listens on.
//! Each switch is exported as the gauges `fault_latency_ms` and `fault_unreachable`, labelled by
//! system and dependency, so a chart shows when a fault was on beside what it did.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{ConnectInfo, Request, State},
    http::StatusCode,
    middleware::{Next, from_fn, from_fn_with_state},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};

use crate::{
    auth::{AdminToken, require_admin},
    extract::Path,
    problem::{FieldError, Problem},
};

/// The most latency a switch adds to a call: a minute, longer than any timeout in the workspace.
pub const MAX_LATENCY_MS: u64 = 60_000;

/// How a switch is set. The default is healthy: no latency, reachable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Added before every call, in milliseconds (at most [`MAX_LATENCY_MS`]).
    #[serde(default)]
    pub latency_ms: u64,
    /// Every call fails as it would with the dependency down (after the latency).
    #[serde(default)]
    pub unreachable: bool,
}

impl Fault {
    pub fn is_healthy(&self) -> bool {
        *self == Self::default()
    }

    /// Refuses (422, naming the field) a latency over [`MAX_LATENCY_MS`].
    pub fn check(&self) -> Result<(), Problem> {
        if self.latency_ms > MAX_LATENCY_MS {
            return Err(Problem::invalid_field(FieldError::body(
                "latency_ms",
                format!("must be at most {MAX_LATENCY_MS} (a minute)"),
            )));
        }
        Ok(())
    }
}

/// What a call through an unreachable switch fails with.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{dependency} is unreachable: its fault switch is on (PUT /admin/faults/{dependency})")]
pub struct Unreachable {
    pub dependency: &'static str,
}

/// One dependency's switch. Cloning it gives another handle on the same switch.
#[derive(Clone)]
pub struct FaultSwitch {
    system: &'static str,
    dependency: &'static str,
    state: Arc<SwitchState>,
}

#[derive(Default)]
struct SwitchState {
    latency_ms: AtomicU64,
    unreachable: AtomicBool,
}

impl FaultSwitch {
    /// A healthy switch for `system`'s `dependency`, alone; [`FaultSwitches::add`] makes one
    /// that is reachable over HTTP.
    pub fn new(system: &'static str, dependency: &'static str) -> Self {
        let switch = Self {
            system,
            dependency,
            state: Arc::default(),
        };
        switch.export(Fault::default());
        switch
    }

    pub fn dependency(&self) -> &'static str {
        self.dependency
    }

    pub fn get(&self) -> Fault {
        Fault {
            latency_ms: self.state.latency_ms.load(Ordering::Relaxed),
            unreachable: self.state.unreachable.load(Ordering::Relaxed),
        }
    }

    pub fn set(&self, fault: Fault) {
        self.state
            .latency_ms
            .store(fault.latency_ms.min(MAX_LATENCY_MS), Ordering::Relaxed);
        self.state
            .unreachable
            .store(fault.unreachable, Ordering::Relaxed);
        self.export(fault);
        tracing::warn!(
            system = self.system,
            dependency = self.dependency,
            latency_ms = fault.latency_ms,
            unreachable = fault.unreachable,
            "fault switch set"
        );
    }

    /// Called before each call to the dependency: waits the latency, then fails if the
    /// dependency is switched unreachable. Healthy, it costs two relaxed loads.
    pub async fn pass(&self) -> Result<(), Unreachable> {
        let fault = self.get();
        if fault.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(fault.latency_ms)).await;
        }
        if fault.unreachable {
            return Err(Unreachable {
                dependency: self.dependency,
            });
        }
        Ok(())
    }

    fn export(&self, fault: Fault) {
        let labels = [("system", self.system), ("dependency", self.dependency)];
        metrics::gauge!("fault_latency_ms", &labels).set(fault.latency_ms as f64);
        metrics::gauge!("fault_unreachable", &labels).set(f64::from(u8::from(fault.unreachable)));
    }
}

/// A system's switches, by dependency name, and the admin routes that read and set them.
#[derive(Clone)]
pub struct FaultSwitches {
    system: &'static str,
    switches: Arc<std::sync::Mutex<Vec<FaultSwitch>>>,
}

impl FaultSwitches {
    pub fn new(system: &'static str) -> Self {
        Self {
            system,
            switches: Arc::default(),
        }
    }

    /// The switch for `dependency`, made healthy the first time it is asked for.
    pub fn add(&self, dependency: &'static str) -> FaultSwitch {
        let mut switches = self.switches.lock().unwrap();
        if let Some(switch) = switches.iter().find(|s| s.dependency == dependency) {
            return switch.clone();
        }
        let switch = FaultSwitch::new(self.system, dependency);
        switches.push(switch.clone());
        switch
    }

    pub fn get(&self, dependency: &str) -> Option<FaultSwitch> {
        let switches = self.switches.lock().unwrap();
        switches
            .iter()
            .find(|s| s.dependency == dependency)
            .cloned()
    }

    /// Every switch as it is set now, by dependency, in the order they were added.
    pub fn all(&self) -> Vec<(&'static str, Fault)> {
        let switches = self.switches.lock().unwrap();
        switches.iter().map(|s| (s.dependency, s.get())).collect()
    }

    /// `/admin/faults` and `/admin/faults/{name}`, opened by `admin` to callers on this machine.
    pub fn router(&self, admin: Option<AdminToken>) -> Router {
        Router::new()
            .route("/admin/faults", get(list))
            .route("/admin/faults/{name}", get(read).put(write))
            .route_layer(from_fn_with_state(admin, require_admin))
            .route_layer(from_fn(from_this_machine))
            .with_state(self.clone())
    }

    fn find(&self, name: &str) -> Result<FaultSwitch, Problem> {
        self.get(name).ok_or_else(|| {
            let names: Vec<_> = self.all().into_iter().map(|(name, _)| name).collect();
            Problem::status(StatusCode::NOT_FOUND).with_detail(format!(
                "{} has no fault switch named `{name}`; it has: {}.",
                self.system,
                names.join(", ")
            ))
        })
    }
}

async fn list(
    State(switches): State<FaultSwitches>,
) -> Json<serde_json::Map<String, serde_json::Value>> {
    Json(
        switches
            .all()
            .into_iter()
            .map(|(name, fault)| (name.to_owned(), serde_json::json!(fault)))
            .collect(),
    )
}

async fn read(
    State(switches): State<FaultSwitches>,
    Path(name): Path<String>,
) -> Result<Json<Fault>, Problem> {
    Ok(Json(switches.find(&name)?.get()))
}

async fn write(
    State(switches): State<FaultSwitches>,
    Path(name): Path<String>,
    crate::extract::Json(fault): crate::extract::Json<Fault>,
) -> Result<Json<Fault>, Problem> {
    let switch = switches.find(&name)?;
    fault.check()?;
    switch.set(fault);
    Ok(Json(switch.get()))
}

/// Refuses (403) a caller that is not on this machine. A router driven without `ConnectInfo`
/// (in a test) has no peer to check and goes on.
async fn from_this_machine(request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical());
    match peer {
        Some(ip) if !ip.is_loopback() => Problem::status(StatusCode::FORBIDDEN)
            .with_detail("Fault switches answer only to callers on the system's own machine.")
            .into_response(),
        _ => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::Request};

    use super::*;
    use crate::testing::http::send_to;

    fn put(name: &str, token: &AdminToken, body: &str) -> Request<Body> {
        Request::put(format!("/admin/faults/{name}"))
            .header("authorization", format!("Bearer {}", token.expose()))
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap()
    }

    #[tokio::test]
    async fn a_switch_set_over_http_fails_every_call_until_it_is_undone() {
        let switches = FaultSwitches::new("test-system");
        let redis = switches.add("redis");
        let token = AdminToken::generate();
        let router = switches.router(Some(token.clone()));
        assert!(redis.pass().await.is_ok());

        let response = send_to(&router, put("redis", &token, r#"{"unreachable": true}"#)).await;
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(
            response.json(),
            serde_json::json!({"latency_ms": 0, "unreachable": true})
        );
        let err = redis.pass().await.unwrap_err();
        assert_eq!(err.dependency, "redis");

        let response = send_to(&router, put("redis", &token, "{}")).await;
        assert_eq!(response.status, StatusCode::OK);
        assert!(redis.pass().await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn latency_is_waited_before_the_call() {
        let switch = FaultSwitch::new("test-system", "database");
        switch.set(Fault {
            latency_ms: 250,
            unreachable: false,
        });
        let start = tokio::time::Instant::now();
        switch.pass().await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(250));
    }

    #[tokio::test]
    async fn bad_settings_and_unknown_switches_change_nothing() {
        let switches = FaultSwitches::new("test-system");
        let broker = switches.add("broker");
        let token = AdminToken::generate();
        let router = switches.router(Some(token.clone()));

        let too_slow = send_to(&router, put("broker", &token, r#"{"latency_ms": 60001}"#)).await;
        too_slow.invalid_field("latency_ms");
        let unknown_field = send_to(
            &router,
            put("broker", &token, r#"{"unreachable": true, "down": 1}"#),
        )
        .await;
        unknown_field.problem(StatusCode::UNPROCESSABLE_ENTITY);
        let unknown = send_to(&router, put("kafka", &token, r#"{"unreachable": true}"#)).await;
        let problem = unknown.problem(StatusCode::NOT_FOUND);
        assert!(
            problem["detail"].as_str().unwrap().contains("broker"),
            "{problem}"
        );
        assert!(broker.get().is_healthy());
    }

    #[tokio::test]
    async fn the_switches_open_to_the_admin_token_alone() {
        let switches = FaultSwitches::new("test-system");
        switches.add("redis");
        let token = AdminToken::generate();
        let other = AdminToken::generate();
        let router = switches.router(Some(token));
        let response = send_to(&router, put("redis", &other, r#"{"unreachable": true}"#)).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED);
        let closed = switches.router(None);
        let response = send_to(&closed, put("redis", &other, r#"{"unreachable": true}"#)).await;
        assert_eq!(response.status, StatusCode::FORBIDDEN);
        assert!(switches.get("redis").unwrap().get().is_healthy());
    }

    #[tokio::test]
    async fn a_caller_on_another_machine_is_refused() {
        let switches = FaultSwitches::new("test-system");
        switches.add("redis");
        let token = AdminToken::generate();
        let router = switches.router(Some(token.clone()));
        let mut request = put("redis", &token, r#"{"unreachable": true}"#);
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 7], 40000))));
        let response = send_to(&router, request).await;
        assert_eq!(response.status, StatusCode::FORBIDDEN);
        let mut request = put("redis", &token, r#"{"unreachable": true}"#);
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        assert_eq!(send_to(&router, request).await.status, StatusCode::OK);
    }
}
