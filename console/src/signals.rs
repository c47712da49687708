//! From a target's `/metrics` text to the numbers the console shows.
//!
//! A [`Reading`] is what one scrape holds for one system: its counters, gauges and the API's
//! latency histogram, cumulative since the process started. Two readings make a [`Delta`]: what
//! happened in between. Deltas of a system's replicas add up, and a delta becomes a [`Point`]:
//! rates per second, error rates and latency percentiles, the way Prometheus's `rate()` and
//! `histogram_quantile()` compute them.
//!
//! In the lab the five systems share one process and one metrics registry, so every target's
//! page holds every system's series. A series belongs to a system by its `service` or `system`
//! label, or, without either, by the system's metric prefix ([`prefixes`]).
//!
//! The text format is read by `prom_text_format_parser`. `prometheus-parse`, the better-known
//! crate, drops every sample whose label value holds a `{`, which is every route template
//! (`route="/{code}"`): the test `a_route_template_in_a_label_is_read` holds that line.

use std::collections::BTreeMap;

use prom_text_format_parser::{Label, Scrape, Type, ValueType};
use serde::Serialize;

/// The shared endpoints every service has, and its fault switches (`/admin/faults`); the
/// console's own reads of them are not the API's traffic, so they are left out of throughput
/// and latency.
const SHARED_ROUTES: [&str; 6] = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/admin/faults",
];

const REQUESTS: &str = "http_requests_total";
const DURATION: &str = "http_request_duration_seconds";

/// The metric prefixes of each system of the workspace. A system the console does not know
/// (named in `CONSOLE_TARGETS`) keeps every series without a `service` or `system` label.
pub fn prefixes(system: &str) -> Option<&'static [&'static str]> {
    Some(match system {
        "url-shortener" => &["shortener_"],
        "rate-limiter" => &["ratelimit_"],
        "idempotency-demo" => &["payments_"],
        "notifier" => &["notifier_"],
        "feed-service" => &["feed_"],
        _ => return None,
    })
}

/// One scrape of one target, for one system.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    /// Counters by series, `name{label="value",…}` with the labels sorted and `service` left out.
    pub counters: BTreeMap<String, f64>,
    pub gauges: BTreeMap<String, f64>,
    /// The API's request durations: cumulative count per upper bound in seconds, summed over
    /// every route but the shared ones, in increasing order (the last is `+Inf`).
    pub latency: Vec<(f64, f64)>,
}

impl Reading {
    /// Reads the Prometheus text format, keeping what belongs to `system`.
    pub fn parse(text: &str, system: &str) -> Result<Self, String> {
        let scrape = Scrape::parse(text).map_err(|err| format!("{err:?}"))?;
        let mut reading = Reading::default();
        let mut latency: BTreeMap<OrderedBound, f64> = BTreeMap::new();
        for metric in &scrape.metrics {
            for sample in metric.samples.iter() {
                let label = |name: &str| {
                    sample
                        .labels
                        .iter()
                        .find(|label| label.key == name)
                        .map(|label| label.value.as_str())
                };
                if !belongs(&metric.name, label("service").or(label("system")), system) {
                    continue;
                }
                // `as_f64` would panic on a value Rust does not parse; a target's page is input.
                let Ok(value) = sample.value.value.parse::<f64>() else {
                    continue;
                };
                let shared_route = label("route").is_some_and(|route| {
                    SHARED_ROUTES.iter().any(|shared| route.starts_with(shared))
                });
                let plain = sample.value.value_type == ValueType::Sample;
                match metric.kind {
                    Type::Counter | Type::Untyped
                        if metric.name.ends_with("_total")
                            && !(metric.name == REQUESTS && shared_route) =>
                    {
                        *reading
                            .counters
                            .entry(series(&metric.name, &sample.labels))
                            .or_default() += value;
                    }
                    Type::Gauge => {
                        reading
                            .gauges
                            .insert(series(&metric.name, &sample.labels), value);
                    }
                    Type::Histogram if metric.name == DURATION && plain && !shared_route => {
                        if let Some(bound) = label("le").and_then(|le| le.parse::<f64>().ok()) {
                            *latency.entry(OrderedBound(bound)).or_default() += value;
                        }
                    }
                    _ => {}
                }
            }
        }
        reading.latency = latency
            .into_iter()
            .map(|(bound, count)| (bound.0, count))
            .collect();
        Ok(reading)
    }
}

