//! The shortener's settings, from environment variables. Every one has a default that works on
//! a laptop with nothing else running.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `SHORTENER_ADDR` | `127.0.0.1:8081` | where to listen |
//! | `SHORTENER_BASE_URL` | `http://localhost:<port>` | the public origin, used in `short_url` and to refuse self-links |
//! | `SHORTENER_OTHER_ORIGINS` | the lab's gateway, `http://<RATE_LIMITER_GATEWAY_ADDR>` (`127.0.0.1:8092`) | comma-separated origins that also reach this shortener (a gateway, a CDN, an old domain): links to them are refused too |
//! | `SHORTENER_ID_SECRET` | a development value | the key of the code permutation; set it in production and never change it |
//! | `SHORTENER_ID_BLOCK_SIZE` | `1000` | IDs leased from the database at a time |
//! | `SHORTENER_REDIRECT_STATUS` | `302` | `301`, `302`, `307` or `308` |
//! | `SHORTENER_REDIRECT_MAX_AGE_SECS` | `3600` | `Cache-Control` lifetime of a permanent (301/308) redirect |
//! | `SHORTENER_CACHE_TTL_SECS` | `600` | how long a link stays cached |
//! | `SHORTENER_NEGATIVE_TTL_SECS` | `60` | how long "no such code" stays cached |
//! | `SHORTENER_CACHE_MAX_ENTRIES` | `100000` | bound of the in-process cache |
//! | `SHORTENER_REDIS_TIMEOUT_MS` | `250` | a Redis command that takes longer fails, and the database answers |
//! | `SHORTENER_NEAR_CACHE_MS` | `1000` | with Redis, how long a value read from it is also kept in process (0: never) |
//! | `SHORTENER_VISIT_FLUSH_MS` | `1000` | how often visit tallies are written |
//! | `SDLAB_ADMIN_TOKEN` | unset: the switches stay shut over HTTP | the token (`sk_` and 40 hex digits) that opens the fault switches, `PUT /admin/faults/{database,redis}` (callers on this machine only) |
//! | `DATABASE_URL`, `REDIS_URL` | unset | the real backends (see `platform::config`) |

use std::{net::SocketAddr, num::NonZeroUsize, time::Duration};

use axum::http::StatusCode;
use platform::{
    auth::AdminToken,
    config::{Backends, ConfigError, env_opt, env_or, env_positive},
};
use url::Url;

use crate::{SYSTEM, domain::ServedAt};

const DEV_ID_SECRET: &str = "sdlab development secret: set SHORTENER_ID_SECRET in production";

#[derive(Debug, Clone)]
pub struct Settings {
    pub addr: SocketAddr,
    pub base_url: Url,
    /// Origins besides `base_url` that reach this shortener, through a gateway or a proxy.
    pub other_origins: Vec<Url>,
    pub backends: Backends,
    pub id_secret: String,
    pub id_block_size: u64,
    pub redirect: RedirectPolicy,
    pub cache_ttl: Duration,
    pub negative_cache_ttl: Duration,
    pub cache_max_entries: NonZeroUsize,
    pub redis_timeout: Duration,
    pub near_cache_ttl: Duration,
    pub visit_flush_interval: Duration,
    /// Opens the fault switches over HTTP (`SDLAB_ADMIN_TOKEN`).
    pub admin_token: Option<AdminToken>,
}

/// How redirects answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedirectPolicy {
    pub status: StatusCode,
    /// The `Cache-Control: max-age` of a permanent redirect.
    pub max_age: Duration,
}

impl RedirectPolicy {
    pub fn is_permanent(&self) -> bool {
        matches!(
            self.status,
            StatusCode::MOVED_PERMANENTLY | StatusCode::PERMANENT_REDIRECT
        )
    }
}

