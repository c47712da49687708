//! What a decision-API request costs inside the server, layer by layer, with no network: the
//! in-process counterpart of `loadtests/bench-rate-limiter.sh`, which measures the same thing
//! through TCP and so mostly measures the kernel and the machine. Results: `DESIGN.md` §11.
//!
//! ```text
//! cargo bench -p rate-limiter --bench http_stack
//! ```
//!
//! Each iteration sends one `POST /api/v1/check` for a client among 10,000 through the router
//! (`tower::ServiceExt::oneshot`) on a current-thread runtime and reads the whole response:
//! - `bare`: the ceiling, a bare axum handler that parses the body and answers a fixed decision
//!   (`support/ceiling.rs`, the same one the load test runs);
//! - `bare+stack`: that handler inside the shared stack every service runs
//!   (`platform::http::service`: request id, timeout, panic catcher, metrics, body limit), with
//!   logging off;
//! - `bare+stack+log`: the same with the binaries' log subscriber at `info`
//!   (`platform::telemetry::subscriber`, writing to a sink), which formats the request's span;
//! - `decision-api+log`: the real decision API, in-process store, as `cargo run` serves it.

#[path = "support/ceiling.rs"]
mod ceiling;

use std::time::{Duration, Instant};

use axum::{Router, body::Body, http::Request};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use platform::health::Readiness;
use rate_limiter::{Application, Settings};
use tower::ServiceExt;

/// The binaries' allocator, so that the layers are measured as they run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CLIENTS: u64 = 10_000;

/// The operator's key the decision API is built with, which every request sends (the ceiling
/// ignores it).
const KEY: &str = "sk_b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0";

async fn check(app: &Router, client: u64) {
    let request = Request::post("/api/v1/check")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {KEY}"))
        .body(Body::from(format!(
            r#"{{"rule":"per-user","key":"client:{client}"}}"#
        )))
        .expect("a valid request");
    let response = app.clone().oneshot(request).await.expect("infallible");
    // 429 is a decision too: over a run, clients spend their bursts, as under the load test.
    let status = response.status().as_u16();
    assert!(status == 200 || status == 429, "{status}");
    axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("an in-memory body");
}

/// Times `iterations` requests, with the log subscriber installed when `logging`.
fn run(
    runtime: &tokio::runtime::Runtime,
    app: &Router,
    logging: bool,
    iterations: u64,
) -> Duration {
    let requests = async {
        let started = Instant::now();
        for i in 0..iterations {
            // A multiplicative step spreads consecutive requests over the clients.
            check(app, i.wrapping_mul(7_919) % CLIENTS).await;
        }
        started.elapsed()
    };
    if logging {
        let subscriber = platform::telemetry::subscriber(std::io::sink, false);
        tracing::subscriber::with_default(subscriber, || runtime.block_on(requests))
    } else {
        runtime.block_on(requests)
    }
}

fn layers(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let stacked = platform::http::service(
        "bench",
        ceiling::router(),
        Readiness::new(),
        utoipa::openapi::OpenApi::default(),
    );
    let settings = Settings {
        addr: "127.0.0.1:0".parse().expect("an address"),
        redis_url: None,
        caller_key: platform::auth::ApiKey::parse(KEY),
        ..Settings::from_env().expect("default settings")
    };
    let decision_api = runtime
        .block_on(Application::build(settings))
        .expect("the application")
        .router();

    let mut group = c.benchmark_group("http_stack");
    group.throughput(Throughput::Elements(1));
    for (name, app, logging) in [
        ("bare", ceiling::router(), false),
        ("bare+stack", stacked.clone(), false),
        ("bare+stack+log", stacked, true),
        ("decision-api+log", decision_api, true),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| run(&runtime, &app, logging, iterations))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = layers
}
criterion_main!(benches);