fn belongs(metric: &str, owner: Option<&str>, system: &str) -> bool {
    match owner {
        Some(owner) => owner == system,
        None => prefixes(system)
            .is_none_or(|prefixes| prefixes.iter().any(|prefix| metric.starts_with(prefix))),
    }
}

/// `name{a="1",b="2"}`: the labels sorted, without `service`, `system` and `method` (a reading
/// is of one system already, and the method adds nothing a route does not say).
fn series(metric: &str, labels: &[Label]) -> String {
    let mut kept: Vec<&Label> = labels
        .iter()
        .filter(|label| !matches!(label.key.as_str(), "service" | "system" | "method"))
        .collect();
    if kept.is_empty() {
        return metric.to_owned();
    }
    kept.sort_by(|a, b| (&a.key, &a.value).cmp(&(&b.key, &b.value)));
    let kept: Vec<String> = kept
        .into_iter()
        .map(|label| format!("{}=\"{}\"", label.key, label.value))
        .collect();
    format!("{metric}{{{}}}", kept.join(","))
}

/// A bucket bound as a map key (`+Inf` included; NaN never comes from a parsed bound).
#[derive(Debug, Clone, Copy, PartialEq)]
struct OrderedBound(f64);

impl Eq for OrderedBound {}

impl PartialOrd for OrderedBound {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedBound {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// What happened between two readings: each counter's increase, the gauges' last values, and
/// each latency bucket's increase.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delta {
    pub seconds: f64,
    pub counters: BTreeMap<String, f64>,
    pub gauges: BTreeMap<String, f64>,
    pub latency: Vec<(f64, f64)>,
}

impl Delta {
    /// From `before` to `after`, `seconds` apart. A counter that went down was reset (the
    /// process restarted), so its whole value is the increase, as Prometheus counts it.
    pub fn between(before: &Reading, after: &Reading, seconds: f64) -> Self {
        let increase = |now: f64, then: Option<f64>| match then {
            Some(then) if now >= then => now - then,
            _ => now,
        };
        let counters = after
            .counters
            .iter()
            .map(|(series, now)| {
                let then = before.counters.get(series).copied();
                (series.clone(), increase(*now, then))
            })
            .collect();
        let latency = after
            .latency
            .iter()
            .map(|(bound, now)| {
                let then = before
                    .latency
                    .iter()
                    .find(|(other, _)| other == bound)
                    .map(|(_, count)| *count);
                (*bound, increase(*now, then))
            })
            .collect();
        Self {
            seconds,
            counters,
            gauges: after.gauges.clone(),
            latency,
        }
    }

    /// Adds a replica's delta over the same interval to this one.
    pub fn add(&mut self, other: &Delta) {
        self.seconds = self.seconds.max(other.seconds);
        for (series, increase) in &other.counters {
            *self.counters.entry(series.clone()).or_default() += increase;
        }
        for (series, value) in &other.gauges {
            *self.gauges.entry(series.clone()).or_default() += value;
        }
        for (bound, increase) in &other.latency {
            match self.latency.iter_mut().find(|(other, _)| other == bound) {
                Some((_, count)) => *count += increase,
                None => self.latency.push((*bound, *increase)),
            }
        }
        self.latency.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
}

/// One moment of a system or a replica, as the pages chart it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// Unix time in milliseconds.
    pub at: i64,
    /// Whether `/metrics` answered; the rest is empty when it did not.
    pub up: bool,
    /// API requests per second (the shared endpoints left out).
    pub requests_per_s: f64,
    /// Of those, the ones answered 4xx, and 5xx.
    pub client_errors_per_s: f64,
    pub server_errors_per_s: f64,
    /// Latency percentiles of the API's requests in the interval, in milliseconds; `None` when
    /// there were none.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Every counter's rate per second, by series.
    pub rates: BTreeMap<String, f64>,
    pub gauges: BTreeMap<String, f64>,
}

impl Point {
    pub fn new(at: i64, delta: &Delta) -> Self {
        let per_second = |increase: f64| {
            if delta.seconds > 0.0 {
                increase / delta.seconds
            } else {
                0.0
            }
        };
        let rates: BTreeMap<String, f64> = delta
            .counters
            .iter()
            .map(|(series, increase)| (series.clone(), per_second(*increase)))
            .collect();
        let requests = |class: Option<char>| -> f64 {
            rates
                .iter()
                .filter(|(series, _)| series.starts_with(REQUESTS))
                .filter(|(series, _)| {
                    class.is_none_or(|class| series.contains(&format!("status=\"{class}")))
                })
                .fold(0.0, |sum, (_, rate)| sum + rate)
        };
        Self {
            at,
            up: true,
            requests_per_s: requests(None),
            client_errors_per_s: requests(Some('4')),
            server_errors_per_s: requests(Some('5')),
            p50_ms: quantile(0.5, &delta.latency).map(|seconds| seconds * 1000.0),
            p99_ms: quantile(0.99, &delta.latency).map(|seconds| seconds * 1000.0),
            gauges: delta.gauges.clone(),
            rates,
        }
    }

