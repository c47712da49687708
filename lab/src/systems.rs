//! The five systems, each built by the same `Application::build` its own binary uses, and the
//! console watching them, run together until a stop is asked for.

use std::{future::Future, pin::Pin};

use platform::{
    auth::{AdminToken, ApiKey},
    shutdown::CancellationToken,
};
use tokio::task::JoinSet;

use crate::engines::EngineProxies;

pub struct Systems {
    pub shortener: url_shortener::Application,
    pub limiter: rate_limiter::Application,
    pub payments: idempotency_demo::Application,
    pub notifier: notifier::Application,
    pub feed: feed_service::Application,
    /// The web console, watching the five where they listen (unless `CONSOLE_TARGETS` says
    /// otherwise).
    pub console: console::Application,
    /// The key the rate limiter's decision API takes from the lab (`RATE_LIMITER_CALLER_KEY` if
    /// set, else one made for this run), for the banner's curl lines.
    pub limiter_key: ApiKey,
    /// The token that opens the simulators' and the mailbox's fault switches
    /// (`SDLAB_ADMIN_TOKEN` if set, else one made for this run), for the banner.
    pub admin_token: AdminToken,
    /// The proxies between the systems and their real engines, if any (`crate::engines`).
    pub engines: EngineProxies,
}

type Running = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

impl Systems {
    /// Builds every system from its environment variables. The rate limiter's gateway stands in
    /// front of the shortener, unless `RATE_LIMITER_UPSTREAM` names another origin, and its
    /// decision API takes a key made for this run unless `RATE_LIMITER_CALLER_KEY` gives one; so
    /// do payments (`PAYMENTS_DEMO_KEY`) and the notifier (`NOTIFIER_CALLER_KEY`), for the
    /// console's load runs; the fault switches open to one admin token, made for this run unless
    /// `SDLAB_ADMIN_TOKEN` is set.
    pub async fn build() -> anyhow::Result<Self> {
        // One admin token opens every fault switch of the run: the systems' own (their
        // database, Redis, broker, worker: `/admin/faults`) and the simulators'.
        let admin_token = AdminToken::from_env()?.unwrap_or_else(AdminToken::generate);
        // Each system's real engines through a proxy of its own, which the same token opens.
        let mut engines = EngineProxies::from_env(&admin_token).await?;
        let mut shortener_settings = url_shortener::Settings::from_env()?;
        shortener_settings.admin_token = Some(admin_token.clone());
        engines
            .route("url-shortener", &mut shortener_settings.backends)
            .await?;
        let shortener = url_shortener::Application::build(shortener_settings).await?;
        let mut limiter_settings = rate_limiter::Settings::from_env()?;
        limiter_settings.admin_token = Some(admin_token.clone());
        engines
            .route_redis("rate-limiter", &mut limiter_settings.redis_url)
            .await?;
        if limiter_settings.upstream.is_none() {
            let origin = format!("http://127.0.0.1:{}", shortener.port());
            limiter_settings.upstream = Some(origin.parse().map_err(anyhow::Error::msg)?);
        }
        let limiter_key = limiter_settings
            .caller_key
            .get_or_insert_with(ApiKey::generate)
            .clone();
        let mut payments_settings = idempotency_demo::Settings::from_env()?;
        payments_settings.admin_token = Some(admin_token.clone());
        engines
            .route("idempotency-demo", &mut payments_settings.backends)
            .await?;
        // The keys the console's k6 runs send: a payments client that is no notifier user (so a
        // run sends no receipts to the mailbox the notifier's run counts) and a notifier caller.
        let payments_key = payments_settings
            .demo_key
            .get_or_insert_with(ApiKey::generate)
            .clone();
        let payments_provider_url = match &payments_settings.provider {
            idempotency_demo::settings::ProviderSetting::Url(url) => Some(url.clone()),
            idempotency_demo::settings::ProviderSetting::Simulated(_) => None,
        };
        let mut notifier_settings = notifier::Settings::from_env()?;
        notifier_settings.admin_token = Some(admin_token.clone());
        engines
            .route("notifier", &mut notifier_settings.backends)
            .await?;
        let notifier_key = notifier_settings
            .caller_key
            .get_or_insert_with(ApiKey::generate)
            .clone();
        let notifier_provider_url = notifier_settings.provider_url.clone();
        let limiter = rate_limiter::Application::build(limiter_settings).await?;
        let payments = idempotency_demo::Application::build(payments_settings).await?;
        let notifier = notifier::Application::build(notifier_settings).await?;
        let mut feed_settings = feed_service::Settings::from_env()?;
        feed_settings.admin_token = Some(admin_token.clone());
        engines
            .route("feed-service", &mut feed_settings.backends)
            .await?;
        // Hybrid unless FEED_STRATEGY says otherwise: both of the feed's designs run, and its
        // page can pause the fan-out worker (pull has none).
        if std::env::var_os("FEED_STRATEGY").is_none() {
            feed_settings.strategy = feed_service::timeline::Strategy::Hybrid;
        }
        let feed = feed_service::Application::build(feed_settings).await?;
        let mut console_settings = console::Settings::from_env()?;
        if std::env::var_os("CONSOLE_TARGETS").is_none() {
            let at = |port: u16| format!("http://127.0.0.1:{port}");
            console_settings.targets = format!(
                "url-shortener={};rate-limiter={};idempotency-demo={};notifier={};feed-service={}",
                at(shortener.port()),
                at(limiter.port()),
                at(payments.port()),
                at(notifier.port()),
                at(feed.port()),
            )
            .parse()
            .map_err(anyhow::Error::msg)?;
        }
        // What each system's k6 scenario needs to be run from its page, beyond its URL: the
        // keys above, and the simulators where the payments and notifier scenarios count what
        // their run left (the feed's makes its own users).
        if std::env::var_os("CONSOLE_LOAD_ENV").is_none() {
            let var = |name: &str, value: &str| (name.to_owned(), value.to_owned());
            let at = |addr: std::net::SocketAddr| format!("http://{addr}");
            let mut limiter_env = vec![var("API_KEY", limiter_key.expose())];
            if let Some(port) = limiter.gateway_port() {
                limiter_env.push(var("GATEWAY_URL", &format!("http://127.0.0.1:{port}")));
            }
            let mut payments_env = vec![var("API_KEY", payments_key.expose())];
            if let Some(url) = payments
                .provider()
                .map(|provider| at(provider.addr))
                .or(payments_provider_url)
            {
                payments_env.push(var("PROVIDER_URL", &url));
            }
            let local = notifier.local_providers();
            let mut notifier_env = vec![var("API_KEY", notifier_key.expose())];
            if let Some(url) = local
                .simulator
                .as_ref()
                .map(|simulator| at(simulator.addr))
                .or(notifier_provider_url)
            {
                notifier_env.push(var("PROVIDER_URL", &url));
            }
            if let Some(mailbox) = &local.mailbox {
                notifier_env.push(var("MAILBOX_URL", &at(mailbox.addr)));
            }
            console_settings.load_env = console::settings::LoadEnv::new(vec![
                ("rate-limiter".to_owned(), limiter_env),
                ("idempotency-demo".to_owned(), payments_env),
                ("notifier".to_owned(), notifier_env),
            ]);
        }
        // The simulators' fault switches, where this run serves them, open to the same token.
        console_settings.admin_token = Some(admin_token.clone());
        // The engines' proxies, which each system's page shows as its `proxy-<engine>` switches.
        if std::env::var_os("CONSOLE_TOXIPROXY").is_none() {
            console_settings.toxiproxy = engines.api().cloned();
        }
        if std::env::var_os("CONSOLE_SWITCHES").is_none() {
            let mut switches = Vec::new();
            let at = |addr: std::net::SocketAddr, path: &str| format!("http://{addr}{path}");
            if let Some(provider) = payments.provider() {
                switches.push(format!(
                    "idempotency-demo/provider={}",
                    at(provider.addr, "/v1/faults")
                ));
            }
            let local = notifier.local_providers();
            if let Some(simulator) = &local.simulator {
                switches.push(format!(
                    "notifier/sms-push={}",
                    at(simulator.addr, "/v1/faults")
                ));
            }
            if let Some(mailbox) = &local.mailbox {
                switches.push(format!(
                    "notifier/mailbox={}",
                    at(mailbox.addr, "/mailbox/faults")
                ));
            }
            console_settings.switches = switches.join(";").parse().map_err(anyhow::Error::msg)?;
        }
        Ok(Self {
            shortener,
            limiter,
            payments,
            notifier,
            feed,
            console: console::Application::build(console_settings).await?,
            limiter_key,
            admin_token,
            engines,
        })
    }

