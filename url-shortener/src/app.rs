//! Building and running the service: connect the backends, migrate, assemble, serve.
//!
//! This is the one place where the backends are chosen: `platform::db::Database::connect` picks
//! PostgreSQL or SQLite from `DATABASE_URL`, `platform::cache::connect` picks Redis or the
//! in-process cache from `REDIS_URL`, and [`store::for_database`] picks the matching store.
//! Everything past this file sees only `Arc<dyn LinkStore>` and `Arc<dyn Cache>`.
//!
//! It is also where each is put behind its fault switch: `database` in front of the store and the
//! API keys, `redis` in front of the cache (whichever backend it is), so a switch acts the same
//! on the embedded backends and the real engines.

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use axum::Router;
use platform::{
    cache::{self, Cache, FaultyCache},
    clock::{Clock, SystemClock},
    db::Database,
    fault::FaultSwitches,
    health::{Need, Readiness},
    shutdown::CancellationToken,
};
use tokio::net::TcpListener;

use crate::{
    SYSTEM,
    cache::LinkCache,
    domain::Permutation,
    http::{self, AppState},
    ids::CodeGenerator,
    service::Shortener,
    settings::Settings,
    store::{self, FaultyKeys, FaultyStore, LinkStore},
    targets::{Resolver, SystemResolver, Targets},
};

/// The PostgreSQL schema the shortener's tables live in.
pub const SCHEMA: &str = "url_shortener";

pub struct Application {
    listener: TcpListener,
    router: Router,
    shortener: Arc<Shortener>,
    database: Database,
    cache: Arc<dyn Cache>,
    settings: Settings,
}

impl Application {
    /// Connects to the configured backends and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let database = Database::connect(&settings.backends.database, SCHEMA)
            .await
            .context("connecting to the database")?;
        let cache = cache::connect(&settings.cache_config())
            .await
            .context("connecting to the cache")?;
        Self::build_with(
            settings,
            database,
            cache,
            Arc::new(SystemClock),
            Arc::new(SystemResolver),
        )
        .await
    }

    /// Builds on backends the caller connected (tests pass their own, a manual clock, and a
    /// resolver that answers from a table).
    pub async fn build_with(
        settings: Settings,
        database: Database,
        cache: Arc<dyn Cache>,
        clock: Arc<dyn Clock>,
        resolver: Arc<dyn Resolver>,
    ) -> anyhow::Result<Self> {
        database
            .migrate(store::MIGRATIONS)
            .await
            .context("migrating the database")?;
        if settings.uses_development_secret() {
            tracing::warn!(
                "SHORTENER_ID_SECRET is not set: codes use the development permutation key"
            );
        }

        // Bound before the service is built: the port it listens on is one a target URL must not
        // lead back to, and with port 0 it is known only now.
        let listener = TcpListener::bind(settings.addr)
            .await
            .with_context(|| format!("binding {}", settings.addr))?;
        let targets = Targets::new(
            settings.served_at(listener.local_addr().context("reading the bound address")?),
            resolver,
        );
        let faults = FaultSwitches::new(SYSTEM);
        let database_switch = faults.add("database");
        let store: Arc<dyn LinkStore> = Arc::new(FaultyStore::new(
            store::for_database(&database),
            database_switch.clone(),
        ));
        let cache: Arc<dyn Cache> = Arc::new(FaultyCache::new(
            cache,
            faults.add("redis"),
            settings.redis_timeout,
        ));
        let shortener = Arc::new(Shortener::new(
            store.clone(),
            FaultyKeys::new(store::api_keys(&database), database_switch.clone()),
            LinkCache::new(
                cache.clone(),
                settings.cache_ttl,
                settings.negative_cache_ttl,
            ),
            CodeGenerator::new(
                store,
                Permutation::new(&settings.id_secret),
                settings.id_block_size,
            ),
            clock,
            settings.base_url.clone(),
            targets,
        ));
        // Both optional: cached links keep redirecting while the database is down, and every
        // read falls back to the database while the cache is down. Failing readiness would take
        // every instance out of the load balancer at once and turn either into a full outage;
        // `/readyz` reports "degraded" instead.
        // Both probes pass their switch, so a switched-off dependency is reported like a real one.
        let readiness = Readiness::new()
            .database_behind(database.clone(), database_switch.clone(), Need::Optional)
            .cache(cache.clone(), Need::Optional);
        let router = http::app(
            AppState {
                shortener: shortener.clone(),
                redirect: settings.redirect,
            },
            readiness,
            faults.router(settings.admin_token.clone()),
        );
        Ok(Self {
            listener,
            router,
            shortener,
            database,
            cache,
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

    pub fn shortener(&self) -> &Arc<Shortener> {
        &self.shortener
    }

    /// What the service runs on, for banners: `SQLite at data/url-shortener.sqlite, memory cache`.
    pub fn describe_backends(&self) -> String {
        format!(
            "{}, {} cache",
            self.settings.backends.database,
            self.cache.backend()
        )
    }

    /// Serves until `shutdown` completes, lets in-flight requests finish, then writes the
    /// remaining visit tallies and closes the database.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop_flusher = CancellationToken::new();
        let flusher = tokio::spawn(
            self.shortener
                .visits()
                .clone()
                .run(self.settings.visit_flush_interval, stop_flusher.clone()),
        );
        tracing::info!(addr = %self.local_addr(), database = self.database.engine(), "url-shortener listening");

        let served = platform::http::serve(self.listener, self.router, shutdown).await;

        stop_flusher.cancel();
        flusher.await.context("the visit flusher panicked")?;
        self.database.close().await;
        served.context("serving HTTP")
    }
}
