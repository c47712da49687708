//! The mailbox: a small SMTP server that keeps what it receives in memory, and a page to read
//! it, so that email works in the lab and in tests with nothing installed. It stands for an
//! email provider, not for a mail server: nothing it receives is relayed anywhere.
//!
//! ```text
//! SMTP   EHLO/HELO, MAIL FROM, RCPT TO, DATA, RSET, NOOP, QUIT   (what lettre and swaks use)
//! GET  /mailbox            the messages as a page, newest first
//! GET  /mailbox/messages   {"received", "duplicates", "rejected", "messages": [...]}, oldest first
//! GET  /mailbox/faults, PUT /mailbox/faults
//!      {"error_rate": 0.0, "reject_recipients": ["nobody@example.com"], "latency_ms": 0}
//! ```
//!
//! Try it with `swaks --server 127.0.0.1:<port> --to a@example.com --header 'Subject: hi'`.
//!
//! **Deduplication by Message-ID,** as a provider with idempotency would: a message whose
//! Message-ID the mailbox already holds is answered 250 and counted, not kept again. The
//! notifier's sender puts its idempotency key in the Message-ID ([`super::email::message_id`]),
//! so a retry after a lost answer shows up here as a duplicate, not as a second email. Ids are
//! remembered for the last [`DEDUPE_WINDOW`] messages, more than the page keeps, so a benchmark
//! of that many notifications counts every duplicate; a provider's window is bounded too.
//!
//! **Fault switches,** like the SMS and push simulator's ([`super::simulator`]): `error_rate`
//! answers a message's data with 451 (try again later) without keeping it, `reject_recipients`
//! answers those addresses 550 (no such mailbox) at `RCPT TO`, and `latency_ms` waits after
//! keeping a message before answering 250, so a sender with a shorter timeout retries a message
//! that was delivered and the retry is deduplicated.
//!
//! **What it does not do:** TLS, AUTH, relaying, or MIME beyond a single text part. The subject's
//! RFC 2047 encoded words and a body in base64 or quoted-printable are decoded for the page, read
//! as UTF-8 (which is what lettre sends); a multipart body is shown as it arrived.

use std::{
    collections::{HashSet, VecDeque},
    future::Future,
    io,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::State,
    http::header,
    response::{Html, IntoResponse, Response},
    routing::get,
};
use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use platform::problem::{FieldError, Problem};
use quoted_printable::ParseMode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    task::JoinSet,
};

/// How many messages the page and [`Mailbox::messages`] keep, newest first out.
pub const DEFAULT_CAPACITY: usize = 1_000;
/// How many Message-IDs are remembered for deduplication.
pub const DEDUPE_WINDOW: usize = 100_000;

const HOSTNAME: &str = "mailbox.sdlab";
/// RFC 5321 §4.5.3.1.6: a line is at most 1000 octets, its CRLF included.
const MAX_LINE: usize = 1_000;
const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;
const MAX_RECIPIENTS: usize = 100;
/// RFC 5321 §4.5.3.2.7 gives a server 5 minutes of waiting for the client's next command.
const IDLE: Duration = Duration::from_secs(300);
/// A failed `accept` (out of file descriptors) fails again at once; waiting a little keeps the
/// loop from spinning on it.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// The probability of answering a message's data with 451 instead of keeping it.
    pub error_rate: f64,
    /// Addresses answered 550 at `RCPT TO`, compared without regard to case.
    pub reject_recipients: Vec<String>,
    /// How long to wait after keeping a message before answering 250.
    pub latency_ms: u64,
}

/// A message the mailbox kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    pub message_id: Option<String>,
    pub idempotency_key: Option<String>,
    /// The envelope's sender (`MAIL FROM`); empty for a bounce.
    pub from: String,
    /// The envelope's recipients (`RCPT TO`), which need not match the `To` header.
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Messages answered 250, repeats included.
    pub received: u64,
    /// Of those, repeats of a Message-ID already held, not kept again.
    pub duplicates: u64,
    /// Messages and recipients refused by a fault switch (451, 550).
    pub rejected: u64,
}

