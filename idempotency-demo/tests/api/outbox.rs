//! The outbox relay: every finished payment's event reaches `payments.events` once per relay
//! pass, keyed by payment id, with its event id; late commits are not skipped; two relays never
//! publish one event twice.

use std::collections::HashSet;

use futures::future::join_all;
use platform::{
    db::Database,
    outbox::{EVENT_ID_HEADER, EVENT_TYPE_HEADER},
};
use serde_json::{Value, json};

use crate::helpers::{TestApp, visa};

#[tokio::test]
async fn each_finished_payment_is_published_once_keyed_by_payment_with_its_event_id() {
    let app = TestApp::spawn().await;
    let paid = app.pay("a", visa(100)).await.json();
    let declined = app
        .pay(
            "b",
            json!({"amount": 200, "currency": "usd", "source": "tok_chargeDeclined"}),
        )
        .await
        .json();

    let published = app.app.relay().relay_once().await.unwrap();
    let again = app.app.relay().relay_once().await.unwrap();

    assert_eq!((published, again), (2, 0));
    assert!(app.unpublished_events().await.is_empty());
    let mut deliveries = app.consume(2).await.1;
    deliveries.sort_by_key(|d| {
        let payload: Value = serde_json::from_slice(&d.payload).unwrap();
        payload["payment"]["amount"].as_u64().unwrap()
    });
    for (delivery, (payment, event_type)) in deliveries.iter().zip([
        (&paid, "payment.succeeded"),
        (&declined["payment"], "payment.failed"),
    ]) {
        let payload: Value = serde_json::from_slice(&delivery.payload).unwrap();
        assert_eq!(delivery.key, payment["id"].as_str().unwrap().as_bytes());
        assert_eq!(payload["type"], event_type);
        assert_eq!(
            delivery.header(EVENT_TYPE_HEADER),
            Some(event_type.as_bytes())
        );
        assert_eq!(
            delivery.header(EVENT_ID_HEADER),
            Some(payload["id"].as_str().unwrap().as_bytes())
        );
        assert_eq!(&payload["payment"], payment);
    }
}

#[tokio::test]
async fn an_event_below_ones_already_published_is_still_published() {
    let app = TestApp::spawn().await;
    app.pay("first", visa(100)).await;
    // An event whose transaction is still open while later ones commit and are published.
    let late = match &app.backends.database {
        Database::Postgres(pool) => {
            let mut open = pool.begin().await.unwrap();
            insert_late_event_pg(&mut open, &app.settings.events_topic).await;
            app.pay("second", visa(200)).await;
            assert_eq!(app.app.relay().relay_once().await.unwrap(), 2);
            open.commit().await.unwrap();
            "a row whose transaction committed late"
        }
        // SQLite has one writer, so ids are assigned and committed in order; what a late commit
        // does there is placed by hand: a row with an id below the published ones.
        Database::Sqlite(pool) => {
            app.pay("second", visa(200)).await;
            assert_eq!(app.app.relay().relay_once().await.unwrap(), 2);
            let mut conn = pool.acquire().await.unwrap();
            insert_late_event_sqlite(&mut conn, &app.settings.events_topic).await;
            "a row with an id below the published ones"
        }
    };

    let published = app.app.relay().relay_once().await.unwrap();

    assert_eq!(published, 1, "{late} was skipped");
    let deliveries = app.consume(3).await.1;
    assert!(deliveries.iter().any(|d| d.key == b"late"));
}

const LATE_EVENT: &str =
    "INSERT INTO outbox (event_id, topic, message_key, event_type, payload, created_at)";

async fn insert_late_event_pg(conn: &mut sqlx::PgConnection, topic: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "{LATE_EVENT} VALUES ($1, $2, 'late', 'payment.succeeded', '\\x7b7d', now())"
    )))
    .bind(uuid::Uuid::now_v7())
    .bind(topic)
    .execute(conn)
    .await
    .unwrap();
}

async fn insert_late_event_sqlite(conn: &mut sqlx::SqliteConnection, topic: &str) {
    sqlx::query(
        "INSERT INTO outbox (id, event_id, topic, message_key, event_type, payload, created_at) \
         VALUES (-1, ?1, ?2, 'late', 'payment.succeeded', X'7b7d', 0)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(topic)
    .execute(conn)
    .await
    .unwrap();
}

#[tokio::test]
async fn two_relays_working_at_once_never_publish_an_event_twice() {
    let app = TestApp::spawn().await;
    let other = app.another_instance().await;
    let payments = 60;
    for i in 0..payments {
        app.pay(&format!("p{i}"), visa(100 + i)).await;
    }

    let mut published = 0;
    while !app.unpublished_events().await.is_empty() {
        let passes = join_all([app.app.relay().relay_once(), other.relay().relay_once()]).await;
        published += passes.into_iter().map(Result::unwrap).sum::<usize>();
    }

    assert_eq!(published, payments as usize);
    let deliveries = app.consume(payments as usize).await.1;
    let ids: HashSet<_> = deliveries
        .iter()
        .map(|d| d.header(EVENT_ID_HEADER).unwrap().to_vec())
        .collect();
    assert_eq!(ids.len(), payments as usize);
}
