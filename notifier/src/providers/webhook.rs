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
//! to is checked, and anything that is not an ordinary public unicast address is refused
//! ([`is_forbidden`], in the domain: every block of IANA's special-purpose address registries,
//! and an IPv6 address that carries an IPv4 address judged by the IPv4 address).
//!
//! The check sits in the HTTP client's DNS resolver, so it applies to the address actually
//! connected to (no window between checking and connecting for a DNS answer to change), and
//! redirects are not followed. The client ignores proxy variables from the environment
//! (`HTTP_PROXY`, `ALL_PROXY`): a proxy would resolve and connect for us, past the check. A
//! refused address is a permanent failure: the message goes to dead letters, since no retry can
//! make the address public. [`AddressPolicy::AllowPrivate`] lifts the check, for local
//! development and tests only (`NOTIFIER_WEBHOOK_ALLOW_PRIVATE`, off by default).

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use hmac::{Hmac, KeyInit, Mac};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde_json::Value;
use sha2::Sha256;
use url::Url;
use uuid::Uuid;

use super::DeliveryError;
use crate::domain::address::{AddressPolicy, is_forbidden, written_address};

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

/// A webhook address refused by [`is_forbidden`]: the reason a delivery goes to dead letters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{address} ({host}) is not a public address; webhooks go to public addresses only")]
pub struct ForbiddenAddress {
    pub host: String,
    pub address: IpAddr,
}

/// The DNS resolver of the webhook client: resolves as usual, then refuses the whole answer if
/// any address in it is forbidden. Dropping only the bad ones would leave a name that mixes
/// public and internal addresses half-working, which hides the problem rather than reporting it.
struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = format!("{}:0", name.as_str());
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host(host).await?.collect();
            if let Some(forbidden) = addrs.iter().find(|addr| is_forbidden(addr.ip())) {
                let err: Box<dyn std::error::Error + Send + Sync> = Box::new(ForbiddenAddress {
                    host: name.as_str().to_owned(),
                    address: forbidden.ip(),
                });
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
    addresses: AddressPolicy,
}

impl WebhookSender {
    pub fn new(secret: impl Into<Vec<u8>>, addresses: AddressPolicy) -> Self {
        let mut builder = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            // Always: a proxy named by `HTTP_PROXY` or `ALL_PROXY` would resolve the name and
            // connect on our behalf, and the guarded resolver would never see the address.
            .no_proxy();
        if addresses == AddressPolicy::PublicOnly {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        Self {
            http: builder.build().expect("a plain HTTP client builds"),
            secret: Arc::new(secret.into()),
            addresses,
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
        if let Some(address) = written_address(&url)
            && self.addresses.refuses(address)
        {
            let host = url.host_str().unwrap_or_default().to_owned();
            return Err(DeliveryError::Permanent(
                ForbiddenAddress { host, address }.to_string(),
            ));
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
                // A refused address surfaces as a connection error from the resolver, somewhere
                // down the chain of causes: permanent. Anything else there is worth a retry.
                let chain = platform::problem::error_chain(&err);
                if refused_address(&err) {
                    DeliveryError::Permanent(chain)
                } else {
                    DeliveryError::Retryable(chain)
                }
            })?;
        super::classify(response.status(), response.headers())
    }
}

/// Whether [`GuardedResolver`] refused the address somewhere in `err`'s causes.
fn refused_address(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if err.is::<ForbiddenAddress>() {
            return true;
        }
        cause = err.source();
    }
    false
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
        let sender = WebhookSender::new(SECRET, AddressPolicy::AllowPrivate);
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
        let sender = WebhookSender::new(SECRET, AddressPolicy::PublicOnly);
        let by_name = url.replace("127.0.0.1", "localhost");

        // Only forms of loopback: refused before any connection, whatever their spelling.
        for target in [
            url.as_str(),
            by_name.as_str(),
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]/hook",
            "http://[::127.0.0.1]/hook",
            "http://[64:ff9b::7f00:1]/hook",
            "http://[2002:7f00:1::1]/hook",
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
        let sender = WebhookSender::new(SECRET, AddressPolicy::AllowPrivate);
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

    /// The variables a proxy is named by, in the spellings HTTP clients read.
    const PROXY_VARIABLES: [&str; 4] = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

    #[test]
    fn proxy_variables_in_the_environment_cannot_route_a_webhook_around_the_check() {
        // A proxy that only counts connections. The client reads proxy variables when it is
        // built, and a test may not set its own process's environment (that is `unsafe`), so the
        // sender runs in a child process: this test binary, running the test below with the
        // variables pointing here.
        let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child.args([
            "--exact",
            "--ignored",
            "--quiet",
            "providers::webhook::tests::a_webhook_to_a_name_is_sent_without_a_proxy",
        ]);
        for variable in PROXY_VARIABLES {
            child.env(variable, &proxy_url);
        }

        let status = child.status().unwrap();

        assert!(status.success());
        proxy.set_nonblocking(true).unwrap();
        assert!(
            proxy.accept().is_err(),
            "the webhook went to the proxy from the environment"
        );
    }

    #[tokio::test]
    #[ignore = "run in a child process by the test above, with proxy variables set"]
    async fn a_webhook_to_a_name_is_sent_without_a_proxy() {
        let sender = WebhookSender::new(SECRET, AddressPolicy::PublicOnly);
        // A name the guarded resolver must look up itself; `.invalid` never resolves.
        let sent = sender
            .send("http://hooks.invalid/hook", Uuid::now_v7(), &json!({}), 0)
            .await;
        assert!(sent.is_err());
    }
}
