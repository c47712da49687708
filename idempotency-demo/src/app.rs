//! Building and running the service: connect the database, migrate, start or reach the payment
//! provider, assemble, serve.
//!
//! This is the one place where the backends are chosen: `platform::db::Database::connect` picks
//! PostgreSQL or SQLite from `DATABASE_URL`, and [`store::for_database`] the matching store. It
//! is also where each is put behind its fault switch (`/admin/faults`, `DESIGN.md` "Break it"):
//! `database` in front of the store, the relay's reads of the outbox and `/readyz`'s probe;
//! `broker` in front of the topics the relay publishes to.

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use axum::Router;
use platform::{
    auth::AdminToken,
    clock::{Clock, SystemClock},
    db::Database,
    fault::FaultSwitches,
    health::{Need, Readiness},
    outbox::Relay,
    shutdown::CancellationToken,
    topic::{self, FaultyTopics, Topics},
};
use tokio::{net::TcpListener, task::JoinHandle};

use crate::{
    SYSTEM,
    http::{self, AppState},
    provider::{ProviderClient, Simulator},
    service::Payments,
    settings::{ProviderSetting, Settings},
    store,
};

/// The PostgreSQL schema the service's tables live in.
pub const SCHEMA: &str = "idempotency_demo";

pub struct Application {
    listener: TcpListener,
    router: Router,
    payments: Arc<Payments>,
    relay: Relay,
    database: Database,
    topics: Arc<dyn Topics>,
    provider: Option<RunningProvider>,
    settings: Settings,
}

/// The simulator this process serves, when no provider URL is configured.
pub struct RunningProvider {
    pub simulator: Arc<Simulator>,
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let database = Database::connect(&settings.backends.database, SCHEMA)
            .await
            .context("connecting to the database")?;
        let topics = topic::connect(&settings.backends.topics)
            .await
            .context("connecting to the topics")?;
        Self::build_with(settings, database, topics, Arc::new(SystemClock)).await
    }

    /// Builds on backends the caller connected (tests pass their own, and a manual clock).
    pub async fn build_with(
        settings: Settings,
        database: Database,
        topics: Arc<dyn Topics>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        database
            .migrate(store::MIGRATIONS)
            .await
            .context("migrating the database")?;
        let switches = FaultSwitches::new(SYSTEM);
        let database_switch = switches.add("database");
        let topics: Arc<dyn Topics> = Arc::new(FaultyTopics::new(topics, switches.add("broker")));
        let (provider_url, provider) = match &settings.provider {
            ProviderSetting::Url(url) => (url.clone(), None),
            ProviderSetting::Simulated(addr) => {
                let running = RunningProvider::start(*addr, settings.admin_token.clone()).await?;
                (format!("http://{}", running.addr), Some(running))
            }
        };
        // Three partitions: events of different payments are consumed in parallel; the events
        // of one payment (keyed by its id) stay in order.
        topics
            .ensure_topic(&settings.events_topic, 3)
            .await
            .with_context(|| format!("creating the topic {}", settings.events_topic))?;
        let store = Arc::new(store::FaultyStore::new(
            store::for_database(&database),
            database_switch.clone(),
        ));
        let payments = Arc::new(
            Payments::new(
                store,
                store::clients(&database),
                ProviderClient::new(&provider_url, settings.provider_timeout),
                clock.clone(),
                settings.timing,
            )
            .with_topic(&settings.events_topic),
        );
        let relay = Relay::new(
            SYSTEM,
            database.clone(),
            topics.producer(),
            clock,
            payments.finished(),
        )
        .with_database_switch(database_switch.clone());
        if let Some(key) = &settings.demo_key {
            payments
                .ensure_client("demo", key)
                .await
                .context("registering the demo API key")?;
        }
        let readiness = Readiness::new()
            .database_behind(database.clone(), database_switch.clone(), Need::Required)
            .backend("topics", topics.backend());
        #[cfg(feature = "bench")]
        if settings.idempotency == crate::settings::Idempotency::Off {
            tracing::warn!(
                "PAYMENTS_IDEMPOTENCY=off: payments ignore Idempotency-Key and a retry charges \
                 again; this mode exists to measure what idempotency costs"
            );
        }
        let router = http::app(
            AppState {
                payments: payments.clone(),
                idempotency: settings.idempotency,
            },
            readiness,
            switches.router(settings.admin_token.clone()),
        );
        let listener = TcpListener::bind(settings.addr)
            .await
            .with_context(|| format!("binding {}", settings.addr))?;
        Ok(Self {
            listener,
            router,
            payments,
            relay,
            database,
            topics,
            provider,
            settings,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The service's router, to drive with `oneshot` in tests.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    pub fn payments(&self) -> &Arc<Payments> {
        &self.payments
    }

    /// The outbox relay, to run a pass by hand in tests.
    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// The simulator this process serves, if it serves one.
    pub fn provider(&self) -> Option<&RunningProvider> {
        self.provider.as_ref()
    }

    /// What the service runs on, for banners.
    pub fn describe_backends(&self) -> String {
        let provider = match &self.provider {
            Some(running) => format!("simulated provider on {}", running.addr),
            None => "external provider".to_owned(),
        };
        format!(
            "{}, {} topics, {provider}",
            self.settings.backends.database,
            self.topics.backend()
        )
    }

    /// Serves until `shutdown` completes, with the completer and reaper running, then stops the
    /// simulator and closes the database.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop_background = CancellationToken::new();
        let background = tokio::spawn(
            self.payments
                .clone()
                .run_background(self.settings.background_interval, stop_background.clone()),
        );
        let relay = tokio::spawn(
            self.relay
                .clone()
                .run(self.settings.relay_interval, stop_background.clone()),
        );
        tracing::info!(addr = %self.local_addr(), database = self.database.engine(), "idempotency-demo listening");

        let served = platform::http::serve(self.listener, self.router, shutdown).await;

        stop_background.cancel();
        background.await.context("the background jobs panicked")?;
        relay.await.context("the outbox relay panicked")?;
        if let Some(provider) = self.provider {
            provider.stop().await?;
        }
        self.database.close().await;
        served.context("serving HTTP")
    }
}

impl RunningProvider {
    async fn start(addr: SocketAddr, admin: Option<AdminToken>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the provider simulator on {addr}"))?;
        let addr = listener.local_addr()?;
        let simulator = Simulator::with_admin(admin);
        let stop = CancellationToken::new();
        let task = tokio::spawn(platform::http::serve(
            listener,
            simulator.router(),
            stop.clone().cancelled_owned(),
        ));
        Ok(Self {
            simulator,
            addr,
            stop,
            task,
        })
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        (&mut self.task)
            .await?
            .context("serving the provider simulator")
    }
}

impl Drop for RunningProvider {
    fn drop(&mut self) {
        // A test's application is dropped without being run: stop its simulator with it.
        self.stop.cancel();
    }
}
