//! Webhooks: an HTTP POST of the notification's JSON to the user's URL, signed, and refused when
//! the URL points inside our own network.
//!
//! **Signature.** As Stripe signs its webhooks: the header
//! `Sdlab-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, keyed with a secret
//! the receiver shares. The receiver recomputes the HMAC over the exact bytes it received and
//! compares in constant time ([`verify`]), and refuses a timestamp older than its tolerance
//! (5 minutes is usual), so a captured request cannot be replayed later. Signing the timestamp
//! with the body is what makes the tolerance enforceable.
//!
//! **Idempotency.** Each POST carries `Idempotency-Key: <notification id>:webhook`, the same on
//! every retry, so a receiver that got a delivery whose answer we lost can recognise the retry.
//!
//! **SSRF.** A webhook URL is chosen by a user, and the POST comes from inside our network. Left
//! alone, `http://169.254.169.254/latest/meta-data/` would read the cloud metadata service and
//! `http://10.0.0.5:6379/` would talk to an internal Redis. So every address the host resolves
//! to is checked, and loopback, private (RFC 1918), carrier-grade NAT, link-local, unique-local,
//! unspecified, broadcast and multicast addresses are refused ([`is_forbidden`]). The check sits
//! in the HTTP client's DNS resolver, so it applies to the address actually connected to (no
//! window between checking and connecting for a DNS answer to change), and redirects are not
//! followed. [`WebhookSender::new`]'s `allow_private` lifts it, for local development and tests
//! only (the pipeline will expose it as a setting, off by default).

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use hmac::{Hmac, KeyInit, Mac};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde_json::Value;
use sha2::Sha256;
use url::{Host, Url};
use uuid::Uuid;

use super::DeliveryError;

pub const SIGNATURE_HEADER: &str = "sdlab-signature";

/// How long a delivery may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `t=<timestamp>,v1=<hex hmac>` for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mac = keyed(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(mac))
}

/// The HMAC of `"<timestamp>.<body>"`, ready to finalise or to verify against.
fn keyed(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature header is malformed")]
    Malformed,
    #[error("the signature does not match the body")]
    Mismatch,
    #[error("the timestamp is outside the tolerance")]
    Stale,
}

