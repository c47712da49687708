//! The rate limiter's settings, from environment variables (the binary also takes `--config`
//! and `--upstream`). Every one has a default that works on a laptop with nothing else running.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `RATE_LIMITER_ADDR` | `127.0.0.1:8082` | the decision API |
//! | `RATE_LIMITER_CALLER_KEY` | unset | an API key (`sk_` and 40 hex digits) that may check every rule of the decision API, besides the callers of the rules file |
//! | `RATE_LIMITER_CONFIG` | the built-in `rules.toml` | the rules file (`.toml`, `.yaml`, `.yml`) |
//! | `RATE_LIMITER_UPSTREAM` | unset: no gateway | the origin the gateway forwards to, `http://host:port` |
//! | `RATE_LIMITER_GATEWAY_ADDR` | `127.0.0.1:8092` | where the gateway listens |
//! | `RATE_LIMITER_OVER_LIMIT_ENTRIES` | `10000` | with Redis, over-limit keys remembered in process (0: none) |
//! | `SDLAB_ADMIN_TOKEN` | unset: the switch stays shut over HTTP | the token (`sk_` and 40 hex digits) that opens the fault switch, `PUT /admin/faults/redis` on the decision API's port (callers on this machine only) |
//! | `REDIS_URL` | unset | share limits across instances through Redis |

use std::{net::SocketAddr, path::PathBuf};

use platform::{
    auth::{AdminToken, ApiKey, env_key},
    config::{ConfigError, env_opt, env_or},
};

#[derive(Debug, Clone)]
pub struct Settings {
    pub addr: SocketAddr,
    /// The operator's key, granted every rule of the decision API (`RATE_LIMITER_CALLER_KEY`).
    pub caller_key: Option<ApiKey>,
    /// The rules file; `None`: the built-in `rules.toml`.
    pub rules_file: Option<PathBuf>,
    pub upstream: Option<Upstream>,
    pub gateway_addr: SocketAddr,
    pub over_limit_entries: usize,
    pub redis_url: Option<String>,
    /// Opens the fault switch over HTTP (`SDLAB_ADMIN_TOKEN`).
    pub admin_token: Option<AdminToken>,
}

/// The gateway's upstream: an `http://` origin, without a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream(pub axum::http::uri::Authority);

impl std::str::FromStr for Upstream {
    type Err = String;

    fn from_str(origin: &str) -> Result<Self, String> {
        let uri: axum::http::Uri = origin
            .parse()
            .map_err(|_| format!("`{origin}` is not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "`{origin}`: the gateway forwards plain HTTP; give an http:// origin"
            ));
        }
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(format!("`{origin}`: give an origin, without a path"));
        }
        uri.authority()
            .cloned()
            .map(Upstream)
            .ok_or_else(|| format!("`{origin}` has no host"))
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}", self.0)
    }
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            addr: env_or(
                "RATE_LIMITER_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8082)),
            )?,
            caller_key: env_key("RATE_LIMITER_CALLER_KEY")?,
            rules_file: env_opt("RATE_LIMITER_CONFIG")?,
            upstream: env_opt("RATE_LIMITER_UPSTREAM")?,
            gateway_addr: env_or(
                "RATE_LIMITER_GATEWAY_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8092)),
            )?,
            over_limit_entries: env_or("RATE_LIMITER_OVER_LIMIT_ENTRIES", 10_000)?,
            redis_url: env_opt("REDIS_URL")?,
            admin_token: AdminToken::from_env()?,
        })
    }

    /// Settings for tests: the built-in rules, no gateway, free ports, no Redis, an operator's
    /// key of their own (`caller_key`) for the decision API, and the fault switch shut.
    pub fn for_tests() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            caller_key: Some(ApiKey::generate()),
            rules_file: None,
            upstream: None,
            gateway_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            over_limit_entries: 10_000,
            redis_url: None,
            admin_token: None,
        }
    }
}
