//! The real engines' fault switches: a Toxiproxy (or the lab's in-process one, which speaks the
//! same HTTP API) between each system and its PostgreSQL, Redis or broker, one proxy per system
//! and engine, named `<system>-<engine>` (`rate-limiter-redis`). A system's page shows each of
//! its proxies as a switch named `proxy-<engine>`, with the same two settings as the systems'
//! own switches (`platform::fault::Fault`), translated to what Toxiproxy has:
//! - `unreachable` is the proxy disabled: Toxiproxy closes its listener and every connection
//!   through it, so the system's client sees the engine go away, as in a real outage;
//! - `latency_ms` is a `latency` toxic on the proxy's downstream (every answer delayed), added,
//!   updated, or removed at 0.
//!
//! `CONSOLE_TOXIPROXY` names the API (the lab sets it when it runs its proxies); the admin
//! token is sent with every call (the lab's proxy API needs it; Toxiproxy ignores it).

use platform::{auth::AdminToken, fault::Fault};
use reqwest::{Client, RequestBuilder, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use url::Url;

/// What the page calls a proxy's switch: `proxy-redis`.
pub const SWITCH_PREFIX: &str = "proxy-";
/// The name of the toxic that holds a switch's latency.
const LATENCY: &str = "latency";

#[derive(Debug, thiserror::Error)]
pub enum ToxiproxyError {
    #[error("the proxy API at {url} did not answer: {source}")]
    Unreachable { url: Url, source: reqwest::Error },
    #[error("the proxy API answered {status} to {what}: {body}")]
    Refused {
        status: StatusCode,
        what: String,
        body: String,
    },
    #[error("{system} has no proxy for `{engine}`")]
    NoProxy { system: String, engine: String },
}

#[derive(Debug, Deserialize)]
struct Proxy {
    enabled: bool,
    #[serde(default)]
    toxics: Vec<Toxic>,
}

#[derive(Debug, Deserialize)]
struct Toxic {
    name: String,
    #[serde(default)]
    attributes: BTreeMap<String, Value>,
}

impl Proxy {
    fn fault(&self) -> Fault {
        let latency_ms = self
            .toxics
            .iter()
            .find(|toxic| toxic.name == LATENCY)
            .and_then(|toxic| toxic.attributes.get("latency"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Fault {
            latency_ms,
            unreachable: !self.enabled,
        }
    }
}

/// A client of one Toxiproxy API.
#[derive(Clone)]
pub struct Toxiproxy {
    client: Client,
    base: Url,
    token: Option<AdminToken>,
}

impl Toxiproxy {
    pub fn new(client: Client, base: Url, token: Option<AdminToken>) -> Self {
        Self {
            client,
            base,
            token,
        }
    }

    /// `system`'s proxies, by engine (`redis`), as switches are set.
    pub async fn switches(&self, system: &str) -> Result<Vec<(String, Fault)>, ToxiproxyError> {
        let proxies: BTreeMap<String, Proxy> =
            self.call(self.get("proxies"), "GET /proxies").await?;
        let prefix = format!("{system}-");
        Ok(proxies
            .into_iter()
            .filter_map(|(name, proxy)| {
                let engine = name.strip_prefix(&prefix)?.to_owned();
                Some((engine, proxy.fault()))
            })
            .collect())
    }

    /// Sets `system`'s proxy for `engine` as `fault` says, and answers how it is set now.
    pub async fn set(
        &self,
        system: &str,
        engine: &str,
        fault: Fault,
    ) -> Result<Fault, ToxiproxyError> {
        let name = format!("{system}-{engine}");
        let path = format!("proxies/{name}");
        let proxy: Proxy = match self.call(self.get(&path), &format!("GET /{path}")).await {
            Err(ToxiproxyError::Refused {
                status: StatusCode::NOT_FOUND,
                ..
            }) => {
                return Err(ToxiproxyError::NoProxy {
                    system: system.to_owned(),
                    engine: engine.to_owned(),
                });
            }
            other => other?,
        };
        let has_latency = proxy.toxics.iter().any(|toxic| toxic.name == LATENCY);
        let attributes = json!({ "latency": fault.latency_ms, "jitter": 0 });
        match (fault.latency_ms, has_latency) {
            (0, false) => {}
            (0, true) => {
                let toxic = format!("{path}/toxics/{LATENCY}");
                self.send(
                    self.request(reqwest::Method::DELETE, &toxic),
                    &format!("DELETE /{toxic}"),
                )
                .await?;
            }
            (_, true) => {
                let toxic = format!("{path}/toxics/{LATENCY}");
                self.send(
                    self.post(&toxic).json(&json!({ "attributes": attributes })),
                    &format!("POST /{toxic}"),
                )
                .await?;
            }
            (_, false) => {
                let toxics = format!("{path}/toxics");
                self.send(
                    self.post(&toxics).json(&json!({
                        "name": LATENCY,
                        "type": "latency",
                        "stream": "downstream",
                        "toxicity": 1.0,
                        "attributes": attributes,
                    })),
                    &format!("POST /{toxics}"),
                )
                .await?;
            }
        }
        if proxy.enabled == fault.unreachable {
            self.send(
                self.post(&path)
                    .json(&json!({ "enabled": !fault.unreachable })),
                &format!("POST /{path}"),
            )
            .await?;
        }
        let now: Proxy = self.call(self.get(&path), &format!("GET /{path}")).await?;
        Ok(now.fault())
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}/{path}"));
        url
    }

    fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        let request = self.client.request(method, self.url(path));
        match &self.token {
            Some(token) => request.bearer_auth(token.expose()),
            None => request,
        }
    }

    fn get(&self, path: &str) -> RequestBuilder {
        self.request(reqwest::Method::GET, path)
    }

    fn post(&self, path: &str) -> RequestBuilder {
        self.request(reqwest::Method::POST, path)
    }

    /// Sends `request`; its body if it succeeded, else what it answered.
    async fn send(&self, request: RequestBuilder, what: &str) -> Result<Vec<u8>, ToxiproxyError> {
        let response = request
            .send()
            .await
            .map_err(|source| ToxiproxyError::Unreachable {
                url: self.base.clone(),
                source,
            })?;
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default().to_vec();
        if status.is_success() {
            return Ok(body);
        }
        Err(ToxiproxyError::Refused {
            status,
            what: what.to_owned(),
            body: String::from_utf8_lossy(&body).chars().take(300).collect(),
        })
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        request: RequestBuilder,
        what: &str,
    ) -> Result<T, ToxiproxyError> {
        let body = self.send(request, what).await?;
        serde_json::from_slice(&body).map_err(|err| ToxiproxyError::Refused {
            status: StatusCode::OK,
            what: what.to_owned(),
            body: format!("not what Toxiproxy answers: {err}"),
        })
    }
}
