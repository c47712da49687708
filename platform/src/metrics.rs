//! Prometheus metrics: one process-wide recorder, rendered at `/metrics` by every service.
//!
//! The `metrics` facade is global, so the lab (every system in one process) has one registry;
//! HTTP metrics carry a `service` label and system metrics a system prefix
//! (`shortener_cache_lookups_total`), so each series still says where it came from.
//!
//! Latencies are histograms with fixed buckets, not summaries: buckets aggregate across instances
//! (`histogram_quantile` over `sum by (le)`), quantiles computed in each process do not.

use std::{sync::OnceLock, time::Duration};

use axum::{Router, http::header, response::IntoResponse, routing::get};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Seconds; fine-grained below 10 ms, where a cached redirect lives.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The recorder's handle, installing the recorder on first use.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .expect("the bucket list is not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (a test harness, an embedding application);
        // then metrics go there and this handle renders an empty page rather than failing.
        if metrics::set_global_recorder(recorder).is_ok() {
            let upkeep = handle.clone();
            // Histograms are drained into their buckets by upkeep; without it memory grows.
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .expect("spawning the metrics upkeep thread");
        }
        handle
    })
}

/// `GET /metrics` in the Prometheus text format.
pub fn router() -> Router {
    Router::new().route("/metrics", get(render))
}

async fn render() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle().render(),
    )
}
