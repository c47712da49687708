//! `serve`: HTTP/1.1 with a graceful shutdown that answers every request it accepted.
//!
//! **What went wrong with `axum::serve` alone.** Its graceful shutdown stops accepting and, in
//! the same instant, tells every open connection to shut down gracefully. hyper takes that to
//! mean "finish the request in progress, then close", and closes at once a connection that has
//! none in progress. Two kinds of connection have none in progress and yet a request on its
//! way:
//! - one accepted just before the signal, whose first request has not been read yet. While
//!   hyper-util is still reading its first bytes (to tell HTTP/1 from HTTP/2) the shutdown
//!   cancels that read and drops the connection; once hyper has it, it closes one that has
//!   read nothing. Either way the request the client already sent is never answered: an empty
//!   reply (curl's error 52), or a reset if its bytes were still unread;
//! - a kept-alive one between two requests, whose client sends the next request as the server
//!   closes it: the same empty reply. HTTP/1.1 has no way to say "I am closing" except on a
//!   response (`Connection: close`), so a server that closes an idle connection always races
//!   a client that is about to use it.
//!
//! **What `serve` does instead.** When `shutdown` completes, it drains:
//! 1. it stops accepting and closes the listener, so that new connections are refused (a load
//!    balancer then tries another instance) rather than accepted and dropped;
//! 2. every response from then on, including those of requests already in progress, carries
//!    `Connection: close`, and hyper closes the connection once it is written: a client is told
//!    on the one channel HTTP/1.1 has, and opens its next connection elsewhere;
//! 3. it waits until every connection has closed that way, or for [`IDLE_GRACE`], whichever is
//!    first; only then does hyper's graceful shutdown close the connections that sent nothing
//!    during the grace, and finish the requests still running (each bounded by the stack's
//!    timeout).
//!
//! Under load every connection carries a request within the grace, so the drain ends as soon
//! as the last one is answered. The grace is what a connection that stays idle (a pooled client
//! with nothing to send) costs a shutdown; the race with its client is left only at the grace's
//! end, for a client idle that long. Go's `net/http` makes the same trade for new connections,
//! which `Shutdown` leaves five seconds to send their first request. Closing idle connections at
//! once, as hyper does, was the bug; waiting for every idle connection without a limit would let
//! one silent client hold a shutdown for ever.
//!
//! Connections that completed the TCP handshake but were still in the listen queue when the
//! listener closed were never accepted: the kernel resets them, and their clients see a
//! connection error, never a half-answered request.

use std::{
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    extract::Request,
    http::{HeaderValue, Version, header},
    response::Response,
    serve::{Listener, ListenerExt},
};
use pin_project_lite::pin_project;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tower::Service;

use crate::shutdown::CancellationToken;

/// How long a draining server keeps a connection with nothing in progress open for the request
/// its client may be sending. A client under load sends within milliseconds; a second is what an
/// idle pooled connection delays a shutdown by.
pub const IDLE_GRACE: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `shutdown` completes, then drains: stops accepting, answers
/// every request on the connections it accepted, each with `Connection: close`, and returns once
/// every connection is closed (see the module documentation).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let draining = Draining::default();
    let open = Arc::new(watch::Sender::new(0_usize));
    let listener = DrainingListener {
        inner: Some(listener),
        draining: draining.token.clone(),
        open: open.clone(),
    };
    let listener = listener.tap_io(|tracked| {
        // Small request/response exchanges should not wait for Nagle's algorithm.
        if let Err(err) = tracked.stream.set_nodelay(true) {
            tracing::warn!(%err, "cannot set TCP_NODELAY");
        }
    });
    let app = CloseWhenDraining {
        inner: app,
        draining: draining.flag.clone(),
    };
    let drained = async move {
        shutdown.await;
        draining.begin();
        let mut connections = open.subscribe();
        let all_closed = connections.wait_for(|open| *open == 0);
        if tokio::time::timeout(IDLE_GRACE, all_closed).await.is_err() {
            tracing::debug!(
                open = *open.borrow(),
                "closing the connections that sent nothing during the grace"
            );
        }
    };
    axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(app),
    )
    .with_graceful_shutdown(drained)
    .await
}

/// Whether the server is draining: a token the listener waits on, and a flag each response
/// reads (a `CancellationToken` clone per request would take a lock).
#[derive(Clone, Default)]
struct Draining {
    token: CancellationToken,
    flag: Arc<AtomicBool>,
}

impl Draining {
    fn begin(&self) {
        self.flag.store(true, Ordering::Release);
        self.token.cancel();
    }
}

/// A listener that stops accepting, and closes its socket, once the drain begins, and counts
/// the connections it accepted that are still open.
struct DrainingListener {
    inner: Option<TcpListener>,
    draining: CancellationToken,
    open: Arc<watch::Sender<usize>>,
}

impl Listener for DrainingListener {
    type Io = TrackedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        if let Some(listener) = &mut self.inner {
            tokio::select! {
                // Draining wins over a connection waiting in the queue: stop means stop.
                biased;
                () = self.draining.cancelled() => {}
                (stream, addr) = Listener::accept(listener) => {
                    self.open.send_modify(|open| *open += 1);
                    let stream = TrackedStream { stream, open: self.open.clone() };
                    return (stream, addr);
                }
            }
        }
        // Closing the socket refuses new connections; axum stops calling `accept` once its own
        // shutdown begins, at the end of the drain.
        self.inner = None;
        std::future::pending().await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.inner {
            Some(listener) => listener.local_addr(),
            None => Err(io::Error::other(
                "the listener is closed: the server is draining",
            )),
        }
    }
}

/// An accepted connection, counted as open until hyper drops it.
struct TrackedStream {
    stream: TcpStream,
    open: Arc<watch::Sender<usize>>,
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        self.open.send_modify(|open| *open -= 1);
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    // hyper writes a response's head and body in one vectored write when the stream can.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Adds `Connection: close` to every HTTP/1 response completed while the server drains, so that
/// hyper closes the connection after it and the client knows not to send another request on it.
#[derive(Clone)]
struct CloseWhenDraining<S> {
    inner: S,
    draining: Arc<AtomicBool>,
}

impl<S> Service<Request> for CloseWhenDraining<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ClosingWhenDraining<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // HTTP/2 has no `Connection` header: its connections are closed with GOAWAY, which
        // hyper sends itself.
        let draining = (req.version() <= Version::HTTP_11).then(|| self.draining.clone());
        ClosingWhenDraining {
            inner: self.inner.call(req),
            draining,
        }
    }
}

pin_project! {
    /// The response future of [`CloseWhenDraining`]: the flag is read when the response is
    /// ready, so that a request in progress when the drain began closes its connection too.
    struct ClosingWhenDraining<F> {
        #[pin]
        inner: F,
        draining: Option<Arc<AtomicBool>>,
    }
}

impl<F> Future for ClosingWhenDraining<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut response) = std::task::ready!(this.inner.poll(cx));
        if this
            .draining
            .as_ref()
            .is_some_and(|draining| draining.load(Ordering::Acquire))
        {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Poll::Ready(Ok(response))
    }
}