/// What a receiver does with a delivery: checks `header` against the raw `body` it received,
/// at `now` (unix seconds), accepting timestamps within `tolerance`.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::Malformed)?;
    if signatures.is_empty() {
        return Err(VerifyError::Malformed);
    }
    if now.abs_diff(timestamp) > tolerance.as_secs() {
        return Err(VerifyError::Stale);
    }
    // `verify_slice` compares in constant time: a comparison that stopped at the first
    // differing byte would tell an attacker, by its timing, how much of a guess was right.
    let matches = signatures.iter().any(|signature| {
        hex::decode(signature)
            .ok()
            .is_some_and(|bytes| keyed(secret, timestamp, body).verify_slice(&bytes).is_ok())
    });
    if matches {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// Whether a webhook may not be sent to `ip`: anything that is not a public unicast address.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                // 100.64.0.0/10, carrier-grade NAT: private in practice.
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_forbidden(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fc00::/7, unique local; fe80::/10, link-local.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// The DNS resolver of the webhook client: resolves as usual, then refuses forbidden addresses.
struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = format!("{}:0", name.as_str());
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host(host).await?.collect();
            if let Some(forbidden) = addrs.iter().find(|addr| is_forbidden(addr.ip())) {
                let err: Box<dyn std::error::Error + Send + Sync> = format!(
                    "{} resolves to {}, a private address",
                    name.as_str(),
                    forbidden.ip()
                )
                .into();
                return Err(err);
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[derive(Clone)]
pub struct WebhookSender {
    http: reqwest::Client,
    secret: Arc<Vec<u8>>,
    allow_private: bool,
}

impl WebhookSender {
    pub fn new(secret: impl Into<Vec<u8>>, allow_private: bool) -> Self {
        let mut builder = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        Self {
            http: builder.build().expect("a plain HTTP client builds"),
            secret: Arc::new(secret.into()),
            allow_private,
        }
    }

    /// POSTs `payload` to `url`, signed, at `now` (unix seconds).
    pub async fn send(
        &self,
        url: &str,
        notification: Uuid,
        payload: &Value,
        now: i64,
    ) -> Result<(), DeliveryError> {
        let url =
            Url::parse(url).map_err(|err| DeliveryError::Permanent(format!("bad URL: {err}")))?;
        // An address written in the URL is never resolved, so the resolver cannot check it.
        let literal = match url.host() {
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal
            && !self.allow_private
            && is_forbidden(ip)
        {
            return Err(DeliveryError::Permanent(format!(
                "{ip} is a private address; webhooks go to public addresses only"
            )));
        }
        let body = serde_json::to_vec(payload).expect("a payload serialises");
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("idempotency-key", format!("{notification}:webhook"))
            .header(SIGNATURE_HEADER, sign(&self.secret, now, &body))
            .body(body)
            .send()
            .await
            .map_err(|err| {
                // A refused address surfaces as a connection error from the resolver: permanent.
                let chain = platform::problem::error_chain(&err);
                if chain.contains("private address") {
                    DeliveryError::Permanent(chain)
                } else {
                    DeliveryError::Retryable(chain)
                }
            })?;
        super::classify(response.status(), response.headers())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::{
        Router,
        body::Bytes,
        extract::State,
        http::{HeaderMap, StatusCode},
        routing::post,
    };
    use serde_json::json;

    use super::*;

    const SECRET: &[u8] = b"whsec_test";
    const FIVE_MINUTES: Duration = Duration::from_secs(300);

    #[test]
    fn a_signature_verifies_against_the_exact_body_and_nothing_else() {
        let header = sign(SECRET, 1_700_000_000, br#"{"a":1}"#);

        assert_eq!(
            verify(SECRET, &header, br#"{"a":1}"#, 1_700_000_010, FIVE_MINUTES),
            Ok(())
        );
        assert_eq!(
            verify(SECRET, &header, br#"{"a":2}"#, 1_700_000_010, FIVE_MINUTES),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(
                b"other secret",
                &header,
                br#"{"a":1}"#,
                1_700_000_010,
                FIVE_MINUTES
            ),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn an_old_signature_is_refused_so_a_captured_request_cannot_be_replayed() {
        let header = sign(SECRET, 1_700_000_000, b"{}");
        assert_eq!(
            verify(SECRET, &header, b"{}", 1_700_000_000 + 301, FIVE_MINUTES),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(SECRET, "v1=abcd", b"{}", 0, FIVE_MINUTES),
            Err(VerifyError::Malformed)
        );
    }

    #[test]
    fn internal_addresses_are_forbidden_and_public_ones_are_not() {
        for forbidden in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_forbidden(forbidden.parse().unwrap()), "{forbidden}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_forbidden(public.parse().unwrap()), "{public}");
        }
    }

    type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

    /// A receiver on 127.0.0.1 that records what it gets and answers `status`.
    async fn receiver(status: StatusCode) -> (String, Received) {
        let received: Received = Arc::default();
        let app = Router::new()
            .route(
                "/hook",
                post(
                    |State((received, status)): State<(Received, StatusCode)>,
                     headers: HeaderMap,
                     body: Bytes| async move {
                        received.lock().unwrap().push((headers, body));
                        status
                    },
                ),
            )
            .with_state((received.clone(), status));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/hook"), received)
    }

    #[tokio::test]
    async fn a_delivery_is_signed_so_that_the_receiver_can_verify_it() {
        let (url, received) = receiver(StatusCode::NO_CONTENT).await;
        let sender = WebhookSender::new(SECRET, true);
        let id = Uuid::now_v7();

        sender
            .send(&url, id, &json!({"template": "welcome"}), 1_700_000_000)
            .await
            .unwrap();

        let (headers, body) = received.lock().unwrap().pop().unwrap();
        let signature = headers[SIGNATURE_HEADER].to_str().unwrap();
        assert_eq!(
            verify(SECRET, signature, &body, 1_700_000_001, FIVE_MINUTES),
            Ok(())
        );
        assert_eq!(headers["idempotency-key"], format!("{id}:webhook"));
    }

    #[tokio::test]
    async fn loopback_and_names_that_resolve_to_it_are_refused_without_a_request() {
        let (url, received) = receiver(StatusCode::OK).await;
        let sender = WebhookSender::new(SECRET, false);
        let by_name = url.replace("127.0.0.1", "localhost");

        for target in [
            url.as_str(),
            by_name.as_str(),
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]/hook",
        ] {
            let refused = sender.send(target, Uuid::now_v7(), &json!({}), 0).await;
            assert!(
                matches!(refused, Err(DeliveryError::Permanent(_))),
                "{target}: {refused:?}"
            );
        }
        assert!(received.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn server_errors_are_retryable_429_is_rate_limited_and_client_errors_permanent() {
        let sender = WebhookSender::new(SECRET, true);
        let (failing, _) = receiver(StatusCode::SERVICE_UNAVAILABLE).await;
        let (refusing, _) = receiver(StatusCode::GONE).await;
        let (limited, _) = receiver(StatusCode::TOO_MANY_REQUESTS).await;

        let send = |url: String| {
            let sender = sender.clone();
            async move { sender.send(&url, Uuid::now_v7(), &json!({}), 0).await }
        };
        assert!(matches!(
            send(failing).await,
            Err(DeliveryError::Retryable(_))
        ));
        assert!(matches!(
            send(limited).await,
            Err(DeliveryError::RateLimited { .. })
        ));
        assert!(matches!(
            send(refusing).await,
            Err(DeliveryError::Permanent(_))
        ));
    }
}
