//! Email over SMTP, with lettre, to a server given as a URL:
//!
//! ```text
//! smtp://127.0.0.1:2525                        plain, as local sinks (ours, MailHog, Mailpit) take it
//! smtp://user:pass@relay:587?tls=starttls      STARTTLS, required: no plaintext fallback
//! smtps://user:pass@relay:465                  TLS from the first byte
//! ```
//!
//! TLS is rustls with Mozilla's root certificates (`webpki-roots`), so nothing depends on the
//! host's OpenSSL or its certificate store; a relay with a private CA is not trusted. A URL with
//! credentials but no TLS is refused, since the password would cross the network in clear, and so
//! is `tls=opportunistic`: STARTTLS that falls back to plaintext when the server does not offer
//! it can be stripped by anyone on the path, who then reads every message.
//!
//! **Idempotency.** Each message carries its key (`<notification id>:email`) twice: verbatim in
//! an `Idempotency-Key` header, and in the `Message-ID` ([`message_id`]), the header mail systems
//! already use to recognise a message. The case it covers is the classic one: the server stored
//! the message, and its `250` after the data was lost or came after our timeout, so we retry. A
//! receiver that drops a Message-ID it already holds (our sink, [`super::mailbox`], does; some
//! mail stores merge such copies) keeps one. A plain relay such as Postfix promises nothing of
//! the kind, so on the wire email stays at-least-once.
//!
//! **Failures, sorted for the retry logic** (`classify`): a 5xx reply (unknown mailbox, message
//! refused) is [`DeliveryError::Permanent`], as is an address that does not parse; a 4xx reply
//! (greylisting, a full queue, "try again later"), a timeout, a refused or dropped connection, a
//! failed TLS handshake and a server that lacks STARTTLS or AUTH are
//! [`DeliveryError::Retryable`]. The line is drawn at "can this message ever be delivered": a
//! broken relay breaks every message, is fixed by an operator, and should not send the whole
//! queue to dead letters meanwhile.
//!
//! **One connection per message, no pool.** lettre's async transport times out connecting but
//! not reading, so a server that stops answering must be cut off by a `tokio::time::timeout`
//! around the whole send. With lettre's connection pool that is unsafe: a send cancelled while
//! waiting for the server's reply puts its connection back in the pool with the reply unread, and
//! the next message reads that stale reply as its own, every reply after it off by one. Without
//! the pool a cancelled send drops its connection, and the price is a connection (and a TLS
//! handshake) per message, which a relay a few milliseconds away absorbs.

use std::time::Duration;

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{
        Mailbox as Address,
        header::{ContentType, HeaderName, HeaderValue},
    },
    transport::smtp::{
        self,
        authentication::Credentials,
        client::{Tls, TlsParameters},
    },
};
use url::Url;

use super::DeliveryError;

/// The right-hand side of every Message-ID we make.
pub const MESSAGE_ID_DOMAIN: &str = "sdlab.notifier";

pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// Why an SMTP server URL or a sender address cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EmailConfigError {
    #[error("the SMTP server URL is not a URL: {0}")]
    Url(#[from] url::ParseError),
    #[error("unsupported SMTP server URL: {0}")]
    Unsupported(String),
    #[error("the sender address {address:?} does not parse: {reason}")]
    From { address: String, reason: String },
    #[error("TLS cannot be set up for {host}: {reason}")]
    Tls { host: String, reason: String },
}

#[derive(Clone)]
pub struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Address,
    timeout: Duration,
}