pub struct Mailbox {
    capacity: usize,
    // A std mutex, not tokio's: it is held for a few pushes and never across an `.await`.
    state: Mutex<Kept>,
    faults: Mutex<Faults>,
}

#[derive(Default)]
struct Kept {
    messages: VecDeque<Message>,
    seen: HashSet<String>,
    seen_order: VecDeque<String>,
    counts: Counts,
}

impl Mailbox {
    pub fn new() -> Arc<Self> {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    /// A mailbox that keeps the newest `capacity` messages.
    pub fn with_capacity(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            capacity,
            state: Mutex::default(),
            faults: Mutex::default(),
        })
    }

    /// The messages kept, oldest first.
    pub fn messages(&self) -> Vec<Message> {
        self.state
            .lock()
            .unwrap()
            .messages
            .iter()
            .cloned()
            .collect()
    }

    pub fn counts(&self) -> Counts {
        self.state.lock().unwrap().counts
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap() = faults;
    }

    pub fn faults(&self) -> Faults {
        self.faults.lock().unwrap().clone()
    }

    /// Keeps `message` unless its Message-ID is already held; true if it was kept.
    fn keep(&self, message: Message) -> bool {
        let mut state = self.state.lock().unwrap();
        state.counts.received += 1;
        if let Some(id) = &message.message_id {
            if !state.seen.insert(id.clone()) {
                state.counts.duplicates += 1;
                return false;
            }
            state.seen_order.push_back(id.clone());
            if state.seen_order.len() > DEDUPE_WINDOW
                && let Some(oldest) = state.seen_order.pop_front()
            {
                state.seen.remove(&oldest);
            }
        }
        state.messages.push_back(message);
        if state.messages.len() > self.capacity {
            state.messages.pop_front();
        }
        true
    }

    fn count_rejected(&self) {
        self.state.lock().unwrap().counts.rejected += 1;
    }

    /// Serves SMTP on `listener` until `shutdown` completes. Open sessions are then cut, not
    /// waited for: a client may idle on its connection for minutes, and a message cut before its
    /// 250 is one its sender will retry.
    pub fn serve_smtp(
        self: &Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let mailbox = self.clone();
        async move {
            let mut sessions = JoinSet::new();
            tokio::pin!(shutdown);
            loop {
                tokio::select! {
                    () = &mut shutdown => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, peer)) => {
                            let mailbox = mailbox.clone();
                            sessions.spawn(async move {
                                if let Err(err) = mailbox.session(stream).await {
                                    tracing::debug!(%peer, %err, "SMTP session ended by an error");
                                }
                            });
                        }
                        Err(err) => {
                            tracing::warn!(%err, "cannot accept an SMTP connection");
                            tokio::time::sleep(ACCEPT_BACKOFF).await;
                        }
                    },
                    Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
                }
            }
        }
    }

    async fn session(&self, stream: TcpStream) -> io::Result<()> {
        let mut connection = Connection::new(stream);
        let mut session = Session::default();
        connection
            .reply(&format!(
                "220 {HOSTNAME} ESMTP sdlab mailbox, a sink: nothing is relayed"
            ))
            .await?;
        while connection.next_line().await? {
            let line = String::from_utf8_lossy(connection.line.trim_ascii_end()).into_owned();
            match session.command(self, &line) {
                Step::Reply(reply) => connection.reply(&reply).await?,
                Step::Quit => {
                    connection.reply(&format!("221 {HOSTNAME} bye")).await?;
                    break;
                }
                Step::Data => {
                    connection
                        .reply("354 End data with <CR><LF>.<CR><LF>")
                        .await?;
                    let raw = match connection.data().await? {
                        Data::Message(raw) => raw,
                        Data::TooBig => {
                            session.reset();
                            connection
                                .reply(&format!("552 Message exceeds {MAX_MESSAGE_BYTES} bytes"))
                                .await?;
                            continue;
                        }
                        Data::Ended => break,
                    };
                    let (from, to) = session.reset();
                    let reply = self.receive(from, to, &raw).await;
                    connection.reply(&reply).await?;
                }
            }
        }
        Ok(())
    }

    /// What the mailbox answers to a complete message.
    async fn receive(&self, from: String, to: Vec<String>, raw: &[u8]) -> String {
        let faults = self.faults();
        if rand::random_bool(faults.error_rate) {
            self.count_rejected();
            return "451 Simulated failure (error_rate): try again later".to_owned();
        }
        let message = Message::parse(from, to, raw, OffsetDateTime::now_utc());
        let id = message.message_id.clone().unwrap_or_default();
        let kept = self.keep(message);
        if faults.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
        }
        if kept {
            format!("250 OK: kept {id}")
        } else {
            format!("250 OK: {id} is a repeat, kept once")
        }
    }

    /// `GET /mailbox`, `GET /mailbox/messages` and `GET`/`PUT /mailbox/faults`, to be merged into
    /// the router of whichever service runs the mailbox.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/mailbox", get(page))
            .route("/mailbox/messages", get(list))
            .route("/mailbox/faults", get(get_faults).put(put_faults))
            .with_state(self.clone())
    }
}

