//! Reading every target's `/metrics` and `/readyz` once a scrape interval (a second by default),
//! all targets at once, into the [`Window`].
//!
//! The console knows the systems only as a client does, over HTTP, so it watches the lab and any
//! deployment whose URLs it is given the same way.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::future::join_all;
use platform::shutdown::CancellationToken;
use reqwest::{Client, StatusCode};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::time::{MissedTickBehavior, interval};
use url::Url;

use crate::{
    settings::{Target, Targets},
    signals::Reading,
    window::{Scrape, Window},
};

#[derive(Clone)]
pub struct Scraper {
    client: Client,
    targets: Targets,
    window: Arc<Mutex<Window>>,
    every: Duration,
}

impl Scraper {
    pub fn new(targets: Targets, window: Arc<Mutex<Window>>, every: Duration) -> Self {
        // A scrape slower than the interval is a failed one: the next is already due.
        let timeout = every.min(Duration::from_secs(2));
        let client = Client::builder()
            .timeout(timeout)
            .no_proxy()
            .build()
            .expect("a client with no TLS and no proxy builds");
        Self {
            client,
            targets,
            window,
            every,
        }
    }

    /// Scrapes every interval until `stop`. A scrape that overruns delays the next rather than
    /// bunching them up.
    pub async fn run_until_stopped(self, stop: CancellationToken) {
        let mut ticks = interval(self.every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => self.scrape_all().await,
            }
        }
    }

    /// One scrape of every target, recorded at the time it started.
    pub async fn scrape_all(&self) {
        let at = unix_millis(OffsetDateTime::now_utc());
        let scrapes = self.targets.iter().map(|target| self.scrape_system(target));
        for (target, scrapes) in self.targets.iter().zip(join_all(scrapes).await) {
            self.window
                .lock()
                .expect("the window's lock is never held across a panic")
                .record(&target.system, at, scrapes);
        }
    }

    async fn scrape_system(&self, target: &Target) -> Vec<Scrape> {
        let scrapes = target
            .instances
            .iter()
            .map(|url| self.scrape_instance(url, &target.system));
        join_all(scrapes).await
    }

    async fn scrape_instance(&self, base: &Url, system: &str) -> Scrape {
        let (reading, (ready, readyz)) =
            tokio::join!(self.metrics(base, system), self.readiness(base));
        let field = |name: &str| readyz.get(name).cloned().unwrap_or(Value::Null);
        Scrape {
            ready,
            checks: field("checks"),
            backends: field("backends"),
            reading,
        }
    }

    async fn metrics(&self, base: &Url, system: &str) -> Result<Reading, String> {
        let url = base.join("metrics").map_err(|err| err.to_string())?;
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|err| describe(&err))?;
        if response.status() != StatusCode::OK {
            return Err(format!("/metrics answered {}", response.status()));
        }
        let text = response.text().await.map_err(|err| describe(&err))?;
        Reading::parse(&text, system)
            .map_err(|err| format!("/metrics is not Prometheus text: {err}"))
    }

    /// Whether `/readyz` answers 200, and what it says (its checks, its backends).
    async fn readiness(&self, base: &Url) -> (Option<bool>, Value) {
        let Ok(url) = base.join("readyz") else {
            return (None, Value::Null);
        };
        match self.client.get(url).send().await {
            Ok(response) => {
                let ready = response.status() == StatusCode::OK;
                let body = response.json::<Value>().await.unwrap_or(Value::Null);
                (Some(ready), body)
            }
            Err(_) => (Some(false), Value::Null),
        }
    }
}

/// reqwest's error, with its cause (`connection refused`), which its own message leaves out.
fn describe(err: &reqwest::Error) -> String {
    let mut text = if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        "could not connect".to_owned()
    } else {
        err.to_string()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

pub fn unix_millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}