impl Default for RedirectPolicy {
    fn default() -> Self {
        Self {
            status: StatusCode::FOUND,
            max_age: Duration::from_secs(3600),
        }
    }
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let addr: SocketAddr = env_or("SHORTENER_ADDR", SocketAddr::from(([127, 0, 0, 1], 8081)))?;
        let base_url = match env_opt::<Url>("SHORTENER_BASE_URL")? {
            Some(url) => url,
            None => default_base_url(addr),
        };
        let other_origins = match env_opt::<String>("SHORTENER_OTHER_ORIGINS")? {
            Some(list) => origins("SHORTENER_OTHER_ORIGINS", &list)?,
            None => vec![lab_gateway(env_or(
                "RATE_LIMITER_GATEWAY_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8092)),
            )?)],
        };
        let status: u16 = env_or("SHORTENER_REDIRECT_STATUS", 302)?;
        let status = match status {
            301 | 302 | 307 | 308 => StatusCode::from_u16(status).expect("a valid status"),
            other => {
                return Err(ConfigError {
                    name: "SHORTENER_REDIRECT_STATUS".into(),
                    value: other.to_string(),
                    reason: "expected 301, 302, 307 or 308".into(),
                });
            }
        };
        let id_block_size: u64 = env_positive("SHORTENER_ID_BLOCK_SIZE", 1000)?;
        Ok(Self {
            addr,
            base_url,
            other_origins,
            backends: Backends::from_env(SYSTEM)?,
            id_secret: env_or("SHORTENER_ID_SECRET", DEV_ID_SECRET.to_owned())?,
            id_block_size,
            redirect: RedirectPolicy {
                status,
                max_age: secs(env_or("SHORTENER_REDIRECT_MAX_AGE_SECS", 3600)?),
            },
            cache_ttl: secs(env_or("SHORTENER_CACHE_TTL_SECS", 600)?),
            negative_cache_ttl: secs(env_or("SHORTENER_NEGATIVE_TTL_SECS", 60)?),
            cache_max_entries: env_or(
                "SHORTENER_CACHE_MAX_ENTRIES",
                NonZeroUsize::new(100_000).expect("non-zero"),
            )?,
            redis_timeout: Duration::from_millis(env_or("SHORTENER_REDIS_TIMEOUT_MS", 250)?),
            near_cache_ttl: Duration::from_millis(env_or("SHORTENER_NEAR_CACHE_MS", 1000)?),
            visit_flush_interval: Duration::from_millis(env_positive(
                "SHORTENER_VISIT_FLUSH_MS",
                1000,
            )?),
            admin_token: AdminToken::from_env()?,
        })
    }

    /// Settings for tests: every default, listening on a free port, the fault switches shut.
    pub fn for_tests() -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            addr,
            base_url: Url::parse("http://sho.test").expect("a valid URL"),
            other_origins: Vec::new(),
            backends: Backends::for_tests(),
            id_secret: "test secret".into(),
            id_block_size: 10,
            redirect: RedirectPolicy::default(),
            cache_ttl: Duration::from_secs(600),
            negative_cache_ttl: Duration::from_secs(60),
            cache_max_entries: NonZeroUsize::new(10_000).expect("non-zero"),
            redis_timeout: Duration::from_millis(250),
            near_cache_ttl: Duration::ZERO,
            visit_flush_interval: Duration::from_secs(1),
            admin_token: None,
        }
    }

    /// Everywhere this shortener answers, once its socket is bound to `listening`.
    pub fn served_at(&self, listening: SocketAddr) -> ServedAt {
        ServedAt::new(
            std::iter::once(&self.base_url).chain(&self.other_origins),
            listening,
        )
    }

    pub fn uses_development_secret(&self) -> bool {
        self.id_secret == DEV_ID_SECRET
    }

    pub fn cache_config(&self) -> platform::cache::CacheConfig {
        platform::cache::CacheConfig {
            redis_url: self.backends.redis_url.clone(),
            namespace: format!("{SYSTEM}:"),
            max_entries: self.cache_max_entries,
            redis_timeout: self.redis_timeout,
            near_ttl: Some(self.near_cache_ttl),
        }
    }
}

fn default_base_url(addr: SocketAddr) -> Url {
    let authority = if addr.ip().is_unspecified() || addr.ip().is_loopback() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    };
    Url::parse(&format!("http://{authority}")).expect("a valid URL")
}

/// The gateway the lab puts in front of the shortener. The lab runs every system in one process
/// from one environment, so the rate limiter's own variable is where the gateway is named; a
/// shortener deployed on its own sets `SHORTENER_OTHER_ORIGINS` instead.
fn lab_gateway(addr: SocketAddr) -> Url {
    Url::parse(&format!("http://{addr}")).expect("a socket address is a valid authority")
}

/// A comma-separated list of origins.
fn origins(name: &str, list: &str) -> Result<Vec<Url>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(|origin| {
            Url::parse(origin)
                .ok()
                .filter(|url| url.host().is_some())
                .ok_or_else(|| ConfigError {
                    name: name.into(),
                    value: list.into(),
                    reason: format!("`{origin}` is not an origin such as https://sho.rt"),
                })
        })
        .collect()
}

fn secs(value: u64) -> Duration {
    Duration::from_secs(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_origins_are_a_comma_separated_list_of_urls() {
        let parsed = origins("X", "https://sho.rt, http://127.0.0.1:8092,").unwrap();
        assert_eq!(
            parsed.iter().map(Url::as_str).collect::<Vec<_>>(),
            ["https://sho.rt/", "http://127.0.0.1:8092/"]
        );
        assert!(origins("X", "").unwrap().is_empty());
        assert!(origins("X", "sho.rt").is_err());
    }

    #[test]
    fn the_lab_gateway_is_named_by_its_listening_address() {
        assert_eq!(
            lab_gateway("0.0.0.0:8092".parse().unwrap()).as_str(),
            "http://0.0.0.0:8092/"
        );
        assert_eq!(
            lab_gateway("[::1]:8092".parse().unwrap()).as_str(),
            "http://[::1]:8092/"
        );
    }
}
