//! Target URLs that lead back to the shortener, in every form a browser would follow: refused
//! with 422 naming `url`, so that no two links can redirect to each other for ever.

use axum::http::StatusCode;
use serde_json::json;

use crate::helpers::{Hosts, TestApp};

#[tokio::test]
async fn every_form_of_this_machine_on_the_shorteners_port_is_refused() {
    let app = TestApp::spawn().await;
    let port = app.addr.port();

    for url in [
        format!("http://127.0.0.1:{port}/abc"),
        format!("http://localhost:{port}/abc"),
        format!("http://[::1]:{port}/abc"),
        format!("http://0.0.0.0:{port}/abc"),
        format!("http://[::]:{port}/abc"),
        format!("http://[::ffff:127.0.0.1]:{port}/abc"),
        format!("http://0x7f000001:{port}/abc"),
        format!("http://app.localhost.:{port}/abc"),
    ] {
        let problem = app.create(json!({ "url": url })).await.invalid_field("url");
        assert_eq!(
            problem["detail"], "url: must not point back at this shortener",
            "{url}"
        );
    }
}

#[tokio::test]
async fn the_public_origin_and_the_gateway_in_front_are_refused() {
    let app = TestApp::spawn_with(|settings| {
        settings.other_origins = vec!["http://127.0.0.1:8092".parse().unwrap()];
    })
    .await;

    for url in [
        "http://sho.test/abc",
        "https://SHO.test./abc",
        "http://127.0.0.1:8092/abc",
        "http://localhost:8092/abc",
        "http://0.0.0.0:8092/abc",
        "http://[::ffff:127.0.0.1]:8092/abc",
    ] {
        app.create(json!({ "url": url })).await.invalid_field("url");
    }
}

#[tokio::test]
async fn another_port_on_this_machine_is_another_service() {
    let app = TestApp::spawn().await;
    let elsewhere = if app.addr.port() == 9 { 10 } else { 9 };

    for url in [
        format!("http://127.0.0.1:{elsewhere}/"),
        format!("http://[::]:{elsewhere}/"),
    ] {
        assert_eq!(
            app.create(json!({ "url": url })).await.status,
            StatusCode::CREATED,
            "{url}"
        );
    }
}

#[tokio::test]
async fn a_name_that_resolves_to_the_shortener_is_refused_and_says_where_it_leads() {
    let app = TestApp::spawn_resolving(
        Hosts::default()
            .with("loops.example", "93.184.216.34")
            .with("loops.example", "::ffff:127.0.0.1")
            .with("public.example", "93.184.216.34"),
    )
    .await;
    let port = app.addr.port();

    let problem = app
        .create(json!({ "url": format!("http://loops.example:{port}/abc") }))
        .await
        .invalid_field("url");
    assert_eq!(
        problem["detail"],
        "url: must not point back at this shortener (its host resolves to ::ffff:127.0.0.1)"
    );

    for url in [
        format!("http://public.example:{port}/abc"),
        format!("http://does-not-resolve.example:{port}/abc"),
        "http://loops.example/abc".to_owned(),
    ] {
        assert_eq!(
            app.create(json!({ "url": url })).await.status,
            StatusCode::CREATED,
            "{url}"
        );
    }
}
