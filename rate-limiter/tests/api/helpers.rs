//! Limiters on the store the environment selects, with a clock the test controls.

use std::{sync::Arc, time::Duration};

use platform::{
    clock::ManualClock,
    testing::{redis_url, unique_namespace},
};
use rate_limiter::{
    algorithm::{Algorithm, FixedWindow, LeakyBucket, SlidingCounter, SlidingLog, TokenBucket},
    limiter::{Limiter, Verdict},
    rules::{ClientKey, Rule, RuleName},
    store::{Check, Decision, MemoryStore, RedisStore, Store, StoreError},
};

/// One rule of each algorithm, each with a capacity of 5 and a window of one second.
pub fn every_algorithm() -> Vec<Algorithm> {
    let second = Duration::from_secs(1);
    vec![
        Algorithm::TokenBucket(TokenBucket::new(5, second, 5).unwrap()),
        Algorithm::LeakyBucket(LeakyBucket::new(5, second, 5).unwrap()),
        Algorithm::FixedWindow(FixedWindow::new(5, second).unwrap()),
        Algorithm::SlidingLog(SlidingLog::new(5, second).unwrap()),
        Algorithm::SlidingCounter(SlidingCounter::new(5, second).unwrap()),
    ]
}

pub fn rule(name: &str, algorithm: Algorithm) -> Rule {
    Rule::new(RuleName::parse(name).unwrap(), algorithm)
}

pub fn key(key: &str) -> ClientKey {
    ClientKey::parse(key).unwrap()
}

/// A store on the configured backend whose time is the test's clock. Redis keys go under a
/// namespace of their own, so tests never see each other's state.
pub async fn store_with_clock(clock: &ManualClock) -> Arc<dyn Store> {
    match redis_url() {
        Some(url) => Arc::new(
            redis_store(&url, &unique_namespace())
                .await
                .with_clock(Arc::new(clock.clone())),
        ),
        None => Arc::new(MemoryStore::new(Arc::new(clock.clone()))),
    }
}

pub async fn redis_store(url: &str, namespace: &str) -> RedisStore {
    RedisStore::connect(url, namespace)
        .await
        .unwrap_or_else(|err| panic!("REDIS_URL is set but Redis is not reachable: {err}"))
        .0
}

/// A clock on a whole second, so that windows aligned to the epoch begin with the test.
pub fn clock() -> ManualClock {
    ManualClock::starting_now()
}

/// A limiter of `rules` on the configured store, and the clock it runs on.
pub struct TestLimiter {
    pub limiter: Limiter,
    pub clock: ManualClock,
    pub resolution: Duration,
}

impl TestLimiter {
    pub async fn new(rules: Vec<Rule>) -> Self {
        let clock = clock();
        let store = store_with_clock(&clock).await;
        let resolution = store.resolution();
        Self {
            // No over-limit cache: these tests move the store's clock, which the cache does not
            // follow (it keeps tokio's time; `failure.rs` and `http.rs` test it).
            limiter: Limiter::new(rules, store, 0),
            clock,
            resolution,
        }
    }

    /// One request of `cost` against every rule named, for `client`.
    pub async fn check(&self, rules: &[&str], client: &str, cost: u64) -> Verdict {
        let requests: Vec<_> = rules
            .iter()
            .map(|name| (self.limiter.rule(name).unwrap().clone(), key(client)))
            .collect();
        self.limiter.check(&requests, cost).await.unwrap()
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

/// What a store that should be answering does instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Connections stay open and nothing answers: a Redis stuck in a long command, a
    /// partitioned network.
    Hang,
    /// Connections are cut and refused: Redis is down.
    Down,
}

/// A store that can be made to fail: with `REDIS_URL`, a real Redis reached through a TCP proxy
/// the test can stall or cut; without it, the in-process store behind a switch that does the
/// same to its calls.
pub struct FaultyBackend {
    pub store: Arc<dyn Store>,
    fault: tokio::sync::watch::Sender<Fault>,
}

impl FaultyBackend {
    pub async fn new() -> Self {
        let (fault, faults) = tokio::sync::watch::channel(Fault::None);
        let store: Arc<dyn Store> = match redis_url() {
            Some(url) => {
                let proxied = proxy(&url, faults).await;
                Arc::new(redis_store(&proxied, &unique_namespace()).await)
            }
            None => Arc::new(Switched {
                inner: MemoryStore::new(Arc::new(platform::clock::SystemClock)),
                faults,
            }),
        };
        Self { store, fault }
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

/// The in-process store, behind a switch that stalls or fails its calls. It calls itself remote,
/// as the store it stands in for is.
struct Switched {
    inner: MemoryStore,
    faults: tokio::sync::watch::Receiver<Fault>,
}

#[async_trait::async_trait]
impl Store for Switched {
    async fn decide(&self, checks: &[Check<'_>]) -> Result<Vec<Decision>, StoreError> {
        let fault = *self.faults.borrow();
        match fault {
            Fault::None => self.inner.decide(checks).await,
            Fault::Hang => std::future::pending().await,
            Fault::Down => Err(StoreError::Redis(
                std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into(),
            )),
        }
    }

    fn backend(&self) -> &'static str {
        "memory behind a switch"
    }

    fn resolution(&self) -> Duration {
        self.inner.resolution()
    }

    fn is_remote(&self) -> bool {
        true
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A TCP proxy to the Redis of `url`, whose connections follow `faults`; returns the URL to
/// connect to instead.
async fn proxy(url: &str, faults: tokio::sync::watch::Receiver<Fault>) -> String {
    let rest = url.strip_prefix("redis://").expect("a redis:// URL");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => (format!("{userinfo}@"), host),
        None => (String::new(), authority),
    };
    let upstream = tokio::net::lookup_host(host)
        .await
        .unwrap()
        .next()
        .expect("the Redis host resolves");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let mut faults = faults.clone();
            tokio::spawn(async move {
                let now = *faults.borrow_and_update();
                match now {
                    Fault::Down => return,
                    Fault::Hang => return std::future::pending().await,
                    Fault::None => {}
                }
                let mut server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                let fault = tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                    fault = faults.wait_for(|fault| *fault != Fault::None) => *fault.unwrap(),
                };
                if fault == Fault::Hang {
                    // Hold both sockets open and forward nothing.
                    std::future::pending::<()>().await;
                }
            });
        }
    });
    format!("redis://{userinfo}{address}/{path}")
}