impl EmailSender {
    /// A sender to `server` (see the module doc for the URL forms), from the address `from`
    /// (`"Sdlab <noreply@sdlab.test>"` or a bare address). A send that has not finished after
    /// `timeout`, connection included, is given up as retryable.
    pub fn new(server: &str, from: &str, timeout: Duration) -> Result<Self, EmailConfigError> {
        let url = Url::parse(server)?;
        let host = url
            .host_str()
            .ok_or_else(|| EmailConfigError::Unsupported(format!("{server} names no host")))?
            .trim_matches(['[', ']']);
        let tls_parameters = || {
            TlsParameters::new(host.to_owned()).map_err(|err| EmailConfigError::Tls {
                host: host.to_owned(),
                reason: err.to_string(),
            })
        };
        let tls_query = url
            .query_pairs()
            .find(|(name, _)| name == "tls")
            .map(|(_, value)| value);
        let (tls, default_port) = match (url.scheme(), tls_query.as_deref()) {
            ("smtp", None) => (Tls::None, 25),
            ("smtp", Some("starttls")) => (Tls::Required(tls_parameters()?), 587),
            ("smtps", None) => (Tls::Wrapper(tls_parameters()?), 465),
            (scheme, tls) => {
                return Err(EmailConfigError::Unsupported(format!(
                    "scheme {scheme:?} with tls={tls:?}; use smtp://, smtp://…?tls=starttls or smtps://"
                )));
            }
        };
        // "Dangerous" because it starts without TLS: the URL has just decided the TLS.
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(url.port().unwrap_or(default_port))
            .timeout(Some(timeout));
        let encrypted = !matches!(tls, Tls::None);
        builder = builder.tls(tls);
        if let Some(password) = url.password() {
            if !encrypted {
                return Err(EmailConfigError::Unsupported(
                    "credentials over an unencrypted connection; use tls=starttls or smtps://"
                        .to_owned(),
                ));
            }
            builder = builder.credentials(Credentials::new(
                percent_decoded(url.username())?,
                percent_decoded(password)?,
            ));
        }
        let from = from
            .parse::<Address>()
            .map_err(|err| EmailConfigError::From {
                address: from.to_owned(),
                reason: err.to_string(),
            })?;
        Ok(Self {
            transport: builder.build(),
            from,
            timeout,
        })
    }

    /// Sends one email. `idempotency_key` (notification id + ":email") goes in the Message-ID
    /// (`<key@sdlab.notifier>`) and an `Idempotency-Key` header, so a receiver can drop a repeat.
    // The key identifies the delivery in logs; the address, subject and body are personal data.
    #[tracing::instrument(skip_all, fields(idempotency_key = %idempotency_key))]
    pub async fn send(
        &self,
        idempotency_key: &str,
        to: &str,
        subject: &str,
        body: &str,
    ) -> Result<(), DeliveryError> {
        let to = to
            .parse::<Address>()
            .map_err(|err| DeliveryError::Permanent(format!("bad address {to:?}: {err}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(message_id(idempotency_key)))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str(IDEMPOTENCY_KEY_HEADER),
                idempotency_key.to_owned(),
            ))
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|err| {
                DeliveryError::Permanent(format!("the message cannot be built: {err}"))
            })?;
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(classify(&err)),
            Err(_) => Err(DeliveryError::Retryable(format!(
                "the SMTP server did not finish within {:?}",
                self.timeout
            ))),
        }
    }
}

/// A 5xx reply is permanent; everything else that can go wrong on the way is retryable (the
/// module doc says why).
fn classify(err: &smtp::Error) -> DeliveryError {
    // lettre's message already ends with its source's, so `error_chain` would say it twice.
    let message = err.to_string();
    if err.is_permanent() {
        DeliveryError::Permanent(message)
    } else {
        DeliveryError::Retryable(message)
    }
}

/// `<key@sdlab.notifier>`. RFC 5322 allows only atom characters left of the `@`, and the `:` of
/// `<notification id>:email` is not one, so every byte other than a letter, a digit, `-` or `_`
/// is written `%XX`: `0190…:email` becomes `<0190…%3Aemail@sdlab.notifier>`. `%` itself is
/// encoded, so two keys never share an id.
pub fn message_id(idempotency_key: &str) -> String {
    let mut left = String::with_capacity(idempotency_key.len() + 8);
    for byte in idempotency_key.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            left.push(char::from(byte));
        } else {
            left.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("<{left}@{MESSAGE_ID_DOMAIN}>")
}

