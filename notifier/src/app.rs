//! Building and running the service: connect the database and the topics, migrate, start the
//! local providers if none are configured, assemble, serve. The one place where the backends are
//! chosen, and where each is put behind its fault switch (`/admin/faults`, `DESIGN.md` "Break
//! it"): `database` in front of the store (and intake's groups), the outbox relay's statements
//! and `/readyz`'s probe; `broker` in front of the topics, for every producer and consumer.

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context as _;
use axum::Router;
use platform::{
    clock::{Clock, SystemClock},
    db::Database,
    fault::FaultSwitches,
    health::{Need, Readiness},
    outbox::Relay,
    shutdown::CancellationToken,
    topic::{self, FaultyTopics, Topics},
};
use tokio::{net::TcpListener, sync::Notify, task::JoinSet};

use crate::{
    SYSTEM,
    domain::address::AddressPolicy,
    events::receipts,
    http::{self, AppState},
    messages::Topology,
    pipeline::{self, Context, Pipeline},
    providers::{
        Providers,
        email::EmailSender,
        mailbox::Mailbox,
        phone::{client::ProviderClient, simulator::Simulator},
        webhook::WebhookSender,
    },
    service::Notifier,
    settings::{DEVELOPMENT_WEBHOOK_SECRET, Settings},
    store,
};

/// The PostgreSQL schema the notifier's tables live in.
pub const SCHEMA: &str = "notifier";

pub struct Application {
    listener: TcpListener,
    router: Router,
    notifier: Arc<Notifier>,
    context: Arc<Context>,
    relay: Relay,
    database: Database,
    topics: Arc<dyn Topics>,
    local: LocalProviders,
    settings: Settings,
}

/// The providers this process serves when none are configured, over real sockets like any
/// other: the SMS/push simulator, and the mailbox (an SMTP sink with a page to read what was sent).
pub struct LocalProviders {
    pub simulator: Option<Served<Arc<Simulator>>>,
    pub mailbox: Option<Served<Arc<Mailbox>>>,
    /// Where the mailbox takes SMTP, if it runs.
    pub smtp_addr: Option<SocketAddr>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

/// A local provider and the address of its HTTP API (or page).
pub struct Served<T> {
    pub provider: T,
    pub addr: SocketAddr,
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

    /// Builds on backends the caller connected (tests pass their own).
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
        let local = LocalProviders::start(&settings).await?;
        let provider_url = match (&settings.provider_url, &local.simulator) {
            (Some(url), _) => url.clone(),
            (None, Some(served)) => format!("http://{}", served.addr),
            (None, None) => unreachable!("the simulator runs when no provider URL is set"),
        };
        let smtp_url = match (&settings.smtp_url, local.smtp_addr) {
            (Some(url), _) => url.clone(),
            (None, Some(addr)) => format!("smtp://{addr}"),
            (None, None) => unreachable!("the mailbox runs when no SMTP URL is set"),
        };
        if settings.webhook_secret == DEVELOPMENT_WEBHOOK_SECRET {
            tracing::warn!(
                "webhooks are signed with the development secret: set NOTIFIER_WEBHOOK_SECRET \
                 anywhere a receiver must trust them"
            );
        }
        let webhooks = AddressPolicy::allowing_private(settings.webhook_allow_private);
        let providers = Providers {
            email: EmailSender::new(&smtp_url, &settings.smtp_from, settings.provider_timeout)
                .context("NOTIFIER_SMTP_URL")?,
            phone: ProviderClient::new(&provider_url, settings.provider_timeout),
            webhook: WebhookSender::new(settings.webhook_secret.as_bytes().to_vec(), webhooks),
        };