    /// Runs every system until `stop` is cancelled. If one fails, the others are stopped and the
    /// first failure is returned.
    pub async fn run_until_stopped(mut self, stop: CancellationToken) -> anyhow::Result<()> {
        // The engines' proxies outlive the systems, which may still be writing through them as
        // they stop (the shortener's last visit counts, the outbox's last batch).
        let proxies_stop = CancellationToken::new();
        let proxies = self.engines.take_server().map(|server| {
            tokio::spawn(server.run_until_stopped(proxies_stop.clone().cancelled_owned()))
        });
        let until = || stop.clone().cancelled_owned();
        let systems: [(&str, Running); 6] = [
            (
                "url-shortener",
                Box::pin(self.shortener.run_until_stopped(until())),
            ),
            (
                "rate-limiter",
                Box::pin(self.limiter.run_until_stopped(until())),
            ),
            (
                "idempotency-demo",
                Box::pin(self.payments.run_until_stopped(until())),
            ),
            (
                "notifier",
                Box::pin(self.notifier.run_until_stopped(until())),
            ),
            (
                "feed-service",
                Box::pin(self.feed.run_until_stopped(until())),
            ),
            ("console", Box::pin(self.console.run_until_stopped(until()))),
        ];
        let mut running = JoinSet::new();
        for (name, system) in systems {
            running.spawn(async move { (name, system.await) });
        }
        let mut first_error = None;
        while let Some(joined) = running.join_next().await {
            let (name, result) = joined?;
            if let Err(err) = result {
                tracing::error!(system = name, error = ?err, "system stopped with an error");
                stop.cancel();
                first_error.get_or_insert(err.context(format!("{name} failed")));
            }
        }
        proxies_stop.cancel();
        if let Some(proxies) = proxies
            && let Err(err) = proxies.await?
        {
            tracing::error!(error = ?err, "the engines' proxies stopped with an error");
            first_error
                .get_or_insert(anyhow::Error::new(err).context("the engines' proxies failed"));
        }
        first_error.map_or(Ok(()), Err)
    }
}