/// `url` leaves a user name and password percent-encoded: an `@` in a password arrives as `%40`.
fn percent_decoded(text: &str) -> Result<String, EmailConfigError> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| EmailConfigError::Unsupported("credentials that are not UTF-8".to_owned()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::{
        body::Body,
        http::{Request, StatusCode},
    };
    use platform::testing::http::send_to;
    use tokio::net::TcpListener;

    use super::*;
    use crate::providers::mailbox::{Faults, Mailbox};

    const FROM: &str = "Sdlab <noreply@sdlab.test>";
    /// How long the tests wait for a condition before failing.
    const GUARD: Duration = Duration::from_secs(10);

    /// A mailbox serving SMTP on a free port, and its `smtp://` URL.
    async fn mailbox() -> (Arc<Mailbox>, String) {
        let mailbox = Mailbox::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        tokio::spawn(mailbox.serve_smtp(listener, std::future::pending()));
        (mailbox, url)
    }

    fn sender(url: &str) -> EmailSender {
        EmailSender::new(url, FROM, GUARD).unwrap()
    }

    async fn get(mailbox: &Arc<Mailbox>, path: &str) -> String {
        let response = send_to(
            &mailbox.router(),
            Request::get(path).body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(response.status, StatusCode::OK);
        String::from_utf8(response.body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn an_email_reaches_the_mailbox_and_its_page_and_json_show_it() {
        let (mailbox, url) = mailbox().await;

        sender(&url)
            .send(
                "0190c3a4-7b1e-7000-8000-000000000001:email",
                "Ada Lovelace <ada@example.com>",
                "Your receipt — £12.50",
                "Hello Ada,\nthank you for your payment.\n",
            )
            .await
            .unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&get(&mailbox, "/mailbox/messages").await).unwrap();
        let page = get(&mailbox, "/mailbox").await;

        let message = &json["messages"][0];
        assert_eq!(message["to"], serde_json::json!(["ada@example.com"]));
        assert_eq!(message["from"], "noreply@sdlab.test");
        assert_eq!(message["subject"], "Your receipt — £12.50");
        assert_eq!(message["body"], "Hello Ada,\nthank you for your payment.\n");
        assert_eq!(
            message["idempotency_key"],
            "0190c3a4-7b1e-7000-8000-000000000001:email"
        );
        assert_eq!(
            message["message_id"],
            "<0190c3a4-7b1e-7000-8000-000000000001%3Aemail@sdlab.notifier>"
        );
        assert_eq!(json["received"], 1);
        for shown in [
            "ada@example.com",
            "Your receipt — £12.50",
            "thank you for your payment.",
        ] {
            assert!(page.contains(shown), "{shown} is not on the page:\n{page}");
        }
    }

    #[tokio::test]
    async fn the_same_idempotency_key_sent_twice_is_kept_once() {
        let (mailbox, url) = mailbox().await;
        let sender = sender(&url);

        for key in ["n1:email", "n1:email", "n2:email"] {
            sender
                .send(key, "ada@example.com", "Hi", "Hello")
                .await
                .unwrap();
        }

        let keys: Vec<_> = mailbox
            .messages()
            .into_iter()
            .map(|m| m.idempotency_key.unwrap())
            .collect();
        assert_eq!(keys, ["n1:email", "n2:email"]);
        let counts = mailbox.counts();
        assert_eq!((counts.received, counts.duplicates), (3, 1));
    }

    #[tokio::test]
    async fn a_451_is_retryable_and_a_550_is_permanent() {
        let (mailbox, url) = mailbox().await;
        let sender = sender(&url);

        mailbox.set_faults(Faults {
            error_rate: 1.0,
            ..Faults::default()
        });
        let try_again_later = sender.send("k1", "ada@example.com", "Hi", "x").await;
        mailbox.set_faults(Faults {
            reject_recipients: vec!["Nobody@Example.com".to_owned()],
            ..Faults::default()
        });
        let no_such_mailbox = sender.send("k2", "nobody@example.com", "Hi", "x").await;
        let someone_else = sender.send("k3", "ada@example.com", "Hi", "x").await;

        assert!(
            matches!(&try_again_later, Err(DeliveryError::Retryable(e)) if e.contains("451")),
            "{try_again_later:?}"
        );
        assert!(
            matches!(&no_such_mailbox, Err(DeliveryError::Permanent(e)) if e.contains("550")),
            "{no_such_mailbox:?}"
        );
        assert!(someone_else.is_ok());
        assert_eq!(mailbox.counts().rejected, 2);
    }

    #[tokio::test]
    async fn a_closed_port_is_retryable_and_a_bad_address_is_permanent() {
        let closed = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            format!("smtp://{}", listener.local_addr().unwrap())
        };
        let (mailbox, url) = mailbox().await;

        let refused = sender(&closed)
            .send("k1", "ada@example.com", "Hi", "x")
            .await;
        let bad_address = sender(&url).send("k2", "ada at example", "Hi", "x").await;

        assert!(
            matches!(refused, Err(DeliveryError::Retryable(_))),
            "{refused:?}"
        );
        assert!(
            matches!(bad_address, Err(DeliveryError::Permanent(_))),
            "{bad_address:?}"
        );
        assert_eq!(mailbox.counts().received, 0);
    }

    #[tokio::test]
    async fn an_answer_later_than_the_timeout_is_retryable_and_the_retry_is_not_kept_twice() {
        let (mailbox, url) = mailbox().await;
        let impatient = EmailSender::new(&url, FROM, Duration::from_secs(1)).unwrap();
        mailbox.set_faults(Faults {
            latency_ms: 60_000,
            ..Faults::default()
        });

        let first = impatient
            .send("n1:email", "ada@example.com", "Hi", "x")
            .await;
        let delivered = async {
            while mailbox.counts().received == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(GUARD, delivered)
            .await
            .expect("the first attempt reached the mailbox");
        mailbox.set_faults(Faults::default());
        let retry = impatient
            .send("n1:email", "ada@example.com", "Hi", "x")
            .await;

        assert!(
            matches!(first, Err(DeliveryError::Retryable(_))),
            "{first:?}"
        );
        assert!(retry.is_ok(), "{retry:?}");
        assert_eq!(mailbox.messages().len(), 1);
        assert_eq!(mailbox.counts().duplicates, 1);
    }

    #[tokio::test]
    async fn tls_urls_never_fall_back_to_plaintext() {
        let (mailbox, url) = mailbox().await;
        let starttls = sender(&format!("{url}?tls=starttls"));
        let smtps = sender(&url.replace("smtp://", "smtps://"));

        let without_starttls = starttls.send("k1", "ada@example.com", "Hi", "x").await;
        let without_tls = smtps.send("k2", "ada@example.com", "Hi", "x").await;

        assert!(
            matches!(&without_starttls, Err(DeliveryError::Retryable(e)) if e.contains("STARTTLS")),
            "{without_starttls:?}"
        );
        assert!(
            matches!(without_tls, Err(DeliveryError::Retryable(_))),
            "{without_tls:?}"
        );
        assert_eq!(mailbox.counts().received, 0);
    }

    /// Against an SMTP server we did not write when `SMTP_URL` names one (aiosmtpd, Mailpit, a
    /// relay), so that the sender is not only ever checked against our own mailbox.
    #[tokio::test]
    async fn the_server_in_smtp_url_or_else_the_mailbox_accepts_an_email() {
        let (_mailbox, url) = match std::env::var("SMTP_URL") {
            Ok(url) => (None, url),
            Err(_) => {
                let (mailbox, url) = mailbox().await;
                (Some(mailbox), url)
            }
        };

        let sent = sender(&url)
            .send(
                &format!("{}:email", uuid::Uuid::now_v7()),
                "ada@example.com",
                "Your receipt — £12.50",
                "Sent by the notifier's tests.\n",
            )
            .await;

        assert!(sent.is_ok(), "{url}: {sent:?}");
    }

    #[test]
    fn urls_that_would_send_in_clear_or_are_not_smtp_are_refused() {
        let new = |url: &str| EmailSender::new(url, FROM, GUARD);

        for accepted in [
            "smtp://127.0.0.1:2525",
            "smtp://relay.example.com?tls=starttls",
            "smtp://user:p%40ss@relay.example.com:587?tls=starttls",
            "smtps://user:secret@relay.example.com",
        ] {
            assert!(new(accepted).is_ok(), "{accepted}");
        }
        for refused in [
            "http://relay.example.com",
            "smtp://relay.example.com?tls=opportunistic",
            "smtp://user:secret@relay.example.com:25",
        ] {
            assert!(
                matches!(new(refused), Err(EmailConfigError::Unsupported(_))),
                "{refused}"
            );
        }
        assert!(matches!(
            new("relay:25"),
            Err(EmailConfigError::Unsupported(_))
        ));
        assert!(matches!(
            EmailSender::new("smtp://127.0.0.1", "no address", GUARD),
            Err(EmailConfigError::From { .. })
        ));
    }

    #[test]
    fn the_key_is_in_the_message_id_in_a_form_rfc_5322_accepts() {
        assert_eq!(
            message_id("0190c3a4-7b1e:email"),
            "<0190c3a4-7b1e%3Aemail@sdlab.notifier>"
        );
        assert_ne!(message_id("a:b"), message_id("a%3Ab"));
    }
}
