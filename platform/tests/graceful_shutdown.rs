//! Graceful shutdown under load: `platform::http::serve` stops while many clients are sending,
//! and every request that reached the server is answered.
//!
//! The clients speak HTTP/1.1 over raw sockets, so that an empty reply (the connection closed
//! before a byte of the response, curl's error 52) can be told from a connection the server
//! refused or reset. Two kinds of client run at once: one connection per request, as curl in a
//! loop does, and one connection for many requests (keep-alive), as a pooled HTTP client does.
//! Each sends until a new connection is refused.

use std::{
    io::ErrorKind,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, routing::get};
use platform::{health::Readiness, http, shutdown::CancellationToken};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};

/// Requests answered before the shutdown begins: the load is well under way by then.
const BEFORE_SHUTDOWN: usize = 300;
const CLIENTS_OF_EACH_KIND: usize = 24;
const ROUNDS: usize = 5;

/// What became of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A whole response; `close` if it said `Connection: close`.
    Answered { close: bool },
    /// The connection closed before a byte of the response: curl's "empty reply".
    Empty,
    /// The connection closed partway through the response.
    Partial,
    /// Reset (or refused to be written to) by the server. For a new connection this is what a
    /// connection still in the listen queue when the listener closes gets: the server never
    /// accepted it.
    Reset,
}

#[derive(Debug, Default)]
struct Tally {
    answered: AtomicUsize,
    refused: AtomicUsize,
    /// Resets of connections that had not been answered yet (possibly never accepted).
    reset_new: AtomicUsize,
    /// Failures that only a server that drops accepted work produces.
    failures: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failures.lock().unwrap().push(what);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_request_sent_on_an_accepted_connection_is_answered_through_a_shutdown() {
    for round in 0..ROUNDS {
        let tally = run_round().await;

        let failures = tally.failures.lock().unwrap();
        assert!(
            failures.is_empty(),
            "round {round}: {} failures, e.g. {:?}; {} answered, {} refused, {} new connections reset",
            failures.len(),
            &failures[..failures.len().min(5)],
            tally.answered.load(Ordering::Relaxed),
            tally.refused.load(Ordering::Relaxed),
            tally.reset_new.load(Ordering::Relaxed),
        );
        assert!(tally.answered.load(Ordering::Relaxed) > BEFORE_SHUTDOWN);
    }
}

/// One server, loaded by every client until it has shut down.
async fn run_round() -> Arc<Tally> {
    let handled = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let routes = Router::new().route(
        "/work",
        get({
            let handled = handled.clone();
            let stop = stop.clone();
            move || async move {
                // A little work, so that some requests are in progress when the shutdown begins.
                tokio::time::sleep(Duration::from_millis(1)).await;
                if handled.fetch_add(1, Ordering::Relaxed) + 1 == BEFORE_SHUTDOWN {
                    stop.cancel();
                }
                "ok"
            }
        }),
    );
    let app = http::service(
        "shutdown-test",
        routes,
        Readiness::new(),
        utoipa::openapi::OpenApi::default(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(http::serve(listener, app, stop.cancelled_owned()));

    let tally = Arc::new(Tally::default());
    let mut clients = Vec::new();
    for _ in 0..CLIENTS_OF_EACH_KIND {
        clients.push(tokio::spawn(one_request_per_connection(
            addr,
            tally.clone(),
        )));
        clients.push(tokio::spawn(keep_alive(addr, tally.clone())));
    }
    for client in clients {
        client.await.unwrap();
    }
    server.await.unwrap().unwrap();
    tally
}

/// As curl in a loop: a new connection for each request, until one is refused.
async fn one_request_per_connection(addr: SocketAddr, tally: Arc<Tally>) {
    loop {
        let Some(mut stream) = connect(addr, &tally).await else {
            return;
        };
        match exchange(&mut stream).await {
            Outcome::Answered { .. } => {
                tally.answered.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Reset => {
                tally.reset_new.fetch_add(1, Ordering::Relaxed);
            }
            failure => tally.fail(format!("a new connection: {failure:?}")),
        }
    }
}

/// As a pooled client: requests one after another on one connection, a new connection when the
/// server says it closes this one, until a new connection is refused.
async fn keep_alive(addr: SocketAddr, tally: Arc<Tally>) {
    loop {
        let Some(mut stream) = connect(addr, &tally).await else {
            return;
        };
        let mut answered_here = 0;
        loop {
            match exchange(&mut stream).await {
                Outcome::Answered { close } => {
                    tally.answered.fetch_add(1, Ordering::Relaxed);
                    answered_here += 1;
                    if close {
                        break;
                    }
                }
                Outcome::Reset if answered_here == 0 => {
                    tally.reset_new.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                // This connection was accepted (it has been answered before): whatever is sent on
                // it must be answered, or the server must have said it closes.
                failure => {
                    tally.fail(format!(
                        "request {} on a kept-alive connection: {failure:?}",
                        answered_here + 1
                    ));
                    break;
                }
            }
        }
    }
}

/// A new connection, or `None` once the server refuses them.
async fn connect(addr: SocketAddr, tally: &Tally) -> Option<TcpStream> {
    match TcpStream::connect(addr).await {
        Ok(stream) => Some(stream),
        // A connection attempt that meets the listener as it closes is reset rather than refused.
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
            ) =>
        {
            tally.refused.fetch_add(1, Ordering::Relaxed);
            None
        }
        Err(err) => panic!("connecting: {err}"),
    }
}

/// Sends `GET /work` and reads the response.
async fn exchange(stream: &mut TcpStream) -> Outcome {
    let request = b"GET /work HTTP/1.1\r\nhost: test\r\n\r\n";
    if stream.write_all(request).await.is_err() {
        return Outcome::Reset;
    }
    let mut reader = BufReader::new(stream);
    let mut head = Vec::new();
    // The head, line by line, up to the empty line.
    loop {
        let before = head.len();
        match reader.read_until(b'\n', &mut head).await {
            Ok(0) if head.is_empty() => return Outcome::Empty,
            Ok(0) => return Outcome::Partial,
            Ok(_) if head[before..] == *b"\r\n" => break,
            Ok(_) => {}
            Err(err) if is_reset(&err) && head.is_empty() => return Outcome::Reset,
            Err(_) => return Outcome::Partial,
        }
    }
    let head = String::from_utf8(head).expect("an ASCII head");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let header = |name: &str| {
        head.lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim().to_ascii_lowercase())
    };
    let length: usize = header("content-length")
        .expect("a content-length")
        .parse()
        .unwrap();
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).await.is_err() {
        return Outcome::Partial;
    }
    assert_eq!(body, b"ok");
    Outcome::Answered {
        close: header("connection").is_some_and(|value| value.contains("close")),
    }
}

fn is_reset(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}