/// One SMTP conversation's state: who said hello, and the transaction being built.
#[derive(Default)]
struct Session {
    greeted: bool,
    from: Option<String>,
    to: Vec<String>,
}

enum Step {
    Reply(String),
    Data,
    Quit,
}

impl Session {
    /// Ends the transaction, returning its sender and recipients.
    fn reset(&mut self) -> (String, Vec<String>) {
        (
            self.from.take().unwrap_or_default(),
            std::mem::take(&mut self.to),
        )
    }

    fn command(&mut self, mailbox: &Mailbox, line: &str) -> Step {
        let (verb, argument) = line.split_once(' ').unwrap_or((line, ""));
        let argument = argument.trim();
        let reply = match verb.to_ascii_uppercase().as_str() {
            "EHLO" | "HELO" if argument.is_empty() => "501 Syntax: EHLO <domain>".to_owned(),
            "EHLO" => {
                self.reset();
                self.greeted = true;
                format!(
                    "250-{HOSTNAME} greets {argument}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE {MAX_MESSAGE_BYTES}"
                )
            }
            "HELO" => {
                self.reset();
                self.greeted = true;
                format!("250 {HOSTNAME}")
            }
            "MAIL" if !self.greeted => "503 Say EHLO first".to_owned(),
            "MAIL" if self.from.is_some() => "503 A transaction is already open".to_owned(),
            "MAIL" => match path(argument, "FROM:") {
                None => "501 Syntax: MAIL FROM:<address>".to_owned(),
                Some((_, parameters)) if declared_size(parameters) > MAX_MESSAGE_BYTES => {
                    format!("552 Message exceeds {MAX_MESSAGE_BYTES} bytes")
                }
                Some((address, _)) => {
                    self.from = Some(address.to_owned());
                    "250 OK".to_owned()
                }
            },
            "RCPT" if self.from.is_none() => "503 Need MAIL FROM first".to_owned(),
            "RCPT" => match path(argument, "TO:") {
                None | Some(("", _)) => "501 Syntax: RCPT TO:<address>".to_owned(),
                Some((address, _)) if is_rejected(&mailbox.faults(), address) => {
                    mailbox.count_rejected();
                    format!("550 No such mailbox: <{address}> (reject_recipients)")
                }
                Some(_) if self.to.len() >= MAX_RECIPIENTS => "452 Too many recipients".to_owned(),
                Some((address, _)) => {
                    self.to.push(address.to_owned());
                    "250 OK".to_owned()
                }
            },
            "DATA" if self.to.is_empty() => "503 Need RCPT TO first".to_owned(),
            "DATA" => return Step::Data,
            "RSET" => {
                self.reset();
                "250 OK".to_owned()
            }
            "NOOP" => "250 OK".to_owned(),
            "QUIT" => return Step::Quit,
            _ => "500 Command not recognised".to_owned(),
        };
        Step::Reply(reply)
    }
}