        pipeline::ensure_topics(&*topics, &settings.pipeline).await?;
        let topology = Topology::new(&settings.pipeline.topic_prefix);
        let wake = Arc::new(Notify::new());
        let store = store::for_database(&database, database_switch.clone());
        let notifier = Arc::new(Notifier::new(
            store.clone(),
            store::callers(&database),
            clock.clone(),
            topology.clone(),
            wake.clone(),
            webhooks,
        ));
        let relay = Relay::new(
            SYSTEM,
            database.clone(),
            topics.producer(),
            clock.clone(),
            wake.clone(),
        )
        .with_database_switch(database_switch.clone());
        let context = Arc::new(Context {
            store,
            providers,
            producer: topics.producer(),
            clock,
            topology,
            settings: settings.pipeline.clone(),
            wake,
        });
        if let Some(key) = &settings.caller_key {
            notifier
                .ensure_caller_key("NOTIFIER_CALLER_KEY", key)
                .await
                .context("registering NOTIFIER_CALLER_KEY")?;
        }
        let router = http::app(
            AppState {
                notifier: notifier.clone(),
            },
            Readiness::new()
                .database_behind(database.clone(), database_switch.clone(), Need::Required)
                .backend("topics", topics.backend()),
            switches.router(settings.admin_token.clone()),
        );
        let listener = TcpListener::bind(settings.addr)
            .await
            .with_context(|| format!("binding {}", settings.addr))?;
        Ok(Self {
            listener,
            router,
            notifier,
            context,
            relay,
            database,
            topics,
            local,
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

    pub fn router(&self) -> Router {
        self.router.clone()
    }

    pub fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    /// The outbox relay the pipeline runs, to measure its backlog in tests.
    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// The simulator and mailbox this process serves, to read and to break in tests and demos.
    pub fn local_providers(&self) -> &LocalProviders {
        &self.local
    }

    /// Starts the delivery pipeline (relay, router, workers) and, beside it, the receipts
    /// consumer. `run_until_stopped` does this; tests call it to control when the pipeline runs,
    /// and to stop or kill it.
    pub async fn start_pipeline(&self) -> anyhow::Result<Pipeline> {
        let mut pipeline = Pipeline::start(self.context.clone(), &*self.topics, self.relay.clone())
            .await
            .context("starting the pipeline")?;
        let settings = &self.settings.pipeline;
        if let Some(payments) = &settings.payments_topic {
            let consumer = self
                .topics
                .subscribe(&self.context.topology.group("receipts"), &[payments])
                .await
                .context("subscribing to the payments events")?;
            let notifier = self.notifier.clone();
            let batch_size = settings.batch_size;
            pipeline.spawn(|stop| receipts::run(notifier, consumer, batch_size, stop));
        }
        Ok(pipeline)
    }

    /// What the service runs on, for banners.
    pub fn describe_backends(&self) -> String {
        let provider = match &self.local.simulator {
            Some(served) => format!("simulated SMS/push on {}", served.addr),
            None => "external SMS/push provider".to_owned(),
        };
        let smtp = match (&self.local.mailbox, self.local.smtp_addr) {
            (Some(served), Some(smtp)) => {
                format!("mailbox SMTP on {smtp}, page on {}", served.addr)
            }
            _ => "external SMTP".to_owned(),
        };
        format!(
            "{}, {} topics, {provider}, {smtp}",
            self.settings.backends.database,
            self.topics.backend()
        )
    }

    /// Serves until `shutdown` completes, with the pipeline running; then stops the pipeline
    /// between records, the local providers, and closes the database.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let pipeline = self.start_pipeline().await?;
        tracing::info!(addr = %self.local_addr(), database = self.database.engine(), topics = self.topics.backend(), "notifier listening");
        let served = platform::http::serve(self.listener, self.router, shutdown).await;
        pipeline.stop().await;
        self.local.stop().await;
        self.database.close().await;
        served.context("serving HTTP")
    }
}

impl LocalProviders {
    async fn start(settings: &Settings) -> anyhow::Result<Self> {
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();

        let simulator = match settings.provider_url {
            Some(_) => None,
            None => {
                let simulator = Simulator::with_admin(settings.admin_token.clone());
                let addr = serve_http(
                    settings.provider_addr,
                    simulator.router(),
                    &stop,
                    &mut tasks,
                )
                .await
                .context("serving the SMS/push simulator")?;
                Some(Served {
                    provider: simulator,
                    addr,
                })
            }
        };

        let (mailbox, smtp_addr) = match settings.smtp_url {
            Some(_) => (None, None),
            None => {
                let mailbox = Mailbox::with_admin(settings.admin_token.clone());
                let listener = TcpListener::bind(settings.smtp_sink_addr)
                    .await
                    .with_context(|| {
                        format!("binding the mailbox on {}", settings.smtp_sink_addr)
                    })?;
                let smtp_addr = listener.local_addr()?;
                tasks.spawn(mailbox.serve_smtp(listener, stop.clone().cancelled_owned()));
                let addr = serve_http(settings.mailbox_addr, mailbox.router(), &stop, &mut tasks)
                    .await
                    .context("serving the mailbox page")?;
                (
                    Some(Served {
                        provider: mailbox,
                        addr,
                    }),
                    Some(smtp_addr),
                )
            }
        };
        Ok(Self {
            simulator,
            mailbox,
            smtp_addr,
            stop,
            tasks,
        })
    }

    async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Serves `router` on `addr` until `stop`; returns the bound address.
async fn serve_http(
    addr: SocketAddr,
    router: Router,
    stop: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let bound = listener.local_addr()?;
    let stopped = stop.clone().cancelled_owned();
    tasks.spawn(async move {
        if let Err(err) = platform::http::serve(listener, router, stopped).await {
            tracing::error!(error = %err, %bound, "serving a local provider failed");
        }
    });
    Ok(bound)
}

impl Drop for LocalProviders {
    fn drop(&mut self) {
        // A test's application is dropped without being run: stop its providers with it.
        self.stop.cancel();
    }
}
