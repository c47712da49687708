//! The console against targets it scrapes over real sockets: a stand-in system that serves
//! `/metrics` and `/readyz` as every sdlab system does, and an address where nothing listens.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    body::Body,
    extract::State,
    http::{Method, Request, StatusCode},
    routing::get,
};
use console::{
    Application, Settings,
    settings::{LoadEnv, Switches, Targets},
};
use platform::auth::{AdminToken, require_admin};
use platform::fault::{FaultSwitch, FaultSwitches};
use platform::testing::http::{TestResponse, send_to};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// A system whose redirect counter goes up by 10 between scrapes, 2 of them 404s.
async fn stand_in() -> SocketAddr {
    let scrapes = Arc::new(AtomicU64::new(0));
    let metrics = |State(scrapes): State<Arc<AtomicU64>>| async move {
        let n = scrapes.fetch_add(1, Ordering::SeqCst);
        format!(
            "# TYPE http_requests_total counter\n\
             http_requests_total{{service=\"url-shortener\",method=\"GET\",route=\"/{{code}}\",status=\"302\"}} {ok}\n\
             http_requests_total{{service=\"url-shortener\",method=\"GET\",route=\"/{{code}}\",status=\"404\"}} {missing}\n\
             # TYPE shortener_cache_lookups_total counter\n\
             shortener_cache_lookups_total{{result=\"hit\"}} {ok}\n\
             shortener_cache_lookups_total{{result=\"miss\"}} {missing}\n",
            ok = n * 8,
            missing = n * 2,
        )
    };
    let readyz = || async { Json(json!({"status": "ready", "checks": {"database": "ok"}})) };
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .with_state(scrapes);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// An address nothing listens on: bound, then let go.
async fn nowhere() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn console(targets: &str) -> Application {
    console_with(targets, "", None).await
}

async fn console_with(targets: &str, switches: &str, admin: Option<AdminToken>) -> Application {
    Application::build(Settings {
        switches: Switches::parse(switches).unwrap(),
        admin_token: admin,
        ..settings(targets)
    })
    .await
    .unwrap()
}

fn settings(targets: &str) -> Settings {
    Settings {
        addr: "127.0.0.1:0".parse().unwrap(),
        targets: Targets::parse(targets).unwrap(),
        switches: Switches::default(),
        admin_token: None,
        load_env: LoadEnv::default(),
        toxiproxy: None,
        walkthrough_program: None,
        // The tests scrape when they choose; a long interval gives each read the longest timeout
        // (2 s), so a slow, loaded machine does not make a target look down.
        scrape_every: Duration::from_secs(10),
        window: Duration::from_secs(600),
    }
}

async fn fetch(app: &Application, path: &str) -> TestResponse {
    let request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    send_to(&app.router(), request).await
}

#[tokio::test]
async fn the_overview_shows_each_systems_rates_health_and_headline() {
    let target = stand_in().await;
    let app = console(&format!(
        "url-shortener=http://{target};feed-service=http://{}",
        nowhere().await
    ))
    .await;
    app.scraper().scrape_all().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.scraper().scrape_all().await;

    let response = fetch(&app, "/api/overview").await;
    assert_eq!(response.status, StatusCode::OK);
    let overview = response.json();
    let shortener = &overview["systems"][0];
    assert_eq!(shortener["name"], "url-shortener");
    assert_eq!(shortener["instances"][0]["up"], true);
    assert_eq!(shortener["instances"][0]["ready"], true);
    assert_eq!(shortener["instances"][0]["checks"]["database"], "ok");
    let latest = &shortener["latest"];
    let per_second = latest["requests_per_s"].as_f64().unwrap();
    let client_errors = latest["client_errors_per_s"].as_f64().unwrap();
    // 10 requests, 2 of them 404s, in the time between the two scrapes.
    assert!(per_second > 0.0, "{latest}");
    assert!((client_errors / per_second - 0.2).abs() < 1e-9, "{latest}");
    assert_eq!(shortener["headline"]["label"], "cache hit ratio");
    assert_eq!(shortener["headline"]["value"], 80.0);

    let feed = &overview["systems"][1];
    assert_eq!(feed["instances"][0]["up"], false);
    assert!(
        feed["instances"][0]["error"]
            .as_str()
            .unwrap()
            .contains("could not connect"),
        "{feed}"
    );
    assert_eq!(feed["latest"]["up"], false);
}

#[tokio::test]
async fn a_page_gets_the_history_then_only_what_is_newer() {
    let target = stand_in().await;
    let app = console(&format!("url-shortener=http://{target},http://{target}")).await;
    for _ in 0..3 {
        app.scraper().scrape_all().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let all = fetch(&app, "/api/systems/url-shortener/points")
        .await
        .json();
    let points = all["system"].as_array().unwrap();
    assert_eq!(points.len(), 2, "three scrapes make two points");
    assert_eq!(
        all["instances"].as_array().unwrap().len(),
        2,
        "one per replica"
    );
    let first = points[0]["at"].as_i64().unwrap();
    let newer = fetch(
        &app,
        &format!("/api/systems/url-shortener/points?since={first}"),
    )
    .await
    .json();
    assert_eq!(newer["system"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_bad_question_gets_a_problem_naming_it() {
    let app = console(&format!("url-shortener=http://{}", nowhere().await)).await;

    fetch(&app, "/api/systems/url-shortener/points?since=yesterday")
        .await
        .problem(StatusCode::BAD_REQUEST);
    let unknown = fetch(&app, "/api/systems/nope/points").await;
    let body: Value = unknown.problem(StatusCode::NOT_FOUND);
    assert!(body["detail"].as_str().unwrap().contains("nope"), "{body}");
}

#[tokio::test]
async fn the_overview_page_lists_every_system_before_any_script_runs() {
    let app = console(&format!(
        "url-shortener=http://{};feed-service=http://{}",
        nowhere().await,
        nowhere().await
    ))
    .await;

    let page = fetch(&app, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.header("content-type").starts_with("text/html"));
    let html = String::from_utf8(page.body.to_vec()).unwrap();
    assert!(html.contains(r#"data-system="url-shortener""#), "{html}");
    assert!(html.contains(r#"data-system="feed-service""#));
    let chart_library = fetch(&app, "/assets/vendor/uplot/uPlot.iife.min.js").await;
    assert_eq!(chart_library.status, StatusCode::OK);
    assert!(chart_library.body.len() > 40_000);
    fetch(&app, "/assets/nothing.js")
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_system_page_holds_its_charts_and_its_design_doc() {
    let app = console(&format!(
        "url-shortener=http://{};someone-elses=http://{}",
        nowhere().await,
        nowhere().await
    ))
    .await;

    let page = fetch(&app, "/systems/url-shortener").await;
    assert_eq!(page.status, StatusCode::OK);
    let html = String::from_utf8(page.body.to_vec()).unwrap();
    assert!(html.contains(r#"data-system="url-shortener""#));
    assert!(html.contains("Read url-shortener's DESIGN.md"));
    assert!(html.contains("<h1>URL shortener"), "the doc is rendered");

    let other = fetch(&app, "/systems/someone-elses").await;
    assert_eq!(
        other.status,
        StatusCode::OK,
        "a system without a doc still has its charts"
    );
    let html = String::from_utf8(other.body.to_vec()).unwrap();
    assert!(!html.contains("DESIGN.md"));

    fetch(&app, "/systems/nope")
        .await
        .problem(StatusCode::NOT_FOUND);
}

async fn send(app: &Application, system: &str, body: Value) -> TestResponse {
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("/api/systems/{system}/send"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    send_to(&app.router(), request).await
}

#[tokio::test]
async fn a_page_sends_a_request_to_the_system_and_sees_both_sides_raw() {
    let target = stand_in().await;
    let app = console(&format!("url-shortener=http://{target}")).await;

    let exchange = send(
        &app,
        "url-shortener",
        json!({"method": "GET", "path": "/readyz", "headers": [["x-request-id", "abc"]]}),
    )
    .await;
    assert_eq!(exchange.status, StatusCode::OK);
    let exchange = exchange.json();
    assert_eq!(exchange["request"]["line"], "GET /readyz HTTP/1.1");
    assert_eq!(
        exchange["request"]["headers"][1],
        json!(["x-request-id", "abc"])
    );
    assert_eq!(exchange["response"]["line"], "HTTP/1.1 200 OK");
    let body: Value = serde_json::from_str(exchange["response"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn a_page_cannot_send_anywhere_but_to_the_system() {
    let target = stand_in().await;
    let app = console(&format!("url-shortener=http://{target}")).await;

    for (body, field) in [
        (
            json!({"method": "GET", "path": "//elsewhere.example/x"}),
            "path",
        ),
        (
            json!({"method": "GET", "path": "http://elsewhere.example/x"}),
            "path",
        ),
        (json!({"method": "TRACE", "path": "/"}), "method"),
    ] {
        send(&app, "url-shortener", body).await.invalid_field(field);
    }
    send(&app, "nope", json!({"method": "GET", "path": "/"}))
        .await
        .problem(StatusCode::NOT_FOUND);
}

/// A fault switch like the simulators': `GET`/`PUT /v1/faults` behind the admin token.
async fn switch(admin: AdminToken) -> SocketAddr {
    let settings = Arc::new(std::sync::Mutex::new(
        json!({"error_rate": 0.0, "latency_ms": 0}),
    ));
    let app =
        Router::new()
            .route(
                "/v1/faults",
                get(
                    |State(settings): State<Arc<std::sync::Mutex<Value>>>| async move {
                        Json(settings.lock().unwrap().clone())
                    },
                )
                .put(
                    |State(settings): State<Arc<std::sync::Mutex<Value>>>,
                     Json(new): Json<Value>| async move {
                        *settings.lock().unwrap() = new.clone();
                        Json(new)
                    },
                )
                .route_layer(axum::middleware::from_fn_with_state(
                    Some(admin),
                    require_admin,
                )),
            )
            .with_state(settings);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn as_admin(
    app: &Application,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> TestResponse {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    };
    send_to(&app.router(), request.unwrap()).await
}

#[tokio::test]
async fn a_switch_is_read_and_set_through_the_console_with_the_admin_token() {
    let token = AdminToken::generate();
    let faults = switch(token.clone()).await;
    let app = console_with(
        &format!("idempotency-demo=http://{}", nowhere().await),
        &format!("idempotency-demo/provider=http://{faults}/v1/faults"),
        Some(token.clone()),
    )
    .await;
    let list = "/api/systems/idempotency-demo/switches";
    let provider = "/api/systems/idempotency-demo/switches/provider";

    let listed = as_admin(&app, Method::GET, list, Some(token.expose()), None).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.json()[0]["settings"]["error_rate"], 0.0);

    let set = as_admin(
        &app,
        Method::PUT,
        provider,
        Some(token.expose()),
        Some(json!({"error_rate": 1.0, "latency_ms": 0})),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK);
    let listed = as_admin(&app, Method::GET, list, Some(token.expose()), None).await;
    assert_eq!(
        listed.json()[0]["settings"]["error_rate"],
        1.0,
        "the switch itself changed"
    );

    as_admin(
        &app,
        Method::PUT,
        "/api/systems/idempotency-demo/switches/nope",
        Some(token.expose()),
        Some(json!({})),
    )
    .await
    .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_switches_stay_shut_without_the_admin_token() {
    let token = AdminToken::generate();
    let faults = switch(token.clone()).await;
    let switches = format!("idempotency-demo/provider=http://{faults}/v1/faults");
    let target = format!("idempotency-demo=http://{}", nowhere().await);
    let app = console_with(&target, &switches, Some(token.clone())).await;
    let list = "/api/systems/idempotency-demo/switches";
    let provider = "/api/systems/idempotency-demo/switches/provider";

    as_admin(&app, Method::GET, list, None, None)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    let wrong = AdminToken::generate();
    as_admin(
        &app,
        Method::PUT,
        provider,
        Some(wrong.expose()),
        Some(json!({"error_rate": 1.0})),
    )
    .await
    .problem(StatusCode::UNAUTHORIZED);

    let unconfigured = console_with(&target, &switches, None).await;
    as_admin(&unconfigured, Method::GET, list, Some(token.expose()), None)
        .await
        .problem(StatusCode::FORBIDDEN);

    let listed = as_admin(&app, Method::GET, list, Some(token.expose()), None).await;
    assert_eq!(
        listed.json()[0]["settings"]["error_rate"],
        0.0,
        "nothing was changed"
    );
}

/// A replica of a system with switches of its own, as `platform::fault` serves them.
async fn replica_with_switches(token: AdminToken) -> (SocketAddr, FaultSwitch) {
    let switches = FaultSwitches::new("rate-limiter");
    let redis = switches.add("redis");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = switches.router(Some(token));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, redis)
}

#[tokio::test]
async fn a_dependencys_switch_is_found_on_the_system_and_set_on_every_replica() {
    let token = AdminToken::generate();
    let (first, first_redis) = replica_with_switches(token.clone()).await;
    let (second, second_redis) = replica_with_switches(token.clone()).await;
    let app = console_with(
        &format!("rate-limiter=http://{first},http://{second}"),
        "",
        Some(token.clone()),
    )
    .await;
    let list = "/api/systems/rate-limiter/switches";

    let listed = as_admin(&app, Method::GET, list, Some(token.expose()), None).await;
    assert_eq!(listed.status, StatusCode::OK);
    let listed = listed.json();
    assert_eq!(listed[0]["name"], "redis");
    assert_eq!(listed[0]["endpoints"], 2);
    assert_eq!(listed[0]["settings"]["unreachable"], false);

    let set = as_admin(
        &app,
        Method::PUT,
        "/api/systems/rate-limiter/switches/redis",
        Some(token.expose()),
        Some(json!({"unreachable": true, "latency_ms": 0})),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.json());
    assert!(first_redis.get().unreachable && second_redis.get().unreachable);

    let refused = as_admin(
        &app,
        Method::PUT,
        "/api/systems/rate-limiter/switches/redis",
        Some(token.expose()),
        Some(json!({"latency_ms": 1_000_000})),
    )
    .await;
    refused.invalid_field("latency_ms");
    assert!(
        first_redis.get().unreachable,
        "a refused setting changed nothing"
    );

    as_admin(
        &app,
        Method::PUT,
        "/api/systems/rate-limiter/switches/database",
        Some(token.expose()),
        Some(json!({"unreachable": true})),
    )
    .await
    .problem(StatusCode::NOT_FOUND);
}

/// The proxy the lab runs between the systems and their real engines, with Toxiproxy's API,
/// holding a proxy for the rate limiter's Redis and one for the shortener's.
async fn toxiproxy(token: &AdminToken) -> (SocketAddr, faultproxy::Proxies) {
    let server = faultproxy::Server::bind("127.0.0.1:0".parse().unwrap(), Some(token.clone()))
        .await
        .unwrap();
    for name in ["rate-limiter-redis", "url-shortener-redis"] {
        server
            .proxies()
            .create(faultproxy::NewProxy {
                name: name.to_owned(),
                listen: "127.0.0.1:0".to_owned(),
                upstream: "127.0.0.1:6379".to_owned(),
                enabled: true,
            })
            .await
            .unwrap();
    }
    let (addr, proxies) = (server.addr().unwrap(), server.proxies().clone());
    tokio::spawn(server.run_until_stopped(std::future::pending()));
    (addr, proxies)
}

#[tokio::test]
async fn a_systems_proxies_are_its_switches_on_the_real_engines() {
    let token = AdminToken::generate();
    let (api, proxies) = toxiproxy(&token).await;
    let settings = Settings {
        admin_token: Some(token.clone()),
        toxiproxy: Some(format!("http://{api}/").parse().unwrap()),
        ..settings(&format!("rate-limiter=http://{}", nowhere().await))
    };
    let app = Application::build(settings).await.unwrap();
    let list = "/api/systems/rate-limiter/switches";
    let redis = "/api/systems/rate-limiter/switches/proxy-redis";

    let listed = as_admin(&app, Method::GET, list, Some(token.expose()), None)
        .await
        .json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["proxy-redis"], "only the limiter's own proxy");
    assert_eq!(
        listed[0]["settings"],
        json!({"latency_ms": 0, "unreachable": false})
    );

    let set = as_admin(
        &app,
        Method::PUT,
        redis,
        Some(token.expose()),
        Some(json!({"latency_ms": 300, "unreachable": true})),
    )
    .await;
    assert_eq!(
        set.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&set.body)
    );
    assert_eq!(set.json(), json!({"latency_ms": 300, "unreachable": true}));
    let limiter = json!(proxies.get("rate-limiter-redis").await.unwrap());
    assert_eq!(
        limiter["enabled"], false,
        "unreachable is the proxy disabled"
    );
    assert_eq!(limiter["toxics"][0]["type"], "latency");
    assert_eq!(limiter["toxics"][0]["attributes"]["latency"], 300);
    assert!(
        proxies.get("url-shortener-redis").await.unwrap().enabled,
        "another system's proxy is left alone"
    );

    let undone = as_admin(
        &app,
        Method::PUT,
        redis,
        Some(token.expose()),
        Some(json!({"latency_ms": 0, "unreachable": false})),
    )
    .await;
    assert_eq!(
        undone.json(),
        json!({"latency_ms": 0, "unreachable": false})
    );
    assert!(
        proxies
            .get("rate-limiter-redis")
            .await
            .unwrap()
            .toxics
            .is_empty()
    );

    as_admin(
        &app,
        Method::PUT,
        redis,
        Some(token.expose()),
        Some(json!({"latency_ms": 60_001})),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY);
    as_admin(
        &app,
        Method::PUT,
        "/api/systems/rate-limiter/switches/proxy-database",
        Some(token.expose()),
        Some(json!({"unreachable": true})),
    )
    .await
    .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_load_is_asked_for_within_bounds_and_only_where_there_is_a_scenario() {
    let app = console(&format!(
        "url-shortener=http://{};inventory=http://{}",
        nowhere().await,
        nowhere().await
    ))
    .await;
    let router = app.router();
    let start = |system: &'static str, body: Value| {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("/api/systems/{system}/load"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        send_to(&router, request)
    };

    start("url-shortener", json!({"rate": 0, "duration_s": 5}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    start("url-shortener", json!({"rate": 10, "duration_s": 601}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    // A system the console watches but has no scenario for (not one of the lab's).
    start("inventory", json!({"rate": 10, "duration_s": 5}))
        .await
        .problem(StatusCode::NOT_FOUND);
    let stop = Request::builder()
        .method(Method::DELETE)
        .uri("/api/load")
        .body(Body::empty())
        .unwrap();
    send_to(&app.router(), stop)
        .await
        .problem(StatusCode::NOT_FOUND);
    assert_eq!(
        fetch(&app, "/api/load").await.json(),
        Value::Null,
        "no run yet"
    );
}

#[tokio::test]
async fn a_systems_walkthrough_moves_its_estimate_with_the_inputs_and_refuses_a_bad_one() {
    let app = console(&format!("url-shortener=http://{}", nowhere().await)).await;

    let default = fetch(&app, "/api/systems/url-shortener/walkthrough").await;
    let changed = fetch(
        &app,
        "/api/systems/url-shortener/walkthrough?reads_per_write=100&links_per_day=1e8",
    )
    .await;
    let unknown = fetch(&app, "/api/systems/url-shortener/walkthrough?users=5").await;
    let negative = fetch(
        &app,
        "/api/systems/url-shortener/walkthrough?peak_factor=-1",
    )
    .await;

    assert_eq!(default.status, StatusCode::OK);
    let phases = default.json()["phases"].clone();
    assert_eq!(phases.as_array().unwrap().len(), 7, "{phases}");
    assert_eq!(phases[1]["kind"], "estimate");
    let estimate = |response: &TestResponse| response.json()["phases"][1]["generated"].clone();
    assert!(
        estimate(&default)
            .as_str()
            .unwrap()
            .contains("11,574/s average")
    );
    assert!(
        estimate(&changed)
            .as_str()
            .unwrap()
            .contains("115,741/s average")
    );
    // Nothing watched answers: the API phase says the endpoints could not be read.
    let reference = phases[2]["generated"].as_str().unwrap();
    assert!(reference.contains("could not be read"), "{reference}");
    assert!(reference.contains("CREATE TABLE links ("), "{reference}");
    for (bad, name) in [(&unknown, "users"), (&negative, "peak_factor")] {
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(bad.json()["errors"][0]["parameter"], name);
    }
}

#[tokio::test]
async fn a_system_without_a_walkthrough_or_a_demonstration_not_its_own_is_a_404() {
    let app = console(&format!("notifier=http://{}", nowhere().await)).await;

    let none = fetch(&app, "/api/systems/someone-elses/walkthrough").await;
    let demo = demonstrate(&app, "url-shortener", "no-such-demo").await;

    assert_eq!(none.status, StatusCode::NOT_FOUND);
    assert_eq!(demo.status, StatusCode::NOT_FOUND);
    assert!(
        demo.json()["detail"]
            .as_str()
            .unwrap()
            .contains("cached-redirect")
    );
}

#[tokio::test]
async fn a_claims_file_is_served_and_no_other() {
    let app = console(&format!("url-shortener=http://{}", nowhere().await)).await;

    let claimed = fetch(&app, "/source/url-shortener/src/cache.rs").await;
    let other = fetch(&app, "/source/Cargo.toml").await;
    let escape = fetch(&app, "/source/../../etc/passwd").await;

    assert_eq!(claimed.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&claimed.body).contains("negative caching"));
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_ne!(escape.status, StatusCode::OK);
}

/// The page's button runs the demonstration as the console's own binary's `walkthrough <system>
/// --demo <id> --json`: a shortener started for it, the claim checked there.
#[tokio::test]
async fn a_demonstration_runs_in_a_process_of_its_own_and_says_what_held() {
    let mut with_binary = settings(&format!("url-shortener=http://{}", nowhere().await));
    with_binary.walkthrough_program = Some(env!("CARGO_BIN_EXE_console").into());
    let app = Application::build(with_binary).await.unwrap();
    let mut missing = settings(&format!("url-shortener=http://{}", nowhere().await));
    missing.walkthrough_program = Some("/nonexistent/sdlab".into());
    let broken = Application::build(missing).await.unwrap();

    let shown = demonstrate(&app, "url-shortener", "exact-visit-limit").await;
    let failed = demonstrate(&broken, "url-shortener", "exact-visit-limit").await;

    assert_eq!(shown.status, StatusCode::OK, "{:?}", shown.body);
    let shown = shown.json();
    assert_eq!(shown["broken"], json!([]), "{shown}");
    let lines = shown["lines"].to_string();
    assert!(
        lines.contains("10 answered 302, 40 answered 404"),
        "{lines}"
    );
    assert!(lines.contains("held: "), "{lines}");
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        failed.json()["detail"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/sdlab")
    );
}

async fn demonstrate(app: &Application, system: &str, demo: &str) -> TestResponse {
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("/api/systems/{system}/walkthrough/demos/{demo}"))
        .body(Body::empty())
        .unwrap();
    send_to(&app.router(), request).await
}