    /// A moment when the target did not answer.
    pub fn down(at: i64) -> Self {
        Self {
            at,
            up: false,
            requests_per_s: 0.0,
            client_errors_per_s: 0.0,
            server_errors_per_s: 0.0,
            p50_ms: None,
            p99_ms: None,
            rates: BTreeMap::new(),
            gauges: BTreeMap::new(),
        }
    }

    /// The sum of the rates of `metric`'s series whose labels include every one of `labels`.
    pub fn rate(&self, metric: &str, labels: &[&str]) -> f64 {
        self.rates
            .iter()
            .filter(|(series, _)| {
                series
                    .strip_prefix(metric)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('{'))
            })
            .filter(|(series, _)| labels.iter().all(|label| series.contains(label)))
            .fold(0.0, |sum, (_, rate)| sum + rate)
    }
}

/// The `q` quantile of a histogram's bucket increases, interpolated linearly within the bucket
/// it falls in, as Prometheus's `histogram_quantile` does: `None` for an empty histogram; the
/// highest finite bound when it falls in `+Inf`.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower.0);
            }
            let within = count - lower.1;
            let fraction = if within > 0.0 {
                (rank - lower.1) / within
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * fraction);
        }
        lower = (bound, count);
    }
    Some(lower.0)
}

/// The `q` quantile of `sorted` samples, interpolated between the two nearest ranks (what
/// numpy's default does): `None` for no samples.
pub fn quantile_of(q: f64, sorted: &[f64]) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = q * last as f64;
    let below = rank.floor() as usize;
    let above = rank.ceil() as usize;
    Some(sorted[below] + (sorted[above] - sorted[below]) * (rank - below as f64))
}

/// A system's one number on the overview, beside its throughput and latency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Headline {
    pub label: &'static str,
    /// `None` when there is nothing to compute it from yet (no cache lookup, say).
    pub value: Option<f64>,
    pub unit: &'static str,
}

