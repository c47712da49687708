//! Building and running the console: bind, start the scraper, serve.

use std::{
    future::Future,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use anyhow::Context;
use axum::Router;
use platform::shutdown::CancellationToken;
use tokio::net::TcpListener;

use crate::{
    http::{self, AppState},
    scrape::Scraper,
    settings::Settings,
    window::Window,
};

pub struct Application {
    listener: TcpListener,
    router: Router,
    scraper: Scraper,
}

impl Application {
    /// Binds the listener; nothing is scraped until [`Application::run_until_stopped`].
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.addr)
            .await
            .with_context(|| format!("binding {}", settings.addr))?;
        let window = Arc::new(Mutex::new(Window::new(
            &settings.targets,
            settings.window_len(),
        )));
        let scraper = Scraper::new(
            settings.targets.clone(),
            window.clone(),
            settings.scrape_every,
        );
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        let program = match &settings.walkthrough_program {
            Some(program) => program.clone(),
            None => std::env::current_exe().context("finding the console's own executable")?,
        };
        let router = http::app(AppState {
            window,
            settings: Arc::new(settings),
            client,
            load: crate::load::LoadRunner::default(),
            demos: Arc::new(walkthrough::view::Demos::new(program)),
        });
        Ok(Self {
            listener,
            router,
            scraper,
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

    /// The scraper, for tests that scrape at a moment of their choosing.
    pub fn scraper(&self) -> Scraper {
        self.scraper.clone()
    }

    /// The router, for tests that send requests without a socket.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Scrapes and serves until `shutdown` completes.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let scraping = tokio::spawn(self.scraper.run_until_stopped(stop.clone()));
        let served = platform::http::serve(self.listener, self.router, shutdown).await;
        stop.cancel();
        scraping.await.context("the scraper panicked")?;
        served.context("serving the console")
    }
}
