//! The mailbox's SMTP server: the commands lettre and swaks use (RFC 5321), with the limits a
//! server needs against a client that never stops sending or never sends.

use std::{future::Future, io, sync::Arc, time::Duration};

use time::OffsetDateTime;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    task::JoinSet,
};

use super::{Mailbox, Message};

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

impl Mailbox {
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
                Some((address, _)) if mailbox.faults().rejects(address) => {
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

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