/// The address in `FROM:<a@example.com> SIZE=120` (or `TO:<…>`), and the parameters after it.
fn path<'a>(argument: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let head = argument.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let (address, parameters) = argument[prefix.len()..]
        .trim_start()
        .strip_prefix('<')?
        .split_once('>')?;
    Some((address, parameters.trim()))
}

/// The `SIZE=` a client declared with `MAIL FROM` (RFC 1870), or 0.
fn declared_size(parameters: &str) -> usize {
    parameters
        .split_ascii_whitespace()
        .find_map(|parameter| {
            let (name, value) = parameter.split_once('=')?;
            name.eq_ignore_ascii_case("SIZE")
                .then(|| value.parse().ok())?
        })
        .unwrap_or(0)
}

fn is_rejected(faults: &Faults, address: &str) -> bool {
    faults
        .reject_recipients
        .iter()
        .any(|rejected| rejected.eq_ignore_ascii_case(address))
}

/// The socket, read line by line with the limits a server needs against a client that never
/// stops sending or never sends.
struct Connection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    line: Vec<u8>,
}

enum Data {
    Message(Vec<u8>),
    TooBig,
    Ended,
}

impl Connection {
    fn new(stream: TcpStream) -> Self {
        let (reader, writer) = stream.into_split();
        Self {
            reader: BufReader::new(reader),
            writer,
            line: Vec::new(),
        }
    }

    async fn reply(&mut self, reply: &str) -> io::Result<()> {
        self.writer.write_all(reply.as_bytes()).await?;
        self.writer.write_all(b"\r\n").await
    }

    /// Reads the next line, its ending included, into `self.line`. False when the session is
    /// over: the client left, or was told why it is being dropped (idle too long, a line too
    /// long to be SMTP).
    async fn next_line(&mut self) -> io::Result<bool> {
        self.line.clear();
        let read = {
            let mut limited = (&mut self.reader).take(MAX_LINE as u64);
            tokio::time::timeout(IDLE, limited.read_until(b'\n', &mut self.line)).await
        };
        match read {
            Err(_) => {
                self.reply(&format!("421 {HOSTNAME} idle too long, closing"))
                    .await?;
                Ok(false)
            }
            Ok(read) => {
                let complete = read? > 0 && self.line.ends_with(b"\n");
                if !complete && self.line.len() >= MAX_LINE {
                    self.reply(&format!("500 Line longer than {MAX_LINE} octets"))
                        .await?;
                }
                Ok(complete)
            }
        }
    }

    /// The message after `354`, up to the line holding a lone `.`, dot-unstuffed (RFC 5321
    /// §4.5.2: a sender doubles a line's leading `.`, so that no line of the message ends it).
    /// Past the size limit the rest is read and dropped, so that the client still gets its reply.
    async fn data(&mut self) -> io::Result<Data> {
        let mut message = Vec::new();
        let mut too_big = false;
        loop {
            if !self.next_line().await? {
                return Ok(Data::Ended);
            }
            if matches!(self.line.as_slice(), b".\r\n" | b".\n") {
                break;
            }
            let line = self.line.strip_prefix(b".").unwrap_or(&self.line);
            too_big = too_big || message.len() + line.len() > MAX_MESSAGE_BYTES;
            if !too_big {
                message.extend_from_slice(line);
            }
        }
        if too_big {
            return Ok(Data::TooBig);
        }
        // The CRLF before the final `.` ends the last line of the message, which lettre and
        // swaks add whether or not the body ended with one.
        if message.ends_with(b"\r\n") {
            message.truncate(message.len() - 2);
        }
        Ok(Data::Message(message))
    }
}

