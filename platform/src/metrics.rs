//! Prometheus metrics: one process-wide recorder, rendered at `/metrics` by every service.
//!
//! The `metrics` facade is global, so the lab (every system in one process) has one registry;
//! HTTP metrics carry a `service` label and system metrics a system prefix
//! (`shortener_cache_lookups_total`), so each series still says where it came from.
//!
//! Latencies are histograms with fixed buckets, not summaries: buckets aggregate across instances
//! (`histogram_quantile` over `sum by (le)`), quantiles computed in each process do not.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock, RwLock},
    time::Duration,
};

use axum::{
    Router,
    http::{Method, StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Seconds; fine-grained below 10 ms, where a cached redirect lives.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder if it is not yet installed. Call it before taking any
/// metric handle to keep: a handle taken before a recorder exists records nothing, ever.
/// [`crate::http::service`] calls it, so every service has it installed before its first request.
pub fn install() {
    handle();
}

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

/// `http_requests_total` and `http_request_duration_seconds` for one service, with the handles
/// of each series kept once made.
///
/// Going through the `counter!`/`histogram!` macros on every request means building a label set
/// (four strings) and hashing it into the global registry, twice, which showed in the cost of a
/// cached redirect (`url-shortener/DESIGN.md` §8). The handles are cheap to keep, so a request
/// costs a read-locked lookup and two atomic updates instead.
///
/// Every label is drawn from a fixed set, so that no client can make series (or handles) without
/// end: a series is never dropped once made, so one label taken from the request as sent (a made-up
/// method, a raw path) is a memory leak a client controls. The route is a template of the router
/// (`/{code}`) or `unmatched`; the method is one of the nine of RFC 9110 and PATCH, or `other`
/// ([`method_label`]); the status is one the service answered. A service has a few dozen of these
/// combinations.
#[derive(Clone)]
pub struct HttpMetrics {
    service: &'static str,
    series: Arc<RwLock<SeriesByRoute>>,
}

/// Route template → (method label, status) → handles.
type SeriesByRoute = HashMap<String, HashMap<(&'static str, u16), Series>>;

struct Series {
    requests: Counter,
    duration: Histogram,
}

/// The `method` label of a request: the method's name if it is a standard one, `other` for any
/// other token a client sends (HTTP lets a client send any token as a method).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

impl HttpMetrics {
    pub fn new(service: &'static str) -> Self {
        install();
        Self {
            service,
            series: Arc::default(),
        }
    }

    pub fn service(&self) -> &'static str {
        self.service
    }

    /// Records one request on a route template (`/{code}`, never the raw path: the caller passes
    /// what the router matched, or one fixed name for a request it did not match).
    pub fn record(&self, route: &str, method: &Method, status: StatusCode, elapsed: Duration) {
        let key = (method_label(method), status.as_u16());
        if let Some(series) = self
            .series
            .read()
            .unwrap()
            .get(route)
            .and_then(|by_method| by_method.get(&key))
        {
            series.requests.increment(1);
            series.duration.record(elapsed.as_secs_f64());
            return;
        }
        let (method, status) = key;
        let series = Series {
            requests: metrics::counter!(
                "http_requests_total",
                "service" => self.service,
                "method" => method,
                "route" => route.to_owned(),
                "status" => status.to_string()
            ),
            duration: metrics::histogram!(
                "http_request_duration_seconds",
                "service" => self.service,
                "method" => method,
                "route" => route.to_owned()
            ),
        };
        series.requests.increment(1);
        series.duration.record(elapsed.as_secs_f64());
        self.series
            .write()
            .unwrap()
            .entry(route.to_owned())
            .or_default()
            .insert(key, series);
    }

    /// How many (route, method, status) handles are kept: bounded by the router's templates, ten
    /// method labels and the statuses the service answers.
    pub fn series_kept(&self) -> usize {
        self.series.read().unwrap().values().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standard_method_is_its_own_label_and_any_other_is_other() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        assert_eq!(method_label(&Method::from_bytes(b"get").unwrap()), "other");
        assert_eq!(
            method_label(&Method::from_bytes(b"PROPFIND").unwrap()),
            "other"
        );
    }
}