/// The headline of each system of the workspace; `None` for a system the console does not know.
pub fn headline(system: &str, point: &Point) -> Option<Headline> {
    let per_second = |label, value| Headline {
        label,
        value: Some(value),
        unit: "/s",
    };
    Some(match system {
        "url-shortener" => {
            let lookups = |result: &str| {
                point.rate(
                    "shortener_cache_lookups_total",
                    &[&format!("result=\"{result}\"")],
                )
            };
            // Every lookup, errors too: with Redis down every lookup is an error, and the
            // ratio must fall to 0 rather than vanish.
            let hits = lookups("hit");
            let all = point.rate("shortener_cache_lookups_total", &[]);
            Headline {
                label: "cache hit ratio",
                value: (all > 0.0).then(|| 100.0 * hits / all),
                unit: "%",
            }
        }
        // Denied for any reason: over the limit, or a fail-closed rule without its store.
        "rate-limiter" => per_second(
            "denied",
            ["rejected", "rejected_locally", "failed_closed"]
                .iter()
                .map(|outcome| {
                    point.rate(
                        "ratelimit_decisions_total",
                        &[&format!("outcome=\"{outcome}\"")],
                    )
                })
                .sum(),
        ),
        "idempotency-demo" => per_second("payments", point.rate("payments_total", &[])),
        "notifier" => per_second(
            "delivered",
            point.rate("notifier_attempts_total", &[r#"outcome="delivered""#]),
        ),
        "feed-service" => per_second("posts", point.rate("feed_posts_published_total", &[])),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = r#"
# TYPE shortener_cache_lookups_total counter
shortener_cache_lookups_total{result="hit"} 90
shortener_cache_lookups_total{result="miss"} 10
# TYPE feed_posts_published_total counter
feed_posts_published_total 7
# TYPE http_requests_total counter
http_requests_total{service="url-shortener",method="GET",route="/{code}",status="302"} 100
http_requests_total{service="url-shortener",method="GET",route="/{code}",status="404"} 5
http_requests_total{service="url-shortener",method="GET",route="/metrics",status="200"} 40
http_requests_total{service="url-shortener",method="PUT",route="/admin/faults/{name}",status="200"} 2
http_requests_total{service="feed-service",method="GET",route="/v1/posts/{id}",status="200"} 3
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{service="url-shortener",method="GET",route="/{code}",le="0.001"} 50
http_request_duration_seconds_bucket{service="url-shortener",method="GET",route="/{code}",le="0.01"} 100
http_request_duration_seconds_bucket{service="url-shortener",method="GET",route="/{code}",le="+Inf"} 105
http_request_duration_seconds_sum{service="url-shortener",method="GET",route="/{code}"} 0.3
http_request_duration_seconds_count{service="url-shortener",method="GET",route="/{code}"} 105
http_request_duration_seconds_bucket{service="url-shortener",method="GET",route="/metrics",le="0.001"} 40
http_request_duration_seconds_bucket{service="url-shortener",method="GET",route="/metrics",le="0.01"} 40
http_request_duration_seconds_bucket{service="url-shortener",method="GET",route="/metrics",le="+Inf"} 40
http_request_duration_seconds_sum{service="url-shortener",method="GET",route="/metrics"} 0.01
http_request_duration_seconds_count{service="url-shortener",method="GET",route="/metrics"} 40
"#;

    #[test]
    fn a_reading_keeps_the_systems_own_series_and_leaves_the_shared_endpoints_out() {
        let reading = Reading::parse(SCRAPE, "url-shortener").unwrap();
        let names: Vec<&str> = reading.counters.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                r#"http_requests_total{route="/{code}",status="302"}"#,
                r#"http_requests_total{route="/{code}",status="404"}"#,
                r#"shortener_cache_lookups_total{result="hit"}"#,
                r#"shortener_cache_lookups_total{result="miss"}"#,
            ]
        );
        assert_eq!(
            reading.latency,
            [(0.001, 50.0), (0.01, 100.0), (f64::INFINITY, 105.0)]
        );

        let feed = Reading::parse(SCRAPE, "feed-service").unwrap();
        assert_eq!(feed.counters.len(), 2, "{:?}", feed.counters);
    }

    #[test]
    fn a_gauge_belongs_to_the_system_its_label_names_and_keeps_its_other_labels() {
        let text = "# TYPE fault_unreachable gauge\n\
            fault_unreachable{system=\"rate-limiter\",dependency=\"redis\"} 1\n\
            fault_unreachable{system=\"url-shortener\",dependency=\"redis\"} 0\n";
        let limiter = Reading::parse(text, "rate-limiter").unwrap();
        assert_eq!(
            limiter.gauges.into_iter().collect::<Vec<_>>(),
            [(r#"fault_unreachable{dependency="redis"}"#.to_owned(), 1.0)]
        );
    }

    #[test]
    fn a_delta_is_the_increase_and_a_reset_counter_starts_over() {
        let before = Reading::parse(SCRAPE, "url-shortener").unwrap();
        let mut after = before.clone();
        *after
            .counters
            .get_mut(r#"shortener_cache_lookups_total{result="hit"}"#)
            .unwrap() += 20.0;
        *after
            .counters
            .get_mut(r#"shortener_cache_lookups_total{result="miss"}"#)
            .unwrap() = 3.0;
        let point = Point::new(0, &Delta::between(&before, &after, 2.0));
        assert_eq!(
            point.rate("shortener_cache_lookups_total", &[r#"result="hit""#]),
            10.0
        );
        assert_eq!(
            point.rate("shortener_cache_lookups_total", &[r#"result="miss""#]),
            1.5
        );
        assert_eq!(point.requests_per_s, 0.0);
        assert_eq!(point.p99_ms, None, "no request in the interval");
    }

    #[test]
    fn replicas_add_up_and_their_latency_merges() {
        let empty = Reading::default();
        let reading = Reading::parse(SCRAPE, "url-shortener").unwrap();
        let one = Delta::between(&empty, &reading, 1.0);
        let mut both = one.clone();
        both.add(&one);
        let point = Point::new(0, &both);
        assert_eq!(point.requests_per_s, 210.0);
        assert_eq!(point.client_errors_per_s, 10.0);
        assert_eq!(point.server_errors_per_s, 0.0);
        // 100 of 210 under 1 ms; the median is just past it, in the next bucket.
        let p50 = point.p50_ms.unwrap();
        assert!((1.0..2.0).contains(&p50), "{p50}");
    }

    #[test]
    fn quantiles_interpolate_within_their_bucket() {
        let buckets = [(0.1, 10.0), (0.2, 30.0), (f64::INFINITY, 40.0)];
        assert_eq!(quantile(0.25, &buckets), Some(0.1));
        let median = quantile(0.5, &buckets).unwrap();
        assert!((median - 0.15).abs() < 1e-12, "{median}");
        assert_eq!(
            quantile(0.99, &buckets),
            Some(0.2),
            "the +Inf bucket answers its lower bound"
        );
        assert_eq!(quantile(0.5, &[(0.1, 0.0), (f64::INFINITY, 0.0)]), None);
        assert_eq!(quantile(0.5, &[]), None);
    }

    #[test]
    fn the_shorteners_headline_is_its_cache_hit_ratio() {
        let reading = Reading::parse(SCRAPE, "url-shortener").unwrap();
        let point = Point::new(0, &Delta::between(&Reading::default(), &reading, 1.0));
        let shown = headline("url-shortener", &point).unwrap();
        assert_eq!((shown.label, shown.value), ("cache hit ratio", Some(90.0)));
        assert!(headline("nobody-knows", &point).is_none());

        let redis_down = "# TYPE shortener_cache_lookups_total counter\n\
            shortener_cache_lookups_total{result=\"error\"} 40\n";
        let reading = Reading::parse(redis_down, "url-shortener").unwrap();
        let point = Point::new(0, &Delta::between(&Reading::default(), &reading, 1.0));
        let shown = headline("url-shortener", &point).unwrap();
        assert_eq!(shown.value, Some(0.0), "every lookup failed: no hit");
    }

    #[test]
    fn the_limiters_headline_counts_every_denial() {
        let text = "# TYPE ratelimit_decisions_total counter\n\
            ratelimit_decisions_total{rule=\"login\",outcome=\"rejected\"} 3\n\
            ratelimit_decisions_total{rule=\"login\",outcome=\"failed_closed\"} 4\n\
            ratelimit_decisions_total{rule=\"per-user\",outcome=\"failed_open\"} 5\n\
            ratelimit_decisions_total{rule=\"per-user\",outcome=\"allowed\"} 6\n";
        let reading = Reading::parse(text, "rate-limiter").unwrap();
        let point = Point::new(0, &Delta::between(&Reading::default(), &reading, 1.0));
        let shown = headline("rate-limiter", &point).unwrap();
        assert_eq!((shown.label, shown.value), ("denied", Some(7.0)));
    }

    #[test]
    fn a_route_template_in_a_label_is_read() {
        let text = "# TYPE http_requests_total counter\n\
            http_requests_total{service=\"a\",route=\"/{code}\",status=\"302\"} 7\n";
        let reading = Reading::parse(text, "a").unwrap();
        assert_eq!(
            reading
                .counters
                .get(r#"http_requests_total{route="/{code}",status="302"}"#),
            Some(&7.0)
        );
    }
}
