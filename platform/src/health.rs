//! `/healthz` and `/readyz`.
//!
//! Liveness (`/healthz`) answers 200 whenever the process can serve HTTP at all: an orchestrator
//! restarts a process that fails it, so it must not depend on the database (a database outage
//! would otherwise restart every instance at once, for nothing). Readiness (`/readyz`) probes each
//! backend concurrently with a short timeout and answers 503 when a *required* one is down, so a
//! load balancer stops sending traffic until it is back.
//!
//! Some backends are not required: a service that reads through a cache still answers when the
//! cache is down, only slower. Failing readiness then would take every instance out of the load
//! balancer at once and turn a slowdown into an outage, so such a backend is an *optional* probe:
//! reported (`"status": "degraded"`), never a 503.
//!
//! `/readyz` also says what each backend is (`"backends": {"database": "SQLite at …"}`), with
//! any password left out, so that a console or an operator sees whether a system runs on the
//! embedded backends or on which engine, without access to its configuration.

use std::{future::Future, sync::Arc, time::Duration};

use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use futures::future::{BoxFuture, join_all};
use serde_json::{Map, Value, json};

use crate::{cache::Cache, db::Database, fault::FaultSwitch};

type Probe = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Whether a service can answer without a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Down means unavailable: `/readyz` answers 503.
    Required,
    /// Down means degraded: reported, still 200.
    Optional,
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The backends `/readyz` probes.
#[derive(Clone, Default)]
pub struct Readiness {
    probes: Vec<(&'static str, Need, Probe)>,
    backends: Vec<(&'static str, String)>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn database(self, db: Database, need: Need) -> Self {
        self.add("database", need, move || {
            let db = db.clone();
            async move { db.ping().await.map_err(|e| e.to_string()) }
        })
    }

    /// The database behind its fault switch (`crate::fault`): probed through the switch, so that
    /// switched unreachable it is reported down, as it would be in a real outage; and described
    /// as what is connected.
    pub fn database_behind(self, db: Database, switch: FaultSwitch, need: Need) -> Self {
        let description = db.describe();
        self.add("database", need, move || {
            let (db, switch) = (db.clone(), switch.clone());
            async move {
                switch.pass().await.map_err(|e| e.to_string())?;
                db.ping().await.map_err(|e| e.to_string())
            }
        })
        .backend("database", description)
    }

    /// A cache in front of a database is usually [`Need::Optional`]: reads fall back to the
    /// database without it.
    pub fn cache(self, cache: Arc<dyn Cache>, need: Need) -> Self {
        let description = cache.describe();
        self.add("cache", need, move || {
            let cache = cache.clone();
            async move { cache.ping().await.map_err(|e| e.to_string()) }
        })
        .backend("cache", description)
    }

    /// A dependency the service cannot serve without: a broker, an upstream.
    pub fn probe<F, Fut>(self, name: &'static str, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.add(name, Need::Required, probe)
    }

    /// A dependency the service degrades without: reported, never a 503.
    pub fn optional_probe<F, Fut>(self, name: &'static str, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.add(name, Need::Optional, probe)
    }

    /// What the backend `name` is, for `/readyz`'s `backends`: `SQLite at data/x.sqlite`,
    /// `Redis at redis://127.0.0.1:6379`. The description must hold no secret (a database
    /// configuration's `Display` redacts its password).
    pub fn backend(mut self, name: &'static str, description: impl std::fmt::Display) -> Self {
        self.backends.push((name, description.to_string()));
        self
    }

    fn add<F, Fut>(mut self, name: &'static str, need: Need, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let probe: Probe = Arc::new(move || Box::pin(probe()));
        self.probes.push((name, need, probe));
        self
    }

    /// Probes every backend.
    pub async fn check(&self) -> (Status, Map<String, Value>) {
        let outcomes = join_all(self.probes.iter().map(|(name, need, probe)| async move {
            let outcome = match tokio::time::timeout(PROBE_TIMEOUT, probe()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
            };
            (*name, *need, outcome)
        }))
        .await;
        let failed = |wanted: Need| {
            outcomes
                .iter()
                .any(|(_, need, outcome)| *need == wanted && outcome.is_err())
        };
        let status = if failed(Need::Required) {
            Status::Unavailable
        } else if failed(Need::Optional) {
            Status::Degraded
        } else {
            Status::Ready
        };
        let checks = outcomes
            .into_iter()
            .map(|(name, _, outcome)| {
                let value = match outcome {
                    Ok(()) => json!("ok"),
                    Err(err) => json!({ "error": err }),
                };
                (name.to_owned(), value)
            })
            .collect();
        (status, checks)
    }

    /// `GET /healthz` and `GET /readyz`.
    pub fn router(self) -> Router {
        Router::new()
            .route(
                "/healthz",
                get(|| async { Json(json!({ "status": "ok" })) }),
            )
            .route("/readyz", get(readyz))
            .with_state(self)
    }
}

/// What `/readyz` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ready,
    /// An optional backend is down; the service still answers.
    Degraded,
    /// A required backend is down.
    Unavailable,
}

async fn readyz(State(readiness): State<Readiness>) -> (StatusCode, Json<Value>) {
    let (status, checks) = readiness.check().await;
    let (code, word) = match status {
        Status::Ready => (StatusCode::OK, "ready"),
        Status::Degraded => (StatusCode::OK, "degraded"),
        Status::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    let backends: Map<String, Value> = readiness
        .backends
        .iter()
        .map(|(name, description)| ((*name).to_owned(), json!(description)))
        .collect();
    (
        code,
        Json(json!({ "status": word, "checks": checks, "backends": backends })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{body::Body, http::Request};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get_json(router: Router, path: &str) -> (StatusCode, Value) {
        let response = router
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn readiness_is_503_and_names_the_backend_that_is_down() {
        let readiness = Readiness::new()
            .probe("database", || async { Ok(()) })
            .probe("broker", || async { Err("connection refused".to_owned()) });

        let (status, body) = get_json(readiness.router(), "/readyz").await;

        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["checks"]["database"], "ok");
        assert_eq!(body["checks"]["broker"]["error"], "connection refused");
    }

    #[tokio::test]
    async fn readiness_says_what_each_backend_is() {
        let readiness = Readiness::new()
            .probe("database", || async { Ok(()) })
            .backend("database", "SQLite at data/x.sqlite")
            .backend("cache", "in-process");

        let (status, body) = get_json(readiness.router(), "/readyz").await;

        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["backends"]["database"], "SQLite at data/x.sqlite");
        assert_eq!(body["backends"]["cache"], "in-process");
    }

    #[tokio::test]
    async fn an_optional_backend_that_is_down_degrades_readiness_without_failing_it() {
        let readiness = Readiness::new()
            .probe("database", || async { Ok(()) })
            .optional_probe("cache", || async { Err("connection refused".to_owned()) });

        let (status, body) = get_json(readiness.router(), "/readyz").await;

        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "degraded");
        assert_eq!(body["checks"]["cache"]["error"], "connection refused");
    }

    #[tokio::test]
    async fn liveness_does_not_depend_on_the_backends() {
        let readiness = Readiness::new().probe("database", || async { Err("down".to_owned()) });

        let (status, _) = get_json(readiness.router(), "/healthz").await;

        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_hangs_fails_after_the_timeout() {
        let readiness = Readiness::new().probe("broker", std::future::pending);

        let (status, checks) = readiness.check().await;

        assert_eq!(status, Status::Unavailable);
        assert!(
            checks["broker"]["error"]
                .as_str()
                .unwrap()
                .contains("no answer")
        );
    }
}
