//! The API driven without a socket (its router, through `oneshot`), and the TCP ends a proxy
//! stands between: an echo server upstream, a client downstream.

use std::net::SocketAddr;

use axum::{
    Router,
    body::Body,
    http::{Method, Request},
};
use faultproxy::{Proxies, api};
use platform::{
    auth::AdminToken,
    testing::http::{TestResponse, json_request, send_to},
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// The proxy API, opened by a token made for the test.
pub struct Api {
    pub router: Router,
    pub token: AdminToken,
}

impl Api {
    pub fn new() -> Self {
        let token = AdminToken::generate();
        Self {
            router: api::router(Proxies::new(), Some(token.clone())),
            token,
        }
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> TestResponse {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> TestResponse {
        self.send(Method::DELETE, path, None).await
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> TestResponse {
        let token = Some(self.token.expose());
        let request = match body {
            Some(body) => json_request(method, path, token, body.to_string()),
            None => Request::builder()
                .method(method)
                .uri(path)
                .header("authorization", format!("Bearer {}", self.token.expose()))
                .body(Body::empty())
                .unwrap(),
        };
        send_to(&self.router, request).await
    }

    /// Creates an enabled proxy to `upstream` on a free loopback port, and returns where it
    /// listens.
    pub async fn proxy(&self, name: &str, upstream: SocketAddr) -> SocketAddr {
        let created = self
            .post(
                "/proxies",
                json!({"name": name, "listen": "127.0.0.1:0", "upstream": upstream.to_string()}),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.json());
        listen(&created.json())
    }

    /// Adds a toxic to `proxy`, asserting that it was added.
    pub async fn toxic(&self, proxy: &str, toxic: Value) {
        let added = self.post(&format!("/proxies/{proxy}/toxics"), toxic).await;
        assert_eq!(added.status, 200, "{}", added.json());
    }

    pub async fn enable(&self, proxy: &str, enabled: bool) {
        let updated = self
            .post(&format!("/proxies/{proxy}"), json!({"enabled": enabled}))
            .await;
        assert_eq!(updated.status, 200, "{}", updated.json());
        assert_eq!(updated.json()["enabled"], enabled);
    }
}

/// Where a proxy, as the API shows it, listens.
pub fn listen(proxy: &Value) -> SocketAddr {
    proxy["listen"].as_str().unwrap().parse().unwrap()
}

/// A server that sends back whatever it reads, on each connection, until the client closes.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

/// A loopback port nothing listens on.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// Sends `message` and reads as many bytes back.
pub async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(message).await?;
    let mut answer = vec![0; message.len()];
    stream.read_exact(&mut answer).await?;
    Ok(answer)
}

/// Whether the peer has closed `stream`: a read gets its end, or an error (a reset).
pub async fn is_closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0; 1];
    matches!(stream.read(&mut byte).await, Ok(0) | Err(_))
}
