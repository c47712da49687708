//! The notifier's settings, from environment variables. Every one has a default that works on a
//! laptop with nothing else running: the SMS/push provider and the SMTP server are then served by
//! this process (a simulator and a mailbox), on real sockets like any other.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `NOTIFIER_ADDR` | `127.0.0.1:8083` | where the API listens |
//! | `NOTIFIER_CALLER_KEY` | unset | an API key (`sk_` and 40 hex digits) registered at start as a caller, for demos, load tests and deployments whose callers the operator sets |
//! | `SDLAB_ADMIN_TOKEN` | unset: the switches stay shut over HTTP | the token (`sk_` and 40 hex digits) that opens the fault switches: the notifier's own (`database`, `broker`: `PUT /admin/faults/{name}`) and those of the simulator and the mailbox |
//! | `NOTIFIER_PROVIDER_URL` | unset | a running SMS/push provider; unset: this process serves the simulator |
//! | `NOTIFIER_SMTP_URL` | unset | an SMTP server (`smtp://host:port`); unset: this process serves the mailbox |
//! | `NOTIFIER_PROVIDER_ADDR` | `127.0.0.1:8093` | without `NOTIFIER_PROVIDER_URL`: where the simulator listens |
//! | `NOTIFIER_SMTP_SINK_ADDR` | `127.0.0.1:1025` | without `NOTIFIER_SMTP_URL`: where the mailbox takes SMTP |
//! | `NOTIFIER_MAILBOX_ADDR` | `127.0.0.1:8025` | without `NOTIFIER_SMTP_URL`: the mailbox's page (ports as MailHog and Mailpit use) |
//! | `NOTIFIER_SMTP_FROM` | `notifier@sdlab.local` | the sender of every email |
//! | `NOTIFIER_PROVIDER_TIMEOUT_MS` | `5000` | a provider call that takes longer is retried, with the same key |
//! | `NOTIFIER_WEBHOOK_SECRET` | a development secret | the HMAC key webhooks are signed with (set it in production) |
//! | `NOTIFIER_WEBHOOK_ALLOW_PRIVATE` | `false` | `true` lets webhooks reach private and loopback addresses (local testing only) |
//! | `NOTIFIER_TOPIC_PREFIX` | `notifications` | the prefix of every topic and consumer group the pipeline uses |
//! | `NOTIFIER_PARTITIONS` | `4` | partitions per topic the pipeline creates |
//! | `NOTIFIER_RETRY_DELAYS` | `5s,30s,5m` | one retry topic per delay; after the last, dead letters |
//! | `NOTIFIER_THROTTLE_LIMIT`, `NOTIFIER_THROTTLE_WINDOW` | `20`, `1h` | normal notifications per user and channel within the window; more are dropped |
//! | `NOTIFIER_WORKERS` | `2` | consumers per channel topic |
//! | `NOTIFIER_BATCH_SIZE` | `100` | the most records a stage handles at once (one query, one publish, one commit; a worker's provider calls in flight) |
//! | `NOTIFIER_PAYMENTS_TOPIC` | `payments.events` | where payment events come from, for receipts; `off` for none |
//! | `NOTIFIER_RELAY_INTERVAL_MS` | `500` | how often the outbox relay looks for rows besides being woken |
//! | `DATABASE_URL`, `KAFKA_BROKERS` | unset | the real backends (see `platform::config`) |

use std::{net::SocketAddr, time::Duration};

use platform::{
    auth::{AdminToken, ApiKey, env_key},
    config::{Backends, ConfigError, env_opt, env_or, env_positive},
};

use crate::{SYSTEM, domain::Throttle, pipeline::PipelineSettings};

/// The webhook secret when none is set: fine on a laptop, announced at start-up as unfit for
/// anything else.
pub const DEVELOPMENT_WEBHOOK_SECRET: &str = "whsec_sdlab_development_only";

