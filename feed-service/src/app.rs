//! Building and running the service: connect the database, migrate, assemble, serve.
//!
//! This is the one place where the backends and the strategy are chosen:
//! `platform::db::Database::connect` picks PostgreSQL or SQLite from `DATABASE_URL`,
//! [`store::for_database`] the matching store, and [`timeline::for_strategy`] how home feeds are
//! built from `FEED_STRATEGY`.

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
    ids::Snowflake,
    service::Feed,
    settings::Settings,
    store, timeline,
};

/// The PostgreSQL schema the feed's tables live in.
pub const SCHEMA: &str = "feed_service";

pub struct Application {
    listener: TcpListener,
    router: Router,
    feed: Arc<Feed>,
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
        let store = store::for_database(&database);
        let feed = Arc::new(Feed::new(
            store.clone(),
            timeline::for_strategy(settings.strategy, store),
            Arc::new(Snowflake::new(settings.instance, clock.clone())),
            clock,
        ));
        // Required: every answer, feeds included, comes from the database.
        let readiness = Readiness::new().database(database.clone(), Need::Required);
        let router = http::app(AppState { feed: feed.clone() }, readiness);
        let listener = TcpListener::bind(settings.addr)
            .await
            .with_context(|| format!("binding {}", settings.addr))?;
        Ok(Self {
            listener,
            router,
            feed,
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

    /// The service's router, to drive with `oneshot` in tests.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    pub fn feed(&self) -> &Arc<Feed> {
        &self.feed
    }

    /// What the service runs on, for banners: `SQLite at data/feed-service.sqlite, pull (fan-out
    /// on read), instance 0`.
    pub fn describe_backends(&self) -> String {
        format!(
            "{}, {}, instance {}",
            self.settings.backends.database,
            self.settings.strategy,
            self.settings.instance.get()
        )
    }

    /// Serves until `shutdown` completes, lets in-flight requests finish, then closes the
    /// database.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(
            addr = %self.local_addr(),
            database = self.database.engine(),
            strategy = %self.settings.strategy,
            "feed-service listening"
        );
        let served = platform::http::serve(self.listener, self.router, shutdown).await;
        self.database.close().await;
        served.context("serving HTTP")
    }
}