impl Message {
    fn parse(from: String, to: Vec<String>, raw: &[u8], received_at: OffsetDateTime) -> Self {
        let text = String::from_utf8_lossy(raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .or_else(|| text.split_once("\n\n"))
            .unwrap_or((&text, ""));
        let headers = unfolded(head);
        let header = |name: &str| {
            headers
                .iter()
                .find(|(found, _)| found.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_str())
        };
        Self {
            received_at,
            message_id: header("Message-ID").map(str::to_owned),
            idempotency_key: header("Idempotency-Key").map(str::to_owned),
            from,
            to,
            subject: header("Subject").map(decode_words).unwrap_or_default(),
            body: decode_body(
                body,
                header("Content-Transfer-Encoding"),
                header("Content-Type"),
            )
            .replace("\r\n", "\n"),
        }
    }
}

/// The header fields, with folded values (continued on lines that start with white space)
/// joined back.
fn unfolded(head: &str) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    headers
}

/// A header value with its RFC 2047 encoded words (`=?utf-8?b?…?=`, as lettre writes a subject
/// that is not ASCII) decoded. White space between two encoded words is dropped, as the RFC says:
/// it is where a long value was folded, not part of the text.
fn decode_words(value: &str) -> String {
    let mut decoded = String::with_capacity(value.len());
    let mut rest = value;
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, candidate) = rest.split_at(start);
        match encoded_word(candidate) {
            Some((text, length)) => {
                if !(after_word && before.trim().is_empty()) {
                    decoded.push_str(before);
                }
                decoded.push_str(&text);
                rest = &candidate[length..];
                after_word = true;
            }
            None => {
                decoded.push_str(before);
                decoded.push_str("=?");
                rest = &candidate[2..];
                after_word = false;
            }
        }
    }
    decoded.push_str(rest);
    decoded
}

/// The encoded word `=?charset?B|Q?text?=` at the start of `text`: its text and its length. The
/// charset is read as UTF-8 whatever it says; a sink that shows lettre's mail needs no more.
fn encoded_word(text: &str) -> Option<(String, usize)> {
    let inner = text.strip_prefix("=?")?;
    let (charset, inner) = inner.split_once('?')?;
    let (encoding, inner) = inner.split_once('?')?;
    let payload = &inner[..inner.find("?=")?];
    let bytes = match encoding {
        "B" | "b" => BASE64.decode(payload).ok()?,
        // Q is quoted-printable where `_` stands for a space.
        "Q" | "q" => quoted_printable::decode(payload.replace('_', " "), ParseMode::Robust).ok()?,
        _ => return None,
    };
    let length = "=?".len() + charset.len() + 1 + encoding.len() + 1 + payload.len() + "?=".len();
    Some((String::from_utf8_lossy(&bytes).into_owned(), length))
}

