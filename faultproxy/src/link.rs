//! One connection through a proxy: the client's bytes to the upstream and the upstream's back,
//! each direction through the toxics of its stream.
//!
//! Each direction is a reader and a writer joined by a queue of chunks, each stamped with the
//! instant it was read: the reader keeps reading while the writer holds a chunk back, and the
//! writer sends each chunk at its read instant plus the latency. A chunk therefore waits the
//! latency once, however many are in flight, as with Toxiproxy (whose latency toxic buffers 1024
//! chunks the same way); `tokio::io::copy_bidirectional` with a sleep before each write would
//! add the latency once per chunk in flight, which is what noxious does (see the crate's docs).
//!
//! The toxics come from a `watch` channel, so a toxic added, changed or removed acts on the
//! connections already open, as in Toxiproxy, and a chunk waiting out a latency that is taken
//! away is sent at once.

use std::{collections::HashMap, future::Future, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
    sync::{mpsc, watch},
    time::{Instant, sleep_until},
};

use crate::toxic::{Installed, Stream, ToxicKind};

/// A proxy's toxics, as every connection through it sees them.
pub(crate) type Chain = Arc<Vec<Installed>>;

/// What one read takes at most: Go's `io.Copy` buffer, which Toxiproxy's chunks come from.
const READ_SIZE: usize = 32 * 1024;
/// Chunks read ahead of the writer: what Toxiproxy's latency toxic buffers.
const BUFFERED_CHUNKS: usize = 1024;

/// Relays `client` to a new connection to `upstream` until both directions end, or the task is
/// dropped (the proxy disabled or deleted), which closes both sockets.
pub(crate) async fn relay(
    mut client: TcpStream,
    upstream: Arc<str>,
    chain: watch::Receiver<Chain>,
) {
    // As Toxiproxy does: a client whose upstream cannot be reached is closed at once, so it sees
    // the engine down rather than a connection that never answers.
    let mut server = match TcpStream::connect(&*upstream).await {
        Ok(server) => server,
        Err(err) => {
            tracing::warn!(%upstream, error = %err, "cannot reach the upstream: closing the client");
            return;
        }
    };
    // Small requests and answers (a Redis command, a query) must not wait for Nagle's algorithm.
    for stream in [&client, &server] {
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
    }
    let end = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        both(
            forward(client_read, server_write, Stream::Upstream, chain.clone()),
            forward(server_read, client_write, Stream::Downstream, chain),
        )
        .await
    };
    if end == End::Reset {
        // Closed with a zero linger, a socket sends RST rather than FIN: the peer's next read or
        // write fails with "connection reset by peer".
        for stream in [&client, &server] {
            if let Err(err) = stream.set_zero_linger() {
                tracing::debug!(error = %err, "cannot set a zero linger");
            }
        }
    }
}

/// How a direction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Its source closed, and the close was passed on: the other direction goes on.
    Eof,
    /// The connection is to be closed (a timeout toxic, a failed write, the proxy gone).
    Close,
    /// The connection is to be reset (a `reset_peer` toxic).
    Reset,
}

/// Runs both directions until both reach their source's end, or one ends the connection.
async fn both(up: impl Future<Output = End>, down: impl Future<Output = End>) -> End {
    tokio::pin!(up, down);
    let (mut up_open, mut down_open) = (true, true);
    while up_open || down_open {
        let end = tokio::select! {
            end = &mut up, if up_open => {
                up_open = false;
                end
            }
            end = &mut down, if down_open => {
                down_open = false;
                end
            }
        };
        if end != End::Eof {
            return end;
        }
    }
    End::Eof
}

struct Chunk {
    bytes: Vec<u8>,
    read_at: Instant,
}

