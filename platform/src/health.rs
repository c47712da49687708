//! `/healthz` and `/readyz`.
//!
//! Liveness (`/healthz`) answers 200 whenever the process can serve HTTP at all: an orchestrator
//! restarts a process that fails it, so it must not depend on the database (a database outage
//! would otherwise restart every instance at once, for nothing). Readiness (`/readyz`) probes each
//! backend concurrently with a short timeout and answers 503 when one is down, so a load balancer
//! stops sending traffic until it is back.

use std::{future::Future, sync::Arc, time::Duration};

use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use futures::future::{BoxFuture, join_all};
use serde_json::{Map, Value, json};

use crate::{cache::Cache, db::Database};

type Probe = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The backends `/readyz` probes.
#[derive(Clone, Default)]
pub struct Readiness {
    probes: Vec<(&'static str, Probe)>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn database(self, db: Database) -> Self {
        self.probe("database", move || {
            let db = db.clone();
            async move { db.ping().await.map_err(|e| e.to_string()) }
        })
    }

    pub fn cache(self, cache: Arc<dyn Cache>) -> Self {
        self.probe("cache", move || {
            let cache = cache.clone();
            async move { cache.ping().await.map_err(|e| e.to_string()) }
        })
    }

    /// Any other dependency: a broker, an upstream.
    pub fn probe<F, Fut>(mut self, name: &'static str, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let probe: Probe = Arc::new(move || Box::pin(probe()));
        self.probes.push((name, probe));
        self
    }

    /// Probes every backend; `true` when all answered.
    pub async fn check(&self) -> (bool, Map<String, Value>) {
        let outcomes = join_all(self.probes.iter().map(|(name, probe)| async move {
            let outcome = match tokio::time::timeout(PROBE_TIMEOUT, probe()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
            };
            (*name, outcome)
        }))
        .await;
        let ready = outcomes.iter().all(|(_, outcome)| outcome.is_ok());
        let checks = outcomes
            .into_iter()
            .map(|(name, outcome)| {
                let value = match outcome {
                    Ok(()) => json!("ok"),
                    Err(err) => json!({ "error": err }),
                };
                (name.to_owned(), value)
            })
            .collect();
        (ready, checks)
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

async fn readyz(State(readiness): State<Readiness>) -> (StatusCode, Json<Value>) {
    let (ready, checks) = readiness.check().await;
    let (status, word) = if ready {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (status, Json(json!({ "status": word, "checks": checks })))
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
            .probe("cache", || async { Err("connection refused".to_owned()) });

        let (status, body) = get_json(readiness.router(), "/readyz").await;

        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["checks"]["database"], "ok");
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

        let (ready, checks) = readiness.check().await;

        assert!(!ready);
        assert!(
            checks["broker"]["error"]
                .as_str()
                .unwrap()
                .contains("no answer")
        );
    }
}
