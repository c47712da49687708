//! A real engine behind the proxy: Redis when `REDIS_URL` is set (its client's own connection
//! and reconnection), a local echo server otherwise, so that the test runs on both backend sets.

use std::net::SocketAddr;

use platform::testing::redis_url;
use tokio::net::{TcpStream, lookup_host};

use crate::helpers::{Api, echo_server, is_closed, round_trip};

#[tokio::test]
async fn an_engine_behind_a_disabled_proxy_is_gone_until_the_proxy_is_enabled() {
    match redis_url() {
        Some(url) => redis_goes_away_and_comes_back(&url).await,
        None => echo_goes_away_and_comes_back().await,
    }
}

async fn redis_goes_away_and_comes_back(url: &str) {
    let api = Api::new();
    let (before, host, after) = split_redis_url(url);
    let upstream: SocketAddr = lookup_host(host).await.unwrap().next().unwrap();
    let proxy = api.proxy("test-redis", upstream).await;
    let through_proxy = redis::Client::open(format!("{before}{proxy}{after}")).unwrap();
    let mut connection = through_proxy
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let pong: String = redis::cmd("PING")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(pong, "PONG");

    api.enable("test-redis", false).await;
    let ping: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut connection).await;
    assert!(ping.is_err(), "PING answered through a disabled proxy");
    assert!(
        through_proxy
            .get_multiplexed_async_connection()
            .await
            .is_err(),
        "connected through a disabled proxy"
    );

    api.enable("test-redis", true).await;
    let mut connection = through_proxy
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let pong: String = redis::cmd("PING")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(pong, "PONG");
}

/// `redis://[user:pass@]host:port[/db]` as what comes before the address, the address, and
/// what comes after it.
fn split_redis_url(url: &str) -> (String, &str, &str) {
    let (scheme, rest) = url.split_once("://").expect("REDIS_URL is scheme://…");
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((userinfo, rest)) => (format!("{userinfo}@"), rest),
        None => (String::new(), rest),
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    (format!("{scheme}://{userinfo}"), &rest[..end], &rest[end..])
}

async fn echo_goes_away_and_comes_back() {
    let api = Api::new();
    let proxy = api.proxy("test-echo", echo_server().await).await;
    let mut connection = TcpStream::connect(proxy).await.unwrap();
    assert_eq!(round_trip(&mut connection, b"ping").await.unwrap(), b"ping");

    api.enable("test-echo", false).await;
    assert!(is_closed(&mut connection).await);
    assert!(TcpStream::connect(proxy).await.is_err());

    api.enable("test-echo", true).await;
    let mut connection = TcpStream::connect(proxy).await.unwrap();
    assert_eq!(round_trip(&mut connection, b"ping").await.unwrap(), b"ping");
}
