//! Several instances on one database: ids stay unique even when the instance numbers that should
//! keep them apart do not.

use std::collections::HashSet;

use axum::http::StatusCode;
use feed_service::Settings;
use serde_json::json;

use crate::helpers::{TestApp, post_request, send_to};

#[tokio::test]
async fn two_instances_given_the_same_instance_id_still_store_every_post_once() {
    // Both are instance 0 on one frozen clock: their generators make the same ids in the same
    // order, so from the second round on each post's first id is taken by the other's.
    let app = TestApp::spawn().await;
    let twin = app.another_instance(Settings::for_tests()).await;
    let ada = app.user("ada").await;

    let mut ids = Vec::new();
    for round in 0..10 {
        ids.push(
            app.post(&ada, &format!("first instance, round {round}"))
                .await,
        );
        let text = json!({ "text": format!("second instance, round {round}") });
        let response = send_to(&twin, post_request(&ada, text)).await;
        assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
        ids.push(response.json()["id"].as_str().unwrap().to_owned());
    }

    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 20);
    let mut in_feed = app.feed_ids(&ada).await;
    in_feed.sort();
    ids.sort();
    assert_eq!(in_feed, ids);
}
