//! What a proxy and its toxics do to real connections. Latency is asserted as "at least" only:
//! the machine may always be slower.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{Api, closed_port, echo_server, is_closed, round_trip};

#[tokio::test]
async fn bytes_go_both_ways_through_a_proxy() {
    let api = Api::new();
    let proxy = api.proxy("echo", echo_server().await).await;
    let mut client = TcpStream::connect(proxy).await.unwrap();

    assert_eq!(round_trip(&mut client, b"hello").await.unwrap(), b"hello");

    // More than fits in one read or one socket buffer, written while it is read back.
    let sent: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let (mut read, mut write) = client.into_split();
    let writing = {
        let sent = sent.clone();
        tokio::spawn(async move { write.write_all(&sent).await.unwrap() })
    };
    let mut received = vec![0; sent.len()];
    read.read_exact(&mut received).await.unwrap();
    writing.await.unwrap();
    assert!(received == sent, "the bytes came back changed");
}

#[tokio::test]
async fn a_latency_toxic_delays_the_answers_on_connections_already_open() {
    let api = Api::new();
    let proxy = api.proxy("echo", echo_server().await).await;
    let mut client = TcpStream::connect(proxy).await.unwrap();
    round_trip(&mut client, b"before").await.unwrap();

    api.toxic(
        "echo",
        json!({"type": "latency", "attributes": {"latency": 300}}),
    )
    .await;
    let start = Instant::now();
    assert_eq!(round_trip(&mut client, b"after").await.unwrap(), b"after");
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );

    // And on new ones.
    let mut another = TcpStream::connect(proxy).await.unwrap();
    let start = Instant::now();
    round_trip(&mut another, b"new").await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn an_upstream_latency_delays_what_the_client_sends() {
    let api = Api::new();
    let proxy = api.proxy("echo", echo_server().await).await;
    api.toxic(
        "echo",
        json!({"type": "latency", "stream": "upstream", "attributes": {"latency": 200, "jitter": 50}}),
    )
    .await;
    let mut client = TcpStream::connect(proxy).await.unwrap();
    let start = Instant::now();
    round_trip(&mut client, b"ping").await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(150),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_toxic_with_no_toxicity_acts_on_no_connection() {
    let api = Api::new();
    let proxy = api.proxy("echo", echo_server().await).await;
    api.toxic(
        "echo",
        json!({"type": "timeout", "toxicity": 0.0, "attributes": {"timeout": 0}}),
    )
    .await;
    let mut client = TcpStream::connect(proxy).await.unwrap();
    // Held by the timeout, nothing would ever come back.
    let answer = tokio::time::timeout(Duration::from_secs(10), round_trip(&mut client, b"hi"))
        .await
        .expect("the toxic held the data");
    assert_eq!(answer.unwrap(), b"hi");
}

#[tokio::test]
async fn a_disabled_proxy_closes_its_connections_and_refuses_new_ones_until_enabled() {
    let api = Api::new();
    let proxy = api.proxy("echo", echo_server().await).await;
    let mut open = TcpStream::connect(proxy).await.unwrap();
    round_trip(&mut open, b"up").await.unwrap();

    api.enable("echo", false).await;
    assert!(
        is_closed(&mut open).await,
        "the open connection is still open"
    );
    let refused = TcpStream::connect(proxy).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

    api.enable("echo", true).await;
    let mut again = TcpStream::connect(proxy).await.unwrap();
    assert_eq!(round_trip(&mut again, b"back").await.unwrap(), b"back");
}

#[tokio::test]
async fn a_timeout_toxic_holds_the_data_then_closes_the_connection() {
    let api = Api::new();
    let proxy = api.proxy("echo", echo_server().await).await;
    api.toxic(
        "echo",
        json!({"type": "timeout", "attributes": {"timeout": 300}}),
    )
    .await;
    let mut client = TcpStream::connect(proxy).await.unwrap();
    let start = Instant::now();
    client.write_all(b"anyone?").await.unwrap();

    let mut answer = Vec::new();
    let read = client.read_to_end(&mut answer).await;
    assert!(read.is_err() || answer.is_empty(), "got {answer:?}");
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn removing_a_timeout_toxic_closes_the_connections_it_held() {
    let api = Api::new();
    let proxy = api.proxy("echo", echo_server().await).await;
    let mut client = TcpStream::connect(proxy).await.unwrap();
    round_trip(&mut client, b"open").await.unwrap();
    api.toxic(
        "echo",
        json!({"type": "timeout", "attributes": {"timeout": 0}}),
    )
    .await;
    client.write_all(b"lost").await.unwrap();
    // Held: nothing comes back (a slower machine only makes that likelier).
    let held = tokio::time::timeout(Duration::from_millis(300), client.read(&mut [0; 4])).await;
    assert!(held.is_err(), "the data came back: {held:?}");

    let removed = api.delete("/proxies/echo/toxics/timeout_downstream").await;
    assert_eq!(removed.status, 204);
    assert!(is_closed(&mut client).await);
    // A new connection is not held.
    let mut fresh = TcpStream::connect(proxy).await.unwrap();
    assert_eq!(round_trip(&mut fresh, b"ok").await.unwrap(), b"ok");
}

#[tokio::test]
async fn a_reset_peer_toxic_resets_the_connection_when_data_arrives() {
    let api = Api::new();
    let proxy = api.proxy("echo", echo_server().await).await;
    let mut client = TcpStream::connect(proxy).await.unwrap();
    round_trip(&mut client, b"fine").await.unwrap();
    api.toxic(
        "echo",
        json!({"type": "reset_peer", "stream": "upstream", "attributes": {"timeout": 0}}),
    )
    .await;

    let err = round_trip(&mut client, b"boom").await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
}

#[tokio::test]
async fn a_client_whose_upstream_is_down_is_closed() {
    let api = Api::new();
    let proxy = api.proxy("nowhere", closed_port().await).await;
    let mut client = TcpStream::connect(proxy).await.unwrap();
    assert!(is_closed(&mut client).await);
}
