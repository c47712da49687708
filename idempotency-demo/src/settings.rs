//! The payments service's settings, from environment variables. Every one has a default that
//! works on a laptop with nothing else running.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `PAYMENTS_ADDR` | `127.0.0.1:8085` | where the payments API listens |
//! | `PAYMENTS_PROVIDER_URL` | unset | a running payment provider (simulator) to charge through |
//! | `PAYMENTS_PROVIDER_ADDR` | `127.0.0.1:8095` | without `PAYMENTS_PROVIDER_URL`: where this process serves its own simulator |
//! | `PAYMENTS_PROVIDER_TIMEOUT_MS` | `5000` | a charge call that takes longer is "unknown", retried with the same key |
//! | `PAYMENTS_KEY_RETENTION_SECS` | `86400` | how long a finished key replays its answer |
//! | `PAYMENTS_LOCK_TIMEOUT_SECS` | `60` | a key locked longer than this is taken over (its request is presumed dead) |
//! | `PAYMENTS_COMPLETER_GRACE_SECS` | `60` | how long an unfinished key waits for its client's retry before the completer finishes it |
//! | `PAYMENTS_BACKGROUND_INTERVAL_MS` | `5000` | how often the completer and the reaper run |
//! | `PAYMENTS_EVENTS_TOPIC` | `payments.events` | where finished payments are announced |
//! | `PAYMENTS_RELAY_INTERVAL_MS` | `500` | how often the outbox relay looks for events besides being woken by each payment |
//! | `PAYMENTS_IDEMPOTENCY` | `on` | `off` runs `POST /v1/payments` without the key check: the benchmark's baseline, in a build with `--features bench` only (refused otherwise) |
//! | `PAYMENTS_DEMO_KEY` | unset | an API key (`sk_` and 40 hex digits) to register at start, for demos and load tests |
//! | `SDLAB_ADMIN_TOKEN` | unset: the switches stay shut over HTTP | the token (`sk_` and 40 hex digits) that opens the fault switches: the service's own (`database`, `broker`: `PUT /admin/faults/{name}`) and the provider simulator's (`PUT /v1/faults`) |
//! | `DATABASE_URL`, `KAFKA_BROKERS` | unset | the real backends (see `platform::config`) |

use std::{net::SocketAddr, time::Duration};

use platform::{
    auth::{AdminToken, ApiKey},
    config::{Backends, ConfigError, env_opt, env_or, env_positive},
};

use crate::{SYSTEM, service::Timing};

#[derive(Debug, Clone)]
pub struct Settings {
    pub addr: SocketAddr,
    pub backends: Backends,
    pub provider: ProviderSetting,
    pub provider_timeout: Duration,
    pub timing: Timing,
    pub background_interval: Duration,
    pub events_topic: String,
    pub relay_interval: Duration,
    pub idempotency: Idempotency,
    pub demo_key: Option<ApiKey>,
    /// Opens the fault switches over HTTP, the service's own and the provider simulator's
    /// (`SDLAB_ADMIN_TOKEN`).
    pub admin_token: Option<AdminToken>,
}

/// Whether `POST /v1/payments` takes an `Idempotency-Key`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Idempotency {
    #[default]
    On,
    /// The benchmark's baseline (`PAYMENTS_IDEMPOTENCY=off`): the same payment, provider call and
    /// outbox event with no key row, so that the benchmark measures what the key costs. A retry
    /// is a second payment.
    #[cfg(feature = "bench")]
    Off,
}

/// Where the payment provider is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderSetting {
    /// Already running elsewhere.
    Url(String),
    /// Served by this process, on this address, over real HTTP like any other.
    Simulated(SocketAddr),
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let provider = match env_opt::<String>("PAYMENTS_PROVIDER_URL")? {
            Some(url) => ProviderSetting::Url(url),
            None => ProviderSetting::Simulated(env_or(
                "PAYMENTS_PROVIDER_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8095)),
            )?),
        };
        let demo_key = platform::auth::env_key("PAYMENTS_DEMO_KEY")?;
        Ok(Self {
            addr: env_or("PAYMENTS_ADDR", SocketAddr::from(([127, 0, 0, 1], 8085)))?,
            backends: Backends::from_env(SYSTEM)?,
            provider,
            provider_timeout: millis("PAYMENTS_PROVIDER_TIMEOUT_MS", 5000)?,
            timing: Timing {
                retention: secs("PAYMENTS_KEY_RETENTION_SECS", 24 * 3600)?,
                lock_timeout: secs("PAYMENTS_LOCK_TIMEOUT_SECS", 60)?,
                completer_grace: secs("PAYMENTS_COMPLETER_GRACE_SECS", 60)?,
            },
            background_interval: millis("PAYMENTS_BACKGROUND_INTERVAL_MS", 5000)?,
            events_topic: env_or("PAYMENTS_EVENTS_TOPIC", crate::service::TOPIC.to_owned())?,
            relay_interval: millis("PAYMENTS_RELAY_INTERVAL_MS", 500)?,
            idempotency: idempotency()?,
            demo_key,
            admin_token: AdminToken::from_env()?,
        })
    }

    /// Settings for tests: every default, a free port, the simulator on a free port, and a
    /// provider timeout short enough for timeout tests.
    pub fn for_tests() -> Self {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            addr: any_port,
            backends: Backends::for_tests(),
            provider: ProviderSetting::Simulated(any_port),
            provider_timeout: Duration::from_millis(500),
            timing: Timing::default(),
            background_interval: Duration::from_secs(3600),
            events_topic: format!("test.payments.{}", uuid::Uuid::new_v4().simple()),
            relay_interval: Duration::from_secs(3600),
            idempotency: Idempotency::On,
            demo_key: None,
            admin_token: None,
        }
    }
}

/// `PAYMENTS_IDEMPOTENCY`. A build without the baseline refuses `off` rather than ignoring it: a
/// benchmark run on the wrong build fails instead of measuring the key check against itself.
fn idempotency() -> Result<Idempotency, ConfigError> {
    let value = env_or("PAYMENTS_IDEMPOTENCY", "on".to_owned())?;
    let refused = |reason: &str| ConfigError {
        name: "PAYMENTS_IDEMPOTENCY".into(),
        value: value.clone(),
        reason: reason.into(),
    };
    match value.as_str() {
        "on" => Ok(Idempotency::On),
        #[cfg(feature = "bench")]
        "off" => Ok(Idempotency::Off),
        #[cfg(not(feature = "bench"))]
        "off" => Err(refused(
            "off is the benchmark's baseline, only in a build with `--features bench`",
        )),
        _ => Err(refused("expected on or off")),
    }
}

fn secs(name: &str, default: u64) -> Result<Duration, ConfigError> {
    env_positive(name, default).map(Duration::from_secs)
}

fn millis(name: &str, default: u64) -> Result<Duration, ConfigError> {
    env_positive(name, default).map(Duration::from_millis)
}
