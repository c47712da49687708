//! Many copies of one request at once, on two instances: one charge, one payment, one event.

use axum::http::StatusCode;
use futures::future::join_all;
use idempotency_demo::provider::Faults;

use crate::helpers::{TestApp, payment_request, send_to, visa};

#[tokio::test]
async fn fifty_concurrent_copies_of_a_request_on_two_instances_charge_once() {
    let app = TestApp::spawn().await;
    // A slow provider keeps the first request in flight while the others arrive.
    app.set_faults(Faults {
        latency_ms: 200,
        ..Faults::default()
    });
    let second_instance = app.another_instance().await.router();
    let body = visa(2500).to_string();

    let responses = join_all((0..50).map(|i| {
        let router = if i % 2 == 0 {
            app.router.clone()
        } else {
            second_instance.clone()
        };
        let request = payment_request(&app.key, Some("storm"), body.clone());
        async move { send_to(&router, request).await }
    }))
    .await;

    let fresh: Vec<_> = responses
        .iter()
        .filter(|r| {
            r.status == StatusCode::CREATED && !r.headers.contains_key("idempotent-replayed")
        })
        .collect();
    assert_eq!(fresh.len(), 1, "exactly one request did the work");
    for response in &responses {
        match response.status {
            StatusCode::CREATED => assert_eq!(response.body, fresh[0].body),
            StatusCode::CONFLICT => {
                assert!(response.headers.contains_key("retry-after"));
            }
            other => panic!("unexpected {other}: {:?}", response.body),
        }
    }
    assert_eq!(app.charges().len(), 1);
    assert_eq!(app.all_payments().await.len(), 1);
    assert_eq!(app.unpublished_events().await.len(), 1);
}
