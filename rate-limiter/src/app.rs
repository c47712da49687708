//! Building and running the service: load the rules, choose the store, serve.
//!
//! This is the one place where the store is chosen: Redis when `REDIS_URL` is set, the
//! in-process store otherwise. Everything past this file sees an `Arc<dyn Store>` inside the
//! [`Limiter`], behind the `redis` fault switch ([`FaultyStore`], `/admin/faults/redis` on the
//! decision API's port), so the switch acts on the decision API and the gateway alike.
//!
//! With an upstream configured, the service has two listeners over one limiter: the decision
//! API, and the gateway (`gateway.rs`). They stop together: the first to stop, for a shutdown or
//! an error, stops the other, and both let their in-flight requests finish.

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use axum::Router;
use platform::{
    clock::SystemClock, fault::FaultSwitches, health::Readiness, shutdown::CancellationToken,
};
use tokio::net::TcpListener;

use crate::{
    SYSTEM, gateway,
    http::AppState,
    limiter::Limiter,
    rules::{self, Callers, DEFAULT_RULES, RulesFile},
    settings::{Settings, Upstream},
    store::{EvictionPolicy, FaultyStore, MemoryStore, RedisStore, Store},
};

pub struct Application {
    listener: TcpListener,
    router: Router,
    limiter: Arc<Limiter>,
    backend: String,
    /// Present when an upstream is configured.
    gateway: Option<Gateway>,
}

struct Gateway {
    listener: TcpListener,
    router: Router,
    upstream: Upstream,
}

impl Application {
    /// Loads the rules, connects the store and binds the listeners.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let rules = match &settings.rules_file {
            Some(path) => rules::load(path)?,
            None => rules::parse(DEFAULT_RULES, rules::Format::Toml, "rules.toml (built in)")?,
        };
        let (store, backend): (Arc<dyn Store>, String) = match &settings.redis_url {
            Some(url) => {
                let (store, eviction) = RedisStore::connect(url, format!("sdlab:{SYSTEM}:"))
                    .await
                    .context("connecting to Redis")?;
                match eviction {
                    EvictionPolicy::Safe => {}
                    EvictionPolicy::Evicts(policy) => tracing::warn!(
                        policy,
                        "Redis may evict rate-limit keys under memory pressure, which resets \
                         those clients' limits; set maxmemory-policy to noeviction"
                    ),
                    EvictionPolicy::Unknown => tracing::warn!(
                        "cannot read Redis's maxmemory-policy; make sure it is noeviction"
                    ),
                }
                (
                    Arc::new(store),
                    format!("Redis at {}", platform::config::redact(url)),
                )
            }
            None => (
                Arc::new(MemoryStore::new(Arc::new(SystemClock))),
                "in-process store".into(),
            ),
        };
        Self::build_with(settings, rules, store, backend).await
    }

    /// Builds on rules and a store the caller made (tests pass their own, with a manual clock).
    pub async fn build_with(
        settings: Settings,
        rules: impl Into<RulesFile>,
        store: Arc<dyn Store>,
        backend: String,
    ) -> anyhow::Result<Self> {
        let RulesFile { rules, callers } = rules.into();
        let callers = Arc::new(Callers::new(callers, settings.caller_key.as_ref(), &rules));
        let faults = FaultSwitches::new(SYSTEM);
        let store: Arc<dyn Store> = Arc::new(FaultyStore::new(store, faults.add("redis")));
        let limiter = Arc::new(Limiter::new(
            rules,
            store.clone(),
            settings.over_limit_entries,
        ));
        // Redis is optional for readiness: rules that fail open keep admitting without it, and
        // taking every instance out of the load balancer would turn a Redis outage into a full
        // one. `/readyz` reports "degraded" instead.
        let readiness = Readiness::new()
            .optional_probe("store", move || {
                let store = store.clone();
                async move { store.ping().await.map_err(|err| err.to_string()) }
            })
            .backend("store", &backend);
        let router = crate::http::app(
            AppState {
                limiter: limiter.clone(),
                callers,
            },
            readiness,
            faults.router(settings.admin_token.clone()),
        );
        let listener = TcpListener::bind(settings.addr)
            .await
            .with_context(|| format!("binding {}", settings.addr))?;
        let gateway = match settings.upstream {
            Some(upstream) => Some(Gateway {
                listener: TcpListener::bind(settings.gateway_addr)
                    .await
                    .with_context(|| format!("binding the gateway to {}", settings.gateway_addr))?,
                router: gateway::router(limiter.clone(), upstream.clone()),
                upstream,
            }),
            None => None,
        };
        Ok(Self {
            listener,
            router,
            limiter,
            backend,
            gateway,
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

    /// The decision API's router, to drive with `oneshot` in tests.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The gateway's port, if an upstream is configured.
    pub fn gateway_port(&self) -> Option<u16> {
        self.gateway.as_ref().map(|gateway| {
            gateway
                .listener
                .local_addr()
                .expect("a bound listener has an address")
                .port()
        })
    }

    /// The gateway's router, if an upstream is configured, to drive with `oneshot` in tests.
    pub fn gateway_router(&self) -> Option<Router> {
        self.gateway.as_ref().map(|gateway| gateway.router.clone())
    }

    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    /// What the limiter runs on, for banners.
    pub fn describe_backends(&self) -> &str {
        &self.backend
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), store = self.backend, "rate-limiter listening");
        let Self {
            listener,
            router,
            gateway,
            ..
        } = self;
        let stop = CancellationToken::new();

        let stop_on_shutdown = async {
            tokio::select! {
                () = shutdown => stop.cancel(),
                // Both servers stopped on their own; nothing is left to stop.
                () = stop.cancelled() => {}
            }
        };
        let api = async {
            let served = platform::http::serve(listener, router, stop.clone().cancelled_owned())
                .await
                .context("serving the decision API");
            stop.cancel();
            served
        };
        let gateway = async {
            let Some(Gateway {
                listener,
                router,
                upstream,
            }) = gateway
            else {
                return Ok(());
            };
            let addr = listener.local_addr()?;
            tracing::info!(%addr, %upstream, "rate-limiter gateway listening");
            let served = platform::http::serve(listener, router, stop.clone().cancelled_owned())
                .await
                .context("serving the gateway");
            stop.cancel();
            served
        };
        let ((), api, gateway) = tokio::join!(stop_on_shutdown, api, gateway);
        api.and(gateway)
    }
}