fn decode_body(body: &str, transfer_encoding: Option<&str>, content_type: Option<&str>) -> String {
    let multipart = content_type.is_some_and(|value| {
        value
            .trim_start()
            .get(..10)
            .is_some_and(|start| start.eq_ignore_ascii_case("multipart/"))
    });
    if multipart {
        return body.to_owned();
    }
    let decoded = match transfer_encoding.map(str::to_ascii_lowercase).as_deref() {
        Some("base64") => {
            let compact: String = body.split_ascii_whitespace().collect();
            BASE64.decode(compact).ok()
        }
        Some("quoted-printable") => quoted_printable::decode(body, ParseMode::Robust).ok(),
        _ => None,
    };
    decoded.map_or_else(
        || body.to_owned(),
        |bytes| String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// The page shows what strangers wrote (any sender can put `<script>` in a subject): every value
/// goes through minijinja's HTML auto-escaping, which a template named `.html` turns on, and the
/// Content-Security-Policy refuses scripts and remote content should anything get through.
const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="5">
<title>Mailbox · sdlab</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: .4rem .6rem; text-align: left; vertical-align: top; }
pre { margin: 0; white-space: pre-wrap; font: 13px ui-monospace, monospace; }
.meta { color: #666; }
</style>
</head>
<body>
<h1>Mailbox</h1>
<p class="meta">Received {{ counts.received }} (of which {{ counts.duplicates }} repeated a Message-ID and were not kept again); refused {{ counts.rejected }} by fault switches. The newest {{ capacity }} are kept, and are also at <a href="/mailbox/messages">/mailbox/messages</a> as JSON. This page reloads every 5 seconds.</p>
{% if messages %}
<table>
<thead><tr><th>Received</th><th>From</th><th>To</th><th>Subject</th><th>Body</th></tr></thead>
<tbody>
{% for message in messages %}
<tr>
<td>{{ message.received_at[:19] | replace("T", " ") }} UTC</td>
<td>{{ message.from }}</td>
<td>{{ message.to | join(", ") }}</td>
<td>{{ message.subject }}</td>
<td><pre>{{ message.body }}</pre></td>
</tr>
{% endfor %}
</tbody>
</table>
{% else %}
<p>No mail yet.</p>
{% endif %}
</body>
</html>
"#;

const PAGE_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'";

async fn page(State(mailbox): State<Arc<Mailbox>>) -> Result<Response, Problem> {
    let mut messages = mailbox.messages();
    messages.reverse();
    let html = minijinja::Environment::new()
        .render_named_str(
            "mailbox.html",
            PAGE,
            minijinja::context! {
                messages,
                counts => mailbox.counts(),
                capacity => mailbox.capacity,
            },
        )
        .map_err(|err| Problem::internal(&err))?;
    Ok(([(header::CONTENT_SECURITY_POLICY, PAGE_POLICY)], Html(html)).into_response())
}

#[derive(Serialize)]
struct Listing {
    #[serde(flatten)]
    counts: Counts,
    messages: Vec<Message>,
}

async fn list(State(mailbox): State<Arc<Mailbox>>) -> Json<Listing> {
    Json(Listing {
        counts: mailbox.counts(),
        messages: mailbox.messages(),
    })
}

async fn get_faults(State(mailbox): State<Arc<Mailbox>>) -> Json<Faults> {
    Json(mailbox.faults())
}

async fn put_faults(
    State(mailbox): State<Arc<Mailbox>>,
    platform::extract::Json(faults): platform::extract::Json<Faults>,
) -> Result<Json<Faults>, Problem> {
    if !(0.0..=1.0).contains(&faults.error_rate) {
        return Err(Problem::invalid_field(FieldError::body(
            "error_rate",
            "must be a probability from 0 to 1",
        )));
    }
    mailbox.set_faults(faults.clone());
    Ok(Json(faults))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::{
        body::Body,
        http::{Method, Request, StatusCode},
    };
    use platform::testing::http::{json_request, send_to};
    use serde_json::json;

    use super::*;

    /// Every read in these tests gives up after this, so that a server that stops answering
    /// fails the test instead of hanging it.
    const GUARD: Duration = Duration::from_secs(10);

    async fn serve(mailbox: &Arc<Mailbox>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(mailbox.serve_smtp(listener, std::future::pending()));
        address
    }

    /// An SMTP client that types what it is given, as swaks or telnet would.
    struct Client {
        reader: BufReader<OwnedReadHalf>,
        writer: OwnedWriteHalf,
    }

    impl Client {
        async fn connect(address: SocketAddr) -> Self {
            let (reader, writer) = TcpStream::connect(address).await.unwrap().into_split();
            let mut client = Self {
                reader: BufReader::new(reader),
                writer,
            };
            let greeting = client.reply().await;
            assert!(greeting.starts_with("220 "), "{greeting}");
            client
        }

        /// Sends `line` and returns the whole reply, continuation lines included.
        async fn send(&mut self, line: &str) -> String {
            self.write(&format!("{line}\r\n")).await;
            self.reply().await
        }

        async fn write(&mut self, text: &str) {
            self.writer.write_all(text.as_bytes()).await.unwrap();
        }

        async fn reply(&mut self) -> String {
            let mut reply = String::new();
            loop {
                let start = reply.len();
                let read = tokio::time::timeout(GUARD, self.reader.read_line(&mut reply));
                assert!(read.await.unwrap().unwrap() > 0, "closed after {reply:?}");
                if reply.as_bytes().get(start + 3) != Some(&b'-') {
                    return reply;
                }
            }
        }

        /// One whole transaction; returns the reply to the data.
        async fn deliver(&mut self, from: &str, to: &str, data: &str) -> String {
            assert!(
                self.send(&format!("MAIL FROM:<{from}>"))
                    .await
                    .starts_with("250")
            );
            assert!(
                self.send(&format!("RCPT TO:<{to}>"))
                    .await
                    .starts_with("250")
            );
            assert!(self.send("DATA").await.starts_with("354"));
            self.write(data).await;
            self.send(".").await
        }
    }

    async fn page(mailbox: &Arc<Mailbox>) -> (String, String) {
        let request = Request::get("/mailbox").body(Body::empty()).unwrap();
        let response = send_to(&mailbox.router(), request).await;
        assert_eq!(response.status, StatusCode::OK);
        (
            response.header("content-security-policy").to_owned(),
            String::from_utf8(response.body.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn a_message_typed_as_swaks_sends_it_is_kept_with_its_dot_stuffed_lines_restored() {
        let mailbox = Mailbox::new();
        let mut client = Client::connect(serve(&mailbox).await).await;

        let ehlo = client.send("EHLO client.example").await;
        let reply = client
            .deliver(
                "ops@example.com",
                "ada@example.com",
                "Message-ID: <m1@example.com>\r\nSubject: Hello\r\n\r\nline one\r\n..starts with a dot\r\n..\r\n",
            )
            .await;

        assert!(
            ehlo.starts_with("250-") && ehlo.contains("8BITMIME"),
            "{ehlo}"
        );
        assert!(reply.starts_with("250 "), "{reply}");
        let [message] = mailbox.messages().try_into().unwrap();
        assert_eq!(message.from, "ops@example.com");
        assert_eq!(message.to, ["ada@example.com"]);
        assert_eq!(message.subject, "Hello");
        assert_eq!(message.message_id.as_deref(), Some("<m1@example.com>"));
        assert_eq!(message.body, "line one\n.starts with a dot\n.");
    }

    #[tokio::test]
    async fn commands_out_of_order_are_refused_and_rset_abandons_the_transaction() {
        let mailbox = Mailbox::new();
        let mut client = Client::connect(serve(&mailbox).await).await;

        let mail_before_hello = client.send("MAIL FROM:<a@example.com>").await;
        let helo = client.send("HELO client.example").await;
        let rcpt_before_mail = client.send("RCPT TO:<b@example.com>").await;
        let no_brackets = client.send("MAIL FROM:a@example.com").await;
        client.send("MAIL FROM:<a@example.com>").await;
        let nested = client.send("MAIL FROM:<a@example.com>").await;
        client.send("RCPT TO:<b@example.com>").await;
        let rset = client.send("RSET").await;
        let data_after_rset = client.send("DATA").await;
        let noop = client.send("NOOP").await;
        let unknown = client.send("HELP").await;
        let quit = client.send("QUIT").await;

        for (reply, code) in [
            (&mail_before_hello, "503"),
            (&helo, "250"),
            (&rcpt_before_mail, "503"),
            (&no_brackets, "501"),
            (&nested, "503"),
            (&rset, "250"),
            (&data_after_rset, "503"),
            (&noop, "250"),
            (&unknown, "500"),
            (&quit, "221"),
        ] {
            assert!(reply.starts_with(code), "expected {code}, got {reply}");
        }
        assert!(mailbox.messages().is_empty());
    }

    #[tokio::test]
    async fn html_in_a_message_is_escaped_on_the_page() {
        let mailbox = Mailbox::new();
        let mut client = Client::connect(serve(&mailbox).await).await;
        client.send("EHLO client.example").await;

        client
            .deliver(
                "mallory@example.com",
                "ada@example.com",
                "Subject: <script>alert(1)</script>\r\n\r\n<img src=x onerror=alert(2)> & more\r\n",
            )
            .await;
        let (policy, html) = page(&mailbox).await;

        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("&lt;img src=x onerror=alert(2)&gt; &amp; more"),
            "{html}"
        );
        assert!(
            !html.contains("<script>") && !html.contains("<img"),
            "{html}"
        );
        assert_eq!(policy, PAGE_POLICY);
    }

    #[tokio::test]
    async fn only_the_newest_messages_are_kept_but_every_one_is_counted() {
        let mailbox = Mailbox::with_capacity(2);
        let mut client = Client::connect(serve(&mailbox).await).await;
        client.send("EHLO client.example").await;

        for n in 1..=3 {
            let data =
                format!("Message-ID: <{n}@example.com>\r\nSubject: number {n}\r\n\r\nbody\r\n");
            client
                .deliver("a@example.com", "b@example.com", &data)
                .await;
        }

        let subjects: Vec<_> = mailbox.messages().into_iter().map(|m| m.subject).collect();
        assert_eq!(subjects, ["number 2", "number 3"]);
        assert_eq!(mailbox.counts().received, 3);
    }

    #[tokio::test]
    async fn a_message_larger_than_the_limit_is_refused_when_declared_and_when_sent() {
        let mailbox = Mailbox::new();
        let mut client = Client::connect(serve(&mailbox).await).await;
        client.send("EHLO client.example").await;

        let declared = client
            .send(&format!(
                "MAIL FROM:<a@example.com> SIZE={}",
                MAX_MESSAGE_BYTES + 1
            ))
            .await;
        client.send("MAIL FROM:<a@example.com>").await;
        client.send("RCPT TO:<b@example.com>").await;
        client.send("DATA").await;
        let line = format!("{}\r\n", "x".repeat(998));
        for _ in 0..=MAX_MESSAGE_BYTES / line.len() {
            client.write(&line).await;
        }
        let sent = client.send(".").await;
        let after = client.send("NOOP").await;

        assert!(declared.starts_with("552"), "{declared}");
        assert!(sent.starts_with("552"), "{sent}");
        assert!(after.starts_with("250"), "the session goes on: {after}");
        assert!(mailbox.messages().is_empty());
    }

    #[test]
    fn encoded_subjects_and_bodies_are_decoded_for_reading() {
        let raw = "Subject: =?utf-8?b?UmXDp3U=?=\r\n =?utf-8?q?_=C2=A312?= now\r\n\
                   Content-Transfer-Encoding: quoted-printable\r\n\r\n\
                   Caf=C3=A9 au lait, a very long line that goes=\r\n on\r\n";

        let message = Message::parse(
            String::new(),
            Vec::new(),
            raw.as_bytes(),
            OffsetDateTime::UNIX_EPOCH,
        );

        assert_eq!(message.subject, "Reçu £12 now");
        assert_eq!(
            message.body,
            "Café au lait, a very long line that goes on\n"
        );
    }

    #[tokio::test]
    async fn faults_are_set_over_http_and_a_rate_outside_zero_to_one_is_refused() {
        let mailbox = Mailbox::new();
        let router = mailbox.router();
        let put = |body: serde_json::Value| {
            json_request(Method::PUT, "/mailbox/faults", None, body.to_string())
        };

        let refused = send_to(&router, put(json!({ "error_rate": 1.5 }))).await;
        let accepted = send_to(
            &router,
            put(json!({ "reject_recipients": ["nobody@example.com"], "latency_ms": 5 })),
        )
        .await;

        refused.invalid_field("error_rate");
        assert_eq!(accepted.status, StatusCode::OK);
        assert_eq!(
            mailbox.faults(),
            Faults {
                error_rate: 0.0,
                reject_recipients: vec!["nobody@example.com".to_owned()],
                latency_ms: 5,
            }
        );
    }

    #[tokio::test]
    async fn once_shutdown_completes_the_port_is_closed() {
        let mailbox = Mailbox::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(mailbox.serve_smtp(listener, async {
            let _ = stopped.await;
        }));
        Client::connect(address).await;

        stop.send(()).unwrap();
        tokio::time::timeout(GUARD, server).await.unwrap().unwrap();

        assert!(TcpStream::connect(address).await.is_err());
    }
}
