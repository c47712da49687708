//! The limiter as a tower layer: `Router::layer(RateLimitLayer::new(limiter))` puts the rules
//! that have a `match` in front of any axum router, the gateway's proxy included.
//!
//! **The decision comes before the handler.** The layer sees only the request line and the
//! headers, charges one unit per rule that applies, and either passes the request on or answers
//! 429 itself. A rejected request therefore costs the service nothing past a store round trip: no
//! body is read, no handler runs, no upstream is called, which is the point of limiting a flood.
//! The rejected alternative is to charge after the response, by what the request turned out to
//! cost (GitHub's GraphQL API charges points that way); it needs the work done before it knows
//! whether to refuse it, and lets a burst far past the limit through before the first rejection.
//! A handler that knows a request's real cost asks [`Limiter::check`] itself, as the decision API
//! does.
//!
//! **Whom a request is counted for** comes from each rule's [`ClientSource`] (see
//! [`client_key`]):
//! - `ip`: the peer's address, `ip:203.0.113.7` (an IPv6 peer by its /64, `ip:2001:db8::/64`),
//!   from the `ConnectInfo` the server records
//!   (`platform::http::serve` does). Behind a load balancer this is the balancer's address; the
//!   layer does not read `X-Forwarded-For`, because any client can write one, and trusting it
//!   would let every client pick a fresh bucket per request.
//! - `api_key`: the bearer token of `Authorization`, as `key:` and the first 16 bytes of its
//!   SHA-256 in hex. The limiter never stores or logs credentials, and 128 bits are far more than
//!   the key space of any deployment needs to stay collision-free. The layer does not know
//!   whether a key is valid (authentication comes later, in the handler), so a client can mint
//!   buckets by inventing keys: pair a per-key rule with a per-IP one on the same route, as
//!   `rules.toml` does.
//! - `header:<name>`: the header's value, `hdr:<value>`, for a header an authenticating proxy in
//!   front sets (`x-user-id`).
//!
//! A request without the credential a rule counts by (no `Authorization`, no header, or a value
//! that is not a valid key) is counted by its IP instead: anonymous clients share their address's
//! bucket rather than escaping the rule.
//!
//! An admitted request that a leaky bucket rule shapes is held for the delay the rule gives,
//! here, before the handler runs: that is what turns a burst into a steady stream for the
//! service behind. Responses carry `RateLimit-Policy` and `RateLimit` whenever the limiter decided
//! (admitted or 429); a rule that failed open has no `RateLimit` item, and a fail-closed 503 has
//! neither, since nothing was decided.

use std::{
    future::Future,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{HeaderMap, Request, Response, StatusCode},
    response::IntoResponse,
};
use platform::problem::Problem;
use sha2::{Digest, Sha256};
use tower::{Layer, Service};

use crate::{
    headers::{self, ceil_secs},
    limiter::{Limiter, Verdict},
    rules::{ClientKey, ClientSource, Rule},
};

/// Applies the limiter's matching rules to every request of the service it wraps.
#[derive(Clone)]
pub struct RateLimitLayer {
    limiter: Arc<Limiter>,
    rules: Arc<[Arc<Rule>]>,
}

impl RateLimitLayer {
    pub fn new(limiter: Arc<Limiter>) -> Self {
        // Only rules with a `match` apply to requests; the others are for the decision API. They
        // are sorted once, here, so that a request's rules are always asked, reported in headers
        // and named in rejections in the same order (the limiter keeps them in a hash map).
        let mut rules: Vec<Arc<Rule>> = limiter
            .rules()
            .filter(|rule| rule.matcher.is_some())
            .cloned()
            .collect();
        rules.sort_by(|a, b| a.name.cmp(&b.name));
        Self {
            limiter,
            rules: rules.into(),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            limiter: self.limiter.clone(),
            rules: self.rules.clone(),
        }
    }
}

/// The service [`RateLimitLayer`] wraps around `S`.
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    limiter: Arc<Limiter>,
    rules: Arc<[Arc<Rule>]>,
}

impl<S> Service<Request<Body>> for RateLimit<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // `poll_ready` was called on `self.inner`, so that is the instance that may be called;
        // a fresh clone, not yet ready, stays behind for the next request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);

        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let requests: Vec<(Arc<Rule>, ClientKey)> = self
            .rules
            .iter()
            .filter_map(|rule| {
                let matcher = rule.matcher.as_ref()?;
                matcher
                    .matches(request.method(), request.uri().path())
                    .then(|| {
                        let key = client_key(&matcher.client, request.headers(), peer);
                        (rule.clone(), key)
                    })
            })
            .collect();
        if requests.is_empty() {
            return Box::pin(inner.call(request));
        }

        let limiter = self.limiter.clone();
        Box::pin(async move {
            let verdict = match limiter.check(&requests, 1).await {
                Ok(verdict) => verdict,
                // The store failed and a rule fails closed: 503, logged by the limiter.
                Err(err) => return Ok(err.into_response()),
            };
            if !verdict.allowed {
                return Ok(rejection(&verdict));
            }
            let delay = verdict.delay();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let mut response = inner.call(request).await?;
            headers::insert(response.headers_mut(), &verdict);
            Ok(response)
        })
    }
}

/// The 429 for a rejected request: a problem naming the rules that refused it, with the
/// rate-limit headers and `Retry-After`.
fn rejection(verdict: &Verdict) -> Response<Body> {
    let rejecting: Vec<String> = verdict
        .outcomes
        .iter()
        .filter(|outcome| outcome.rule.enforced())
        .filter(|outcome| outcome.decision.is_some_and(|decision| !decision.allowed))
        .map(|outcome| format!("`{}`", outcome.rule.name))
        .collect();
    let retry_after = ceil_secs(verdict.retry_after());
    tracing::debug!(rules = %rejecting.join(", "), retry_after, "request rate-limited");
    let problem = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        "Too many requests",
    )
    .with_detail(format!(
        "Over the limit of {}; retry in {retry_after} s.",
        rejecting.join(" and ")
    ));
    let mut response = problem.into_response();
    headers::insert(response.headers_mut(), verdict);
    response
}

/// Whom a request is counted for under a rule whose client comes from `source`; `peer` is the
/// connection's remote address, if the server recorded it. See the module documentation.
pub fn client_key(source: &ClientSource, headers: &HeaderMap, peer: Option<IpAddr>) -> ClientKey {
    let by_source = match source {
        ClientSource::Ip => None,
        ClientSource::ApiKey => platform::auth::bearer_token(headers).map(|token| {
            let digest = Sha256::digest(token.as_bytes());
            format!("key:{}", hex::encode(&digest[..16]))
        }),
        ClientSource::Header(name) => headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(|value| format!("hdr:{value}")),
    };
    by_source
        .and_then(|key| ClientKey::parse(&key).ok())
        .unwrap_or_else(|| ip_key(peer))
}

fn ip_key(peer: Option<IpAddr>) -> ClientKey {
    let key = match peer {
        // A dual-stack listener sees IPv4 clients as `::ffff:a.b.c.d`; one client, one key.
        Some(ip) => match ip.to_canonical() {
            IpAddr::V4(v4) => format!("ip:{v4}"),
            // One IPv6 host usually holds a whole /64 and can pick any address in it, so a
            // limit per address would be a limit per request. Counted by the /64 instead.
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                format!("ip:{}/64", std::net::Ipv6Addr::from(network))
            }
        },
        // Only when the server was not started with `ConnectInfo` (a router driven directly):
        // every such request shares one bucket, which fails safe.
        None => "ip:unknown".to_owned(),
    };
    ClientKey::parse(&key).expect("an IP address is a valid key")
}