/// Reads `source` into `chunks` until it ends or fails.
async fn read_chunks(mut source: impl AsyncRead + Unpin, chunks: mpsc::Sender<Chunk>) {
    loop {
        let mut bytes = Vec::with_capacity(READ_SIZE);
        match source.read_buf(&mut bytes).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let chunk = Chunk {
                    bytes,
                    read_at: Instant::now(),
                };
                if chunks.send(chunk).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// One direction: `source` to `dest` through the toxics of `stream`.
async fn forward(
    source: impl AsyncRead + Unpin,
    mut dest: impl AsyncWrite + Unpin,
    stream: Stream,
    mut chain: watch::Receiver<Chain>,
) -> End {
    let (sender, mut chunks) = mpsc::channel(BUFFERED_CHUNKS);
    let reading = read_chunks(source, sender);
    tokio::pin!(reading);
    let mut reading_done = false;
    let mut effects = Effects::new(stream);
    effects.update(&chain.borrow_and_update());
    // The chunk being held back, and when it is due.
    let mut pending: Option<(Chunk, Instant)> = None;
    let mut reset_at: Option<Instant> = None;
    loop {
        tokio::select! {
            // A change to the toxics is seen before the next chunk is: a toxic the API has
            // answered for acts on every byte read after it.
            biased;
            changed = chain.changed() => {
                // The sender goes with the proxy, which drops its connections first: this is
                // only a proxy deleted while this task was between two polls.
                if changed.is_err() {
                    return End::Close;
                }
                if effects.update(&chain.borrow_and_update()) == Released::Hold {
                    return End::Close;
                }
                if effects.reset_after.is_none() {
                    reset_at = None;
                }
                if let Some(after) = effects.reset_after {
                    if pending.take().is_some() {
                        reset_at.get_or_insert(Instant::now() + after);
                    }
                } else if effects.hold {
                    pending = None;
                } else if let Some((chunk, due)) = &mut pending {
                    *due = chunk.read_at + effects.delay();
                }
            }
            () = at(effects.cut_at) => return End::Close,
            () = at(reset_at) => return End::Reset,
            () = at(pending.as_ref().map(|(_, due)| *due)) => {
                let (chunk, _) = pending.take().expect("a chunk is due only if one is held");
                if dest.write_all(&chunk.bytes).await.is_err() {
                    return End::Close;
                }
            }
            () = &mut reading, if !reading_done => reading_done = true,
            chunk = chunks.recv(), if pending.is_none() => {
                let Some(chunk) = chunk else {
                    // Half-closed, as the source was: the other direction may still answer.
                    let _ = dest.shutdown().await;
                    return End::Eof;
                };
                if let Some(after) = effects.reset_after {
                    reset_at.get_or_insert(Instant::now() + after);
                } else if !effects.hold {
                    let due = chunk.read_at + effects.delay();
                    pending = Some((chunk, due));
                }
                // Held by a timeout toxic: dropped, as Toxiproxy drops it.
            }
        }
    }
}

/// Completes at `deadline`; never, without one.
async fn at(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What the toxics of one stream do to one connection now.
struct Effects {
    stream: Stream,
    /// Whether each toxic acts on this connection, drawn from its toxicity when the connection
    /// first sees it, and again when it is changed (a new revision).
    draws: HashMap<String, Draw>,
    /// The latency toxics that act: (latency, jitter) in milliseconds.
    latencies: Vec<(u64, u64)>,
    /// A timeout toxic acts: data is dropped.
    hold: bool,
    /// When a timeout toxic closes the connection.
    cut_at: Option<Instant>,
    /// A `reset_peer` toxic acts: the connection is reset this long after the next data.
    reset_after: Option<Duration>,
}

struct Draw {
    revision: u64,
    acts: bool,
    /// When the connection first saw this revision of the toxic: a timeout counts from here.
    since: Instant,
    holds: bool,
}

/// Whether an update took away a timeout toxic that was holding this connection's data.
#[derive(Debug, PartialEq, Eq)]
enum Released {
    Nothing,
    /// The data it dropped is lost, so the connection cannot go on: Toxiproxy closes it too.
    Hold,
}

impl Effects {
    fn new(stream: Stream) -> Self {
        Self {
            stream,
            draws: HashMap::new(),
            latencies: Vec::new(),
            hold: false,
            cut_at: None,
            reset_after: None,
        }
    }

    fn update(&mut self, chain: &[Installed]) -> Released {
        let now = Instant::now();
        let mut draws = HashMap::with_capacity(chain.len());
        self.latencies.clear();
        self.hold = false;
        self.cut_at = None;
        self.reset_after = None;
        for installed in chain.iter().filter(|t| t.toxic.stream == self.stream) {
            let toxic = &installed.toxic;
            let draw = match self.draws.remove(&toxic.name) {
                Some(draw) if draw.revision == installed.revision => draw,
                _ => Draw {
                    revision: installed.revision,
                    acts: rand::random_bool(f64::from(toxic.toxicity)),
                    since: now,
                    holds: matches!(toxic.kind, ToxicKind::Timeout { .. }),
                },
            };
            if draw.acts {
                match toxic.kind {
                    ToxicKind::Latency { latency, jitter } => {
                        self.latencies.push((latency, jitter))
                    }
                    ToxicKind::Timeout { timeout } => {
                        self.hold = true;
                        if timeout > 0 {
                            let at = draw.since + Duration::from_millis(timeout);
                            self.cut_at = Some(self.cut_at.map_or(at, |cut| cut.min(at)));
                        }
                    }
                    ToxicKind::ResetPeer { timeout } => {
                        let after = Duration::from_millis(timeout);
                        self.reset_after = Some(self.reset_after.map_or(after, |a| a.min(after)));
                    }
                }
            }
            draws.insert(toxic.name.clone(), draw);
        }
        // What is left is what was removed.
        let released = self.draws.values().any(|draw| draw.acts && draw.holds);
        self.draws = draws;
        if released {
            Released::Hold
        } else {
            Released::Nothing
        }
    }

    /// The latency of one chunk: the sum of the latency toxics that act, each with its jitter
    /// drawn again.
    fn delay(&self) -> Duration {
        let milliseconds = self
            .latencies
            .iter()
            .map(|&(latency, jitter)| {
                if jitter == 0 {
                    latency
                } else {
                    (latency + rand::random_range(0..=2 * jitter)).saturating_sub(jitter)
                }
            })
            .sum();
        Duration::from_millis(milliseconds)
    }
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt, duplex},
        time::sleep,
    };

    use super::*;
    use crate::toxic::Toxic;

    /// On tokio's paused clock, which moves only when every task waits: the instants are exact.
    #[tokio::test(start_paused = true)]
    async fn chunks_in_flight_wait_the_latency_once_not_one_after_another() {
        let (mut engine, from_engine) = duplex(1024);
        let (to_client, mut client) = duplex(1024);
        let latency = Installed {
            toxic: Toxic {
                name: "latency_downstream".into(),
                kind: ToxicKind::Latency {
                    latency: 200,
                    jitter: 0,
                },
                stream: Stream::Downstream,
                toxicity: 1.0,
            },
            revision: 0,
        };
        let (_toxics, chain) = watch::channel(Arc::new(vec![latency]));
        tokio::spawn(forward(from_engine, to_client, Stream::Downstream, chain));
        let start = Instant::now();

        tokio::spawn(async move {
            for _ in 0..5 {
                engine.write_all(b"x").await.unwrap();
                sleep(Duration::from_millis(20)).await;
            }
        });
        let mut arrivals = Vec::new();
        for _ in 0..5 {
            client.read_exact(&mut [0; 1]).await.unwrap();
            arrivals.push(start.elapsed().as_millis());
        }

        assert_eq!(arrivals, [200, 220, 240, 260, 280]);
    }
}