#[derive(Debug, Clone)]
pub struct Settings {
    pub addr: SocketAddr,
    pub backends: Backends,
    /// A caller's key to register at start (`NOTIFIER_CALLER_KEY`).
    pub caller_key: Option<ApiKey>,
    /// Opens the fault switches over HTTP, the notifier's own and the local providers'
    /// (`SDLAB_ADMIN_TOKEN`).
    pub admin_token: Option<AdminToken>,
    /// The SMS/push provider; `None`: the simulator, served here.
    pub provider_url: Option<String>,
    /// The SMTP server; `None`: the mailbox, served here.
    pub smtp_url: Option<String>,
    /// Where the simulator listens, when it runs here.
    pub provider_addr: SocketAddr,
    /// Where the mailbox takes SMTP, when it runs here.
    pub smtp_sink_addr: SocketAddr,
    /// Where the mailbox's page is, when it runs here.
    pub mailbox_addr: SocketAddr,
    pub smtp_from: String,
    pub provider_timeout: Duration,
    pub webhook_secret: String,
    pub webhook_allow_private: bool,
    pub pipeline: PipelineSettings,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let payments_topic = match env_or("NOTIFIER_PAYMENTS_TOPIC", "payments.events".to_owned())?
        {
            off if off == "off" => None,
            topic => Some(topic),
        };
        Ok(Self {
            addr: env_or("NOTIFIER_ADDR", SocketAddr::from(([127, 0, 0, 1], 8083)))?,
            backends: Backends::from_env(SYSTEM)?,
            caller_key: env_key("NOTIFIER_CALLER_KEY")?,
            admin_token: AdminToken::from_env()?,
            provider_url: env_opt("NOTIFIER_PROVIDER_URL")?,
            smtp_url: env_opt("NOTIFIER_SMTP_URL")?,
            provider_addr: env_or(
                "NOTIFIER_PROVIDER_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8093)),
            )?,
            smtp_sink_addr: env_or(
                "NOTIFIER_SMTP_SINK_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 1025)),
            )?,
            mailbox_addr: env_or(
                "NOTIFIER_MAILBOX_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8025)),
            )?,
            smtp_from: env_or("NOTIFIER_SMTP_FROM", "notifier@sdlab.local".to_owned())?,
            provider_timeout: Duration::from_millis(env_positive(
                "NOTIFIER_PROVIDER_TIMEOUT_MS",
                5000,
            )?),
            webhook_secret: env_or(
                "NOTIFIER_WEBHOOK_SECRET",
                DEVELOPMENT_WEBHOOK_SECRET.to_owned(),
            )?,
            webhook_allow_private: env_or("NOTIFIER_WEBHOOK_ALLOW_PRIVATE", false)?,
            pipeline: PipelineSettings {
                topic_prefix: env_or("NOTIFIER_TOPIC_PREFIX", "notifications".to_owned())?,
                partitions: u32::try_from(env_positive("NOTIFIER_PARTITIONS", 4)?)
                    .unwrap_or(u32::MAX),
                retry_delays: durations(
                    "NOTIFIER_RETRY_DELAYS",
                    &env_or("NOTIFIER_RETRY_DELAYS", "5s,30s,5m".to_owned())?,
                )?,
                throttle: Throttle {
                    limit: u32::try_from(env_positive("NOTIFIER_THROTTLE_LIMIT", 20)?)
                        .unwrap_or(u32::MAX),
                    window: duration(
                        "NOTIFIER_THROTTLE_WINDOW",
                        &env_or("NOTIFIER_THROTTLE_WINDOW", "1h".to_owned())?,
                    )?,
                },
                workers_per_channel: usize::try_from(env_positive("NOTIFIER_WORKERS", 2)?)
                    .unwrap_or(1),
                batch_size: usize::try_from(env_positive("NOTIFIER_BATCH_SIZE", 100)?)
                    .unwrap_or(100),
                payments_topic,
                relay_interval: Duration::from_millis(env_positive(
                    "NOTIFIER_RELAY_INTERVAL_MS",
                    500,
                )?),
            },
        })
    }

    /// Settings for tests: every provider served here on a free port, webhooks allowed to reach
    /// loopback (the test's receiver), short retry delays, a topic prefix of its own, and no
    /// receipts (tests that want them name a topic).
    pub fn for_tests() -> Self {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            addr: any_port,
            backends: Backends::for_tests(),
            caller_key: None,
            admin_token: None,
            provider_url: None,
            smtp_url: None,
            provider_addr: any_port,
            smtp_sink_addr: any_port,
            mailbox_addr: any_port,
            smtp_from: "notifier@sdlab.test".to_owned(),
            provider_timeout: Duration::from_millis(500),
            webhook_secret: "whsec_test".to_owned(),
            webhook_allow_private: true,
            pipeline: PipelineSettings {
                topic_prefix: format!("test.{}", uuid::Uuid::new_v4().simple()),
                partitions: 2,
                retry_delays: vec![Duration::from_millis(100), Duration::from_millis(200)],
                throttle: Throttle {
                    limit: 20,
                    window: Duration::from_secs(3600),
                },
                workers_per_channel: 1,
                batch_size: 100,
                payments_topic: None,
                relay_interval: Duration::from_millis(100),
            },
        }
    }
}

fn duration(name: &str, text: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text.trim())
        .ok()
        .filter(|duration| !duration.is_zero())
        .ok_or_else(|| ConfigError {
            name: name.into(),
            value: text.into(),
            reason: "expected a duration such as 500ms, 30s, 5m".into(),
        })
}

fn durations(name: &str, text: &str) -> Result<Vec<Duration>, ConfigError> {
    text.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| duration(name, part))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_are_a_comma_separated_list_of_durations() {
        assert_eq!(
            durations("X", "5s, 30s,5m").unwrap(),
            [5, 30, 300].map(Duration::from_secs)
        );
        assert!(durations("X", "5s,soon").is_err());
        assert!(durations("X", "0s").is_err());
    }
}
