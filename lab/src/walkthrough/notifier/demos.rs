//! The notifier the walkthrough starts for its live parts: as `NOTIFIER_*` and the backend
//! variables configure it, on free ports, with its SMS/push simulator and mailbox served here,
//! retry delays of its own ([`RETRY_DELAYS`]), so that a chain of retries takes a second or two
//! rather than DESIGN.md's five minutes, and a topic prefix of its own run, so that a lab on the
//! same broker does not take its jobs.

use std::{
    net::SocketAddr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;

use crate::walkthrough::stage::{Servers, Shown, Stage};

/// The demonstrations, by the ids WALKTHROUGH.toml's claims name.
pub const DEMOS: &[&str] = &[];

/// The walkthrough's retry topics: DESIGN.md's schedule (`5s,30s,5m`) shortened, so that the
/// demonstrations wait for seconds, not minutes. The rule is the same: one topic per delay, then a
/// dead letter.
pub const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_millis(1_000),
];

/// A notifier started for the walkthrough.
pub struct Live {
    servers: Servers,
    url: String,
    backends: String,
}

impl Live {
    /// The notifier as `NOTIFIER_*` and the backend variables configure it, on free ports, with
    /// its simulator and mailbox served here and short retry delays.
    pub async fn start() -> anyhow::Result<Self> {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut servers = Servers::new()?;
        let mut settings = ::notifier::Settings::from_env()?;
        settings.addr = any_port;
        settings.provider_url = None;
        settings.smtp_url = None;
        settings.provider_addr = any_port;
        settings.smtp_sink_addr = any_port;
        settings.mailbox_addr = any_port;
        settings.caller_key = None;
        settings.pipeline.topic_prefix = format!("walkthrough.{}", run_id());
        settings.pipeline.retry_delays = RETRY_DELAYS.to_vec();
        settings.pipeline.payments_topic = None;
        servers.embed("notifier", &mut settings.backends);
        let app = build(settings)?;
        let (url, backends) = (
            format!("http://{}", app.local_addr()),
            app.describe_backends(),
        );
        servers.spawn(app.run_until_stopped(servers.until()));
        Ok(Self {
            servers,
            url,
            backends,
        })
    }
}

#[async_trait]
impl Stage for Live {
    fn url(&self) -> String {
        self.url.clone()
    }

    fn backends(&self) -> String {
        format!("{}, retries after {}", self.backends, schedule())
    }

    async fn demonstrate(&mut self, demo: &str, _shown: &mut Shown) -> anyhow::Result<()> {
        anyhow::bail!("the notifier has no demonstration {demo:?}")
    }

    async fn stop(self: Box<Self>) -> anyhow::Result<()> {
        self.servers.stop().await
    }
}

/// `Application::build`, run to completion on this thread. rustc cannot prove its future `Send`
/// ("implementation of `Send` is not general enough": a higher-ranked lifetime in opening the
/// embedded topics, `platform::topic::connect`), so it can be neither awaited inside the `Send`
/// future of [`Subject::stage`](crate::walkthrough::Subject::stage) nor spawned. `block_on` asks
/// for no `Send`, and `block_in_place` lets the runtime's other tasks go on meanwhile; it needs
/// the multi-threaded runtime, which the walkthrough's timer needs too.
fn build(settings: ::notifier::Settings) -> anyhow::Result<::notifier::Application> {
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(::notifier::Application::build(settings))
    })
}

/// The retry delays, as `250ms, 500ms, 1s`.
fn schedule() -> String {
    RETRY_DELAYS
        .iter()
        .map(|delay| format!("{delay:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A string no other run has: the nanoseconds since the epoch, in hex.
fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    format!("{nanos:x}")
}
