//! Building and running the service: connect the database, migrate, assemble, serve. The one
//! place where the backends are chosen.

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use axum::Router;
use platform::{
    clock::{Clock, SystemClock},
    db::Database,
    health::{Need, Readiness},
};
use tokio::net::TcpListener;

use crate::{
    http::{self, AppState},
    service::Notifier,
    settings::Settings,
    store,
};

/// The PostgreSQL schema the notifier's tables live in.
pub const SCHEMA: &str = "notifier";

pub struct Application {
    listener: TcpListener,
    router: Router,
    notifier: Arc<Notifier>,
    database: Database,
    settings: Settings,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let database = Database::connect(&settings.backends.database, SCHEMA)
            .await
            .context("connecting to the database")?;
        Self::build_with(settings, database, Arc::new(SystemClock)).await
    }

    /// Builds on a database the caller connected (tests pass their own, and a manual clock).
    pub async fn build_with(
        settings: Settings,
        database: Database,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        database
            .migrate(store::MIGRATIONS)
            .await
            .context("migrating the database")?;
        let notifier = Arc::new(Notifier::new(store::for_database(&database), clock));
        let readiness = Readiness::new().database(database.clone(), Need::Required);
        let router = http::app(
            AppState {
                notifier: notifier.clone(),
            },
            readiness,
        );
        let listener = TcpListener::bind(settings.addr)
            .await
            .with_context(|| format!("binding {}", settings.addr))?;
        Ok(Self {
            listener,
            router,
            notifier,
            database,
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

    /// What the service runs on, for banners.
    pub fn describe_backends(&self) -> String {
        self.settings.backends.database.to_string()
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), database = self.database.engine(), "notifier listening");
        let served = platform::http::serve(self.listener, self.router, shutdown).await;
        self.database.close().await;
        served.context("serving HTTP")
    }
}
