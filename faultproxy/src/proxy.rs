//! The proxies, by name: each a loopback listener whose connections are relayed to its upstream
//! through its toxics. Disabled, a proxy closes its listener and every connection through it,
//! as Toxiproxy does, so clients see the engine go away (refused connections, reset pools);
//! enabled again, it listens on the same port.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use platform::shutdown::CancellationToken;
use serde::Serialize;
use tokio::{
    net::TcpListener,
    sync::{Mutex, watch},
    task::{JoinHandle, JoinSet},
};

use crate::{
    error::Error,
    link::{self, Chain},
    toxic::{Installed, Toxic, ToxicUpdate, check_name},
};

/// How long the accept loop waits after a failed accept (out of file descriptors, say) before
/// trying again, rather than spinning on the error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A proxy to create.
#[derive(Debug, Clone)]
pub struct NewProxy {
    pub name: String,
    /// `ip:port` on the loopback (`127.0.0.1:0` takes any free port), or `localhost:port`.
    pub listen: String,
    /// `host:port`, resolved at each connection.
    pub upstream: String,
    pub enabled: bool,
}

/// A change to a proxy: what is `None` stays as it is.
#[derive(Debug, Clone, Default)]
pub struct ProxyUpdate {
    pub listen: Option<String>,
    pub upstream: Option<String>,
    pub enabled: Option<bool>,
}

/// A proxy as the API shows it. `listen` is the address it listens on once it has been
/// enabled, its port resolved if it was 0.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProxyView {
    pub name: String,
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
    pub toxics: Vec<Toxic>,
}

/// Every proxy, by name. Cloning it gives another handle on the same proxies.
///
/// One lock for all of them, held across a proxy's start and stop: changes are rare (a person
/// flipping a switch), and it is what makes "disabled" mean "its listener and connections are
/// closed" by the time the call returns.
#[derive(Clone, Default)]
pub struct Proxies {
    proxies: Arc<Mutex<BTreeMap<String, Proxy>>>,
    revisions: Arc<AtomicU64>,
}

impl Proxies {
    pub fn new() -> Self {
        Self::default()
    }

    pub async fn list(&self) -> BTreeMap<String, ProxyView> {
        let proxies = self.proxies.lock().await;
        proxies
            .iter()
            .map(|(name, proxy)| (name.clone(), proxy.view()))
            .collect()
    }

    /// Creates a proxy, listening at once if it is enabled. 409 if the name is taken, or if
    /// the address cannot be listened on (nothing is created then).
    pub async fn create(&self, new: NewProxy) -> Result<ProxyView, Error> {
        check_name(&new.name)?;
        let listen = loopback(&new.listen)?;
        check_upstream(&new.upstream)?;
        let mut proxies = self.proxies.lock().await;
        if proxies.contains_key(&new.name) {
            return Err(Error::ProxyExists(new.name));
        }
        let mut proxy = Proxy {
            name: new.name.clone(),
            listen,
            upstream: new.upstream.into(),
            toxics: Vec::new(),
            chain: watch::Sender::new(Chain::default()),
            running: None,
        };
        if new.enabled {
            proxy.start().await?;
        }
        let view = proxy.view();
        proxies.insert(new.name, proxy);
        Ok(view)
    }

    pub async fn get(&self, name: &str) -> Result<ProxyView, Error> {
        let proxies = self.proxies.lock().await;
        Ok(find(&proxies, name)?.view())
    }

    /// Changes a proxy. A new address or upstream restarts it (its connections are closed, as
    /// in Toxiproxy); `enabled` starts or stops it.
    pub async fn update(&self, name: &str, update: ProxyUpdate) -> Result<ProxyView, Error> {
        let listen = update.listen.as_deref().map(loopback).transpose()?;
        if let Some(upstream) = &update.upstream {
            check_upstream(upstream)?;
        }
        let mut proxies = self.proxies.lock().await;
        let proxy = find_mut(&mut proxies, name)?;
        let enabled = update.enabled.unwrap_or(proxy.running.is_some());
        let moved = listen.is_some_and(|listen| listen != proxy.listen);
        let redirected = update
            .upstream
            .as_deref()
            .is_some_and(|upstream| upstream != &*proxy.upstream);
        if moved || redirected || !enabled {
            let was_running = proxy.stop().await;
            if was_running && !enabled {
                tracing::warn!(proxy = %name, listen = %proxy.listen, "proxy disabled: its listener and connections are closed");
            }
        }
        if let Some(listen) = listen {
            proxy.listen = listen;
        }
        if let Some(upstream) = update.upstream {
            proxy.upstream = upstream.into();
        }
        if enabled {
            proxy.start().await?;
        }
        Ok(proxy.view())
    }

    /// Deletes a proxy, closing its listener and connections.
    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        let mut proxies = self.proxies.lock().await;
        let mut proxy = proxies
            .remove(name)
            .ok_or_else(|| Error::ProxyNotFound(name.to_owned()))?;
        proxy.stop().await;
        tracing::info!(proxy = %name, "proxy deleted");
        Ok(())
    }

    pub async fn toxics(&self, name: &str) -> Result<Vec<Toxic>, Error> {
        let proxies = self.proxies.lock().await;
        Ok(find(&proxies, name)?.view().toxics)
    }

    pub async fn toxic(&self, name: &str, toxic: &str) -> Result<Toxic, Error> {
        let proxies = self.proxies.lock().await;
        let proxy = find(&proxies, name)?;
        Ok(proxy.toxics[proxy.position(toxic)?].toxic.clone())
    }

    /// Adds a toxic, which acts on the connections already open as well as on new ones.
    pub async fn add_toxic(&self, name: &str, toxic: Toxic) -> Result<Toxic, Error> {
        let revision = self.next_revision();
        let mut proxies = self.proxies.lock().await;
        let proxy = find_mut(&mut proxies, name)?;
        if proxy.position(&toxic.name).is_ok() {
            return Err(Error::ToxicExists {
                proxy: name.to_owned(),
                toxic: toxic.name,
            });
        }
        proxy.toxics.push(Installed {
            toxic: toxic.clone(),
            revision,
        });
        proxy.publish();
        Ok(toxic)
    }

    pub async fn update_toxic(
        &self,
        name: &str,
        toxic: &str,
        update: ToxicUpdate,
    ) -> Result<Toxic, Error> {
        let revision = self.next_revision();
        let mut proxies = self.proxies.lock().await;
        let proxy = find_mut(&mut proxies, name)?;
        let at = proxy.position(toxic)?;
        let updated = update.apply(&proxy.toxics[at].toxic)?;
        proxy.toxics[at] = Installed {
            toxic: updated.clone(),
            revision,
        };
        proxy.publish();
        Ok(updated)
    }

    pub async fn remove_toxic(&self, name: &str, toxic: &str) -> Result<(), Error> {
        let mut proxies = self.proxies.lock().await;
        let proxy = find_mut(&mut proxies, name)?;
        let at = proxy.position(toxic)?;
        proxy.toxics.remove(at);
        proxy.publish();
        Ok(())
    }

    /// Enables every proxy and removes every toxic, as Toxiproxy's `POST /reset` does. A proxy
    /// that cannot listen again (its port taken meanwhile) is the error; the others are reset.
    pub async fn reset(&self) -> Result<(), Error> {
        let mut proxies = self.proxies.lock().await;
        let mut first_error = None;
        for proxy in proxies.values_mut() {
            proxy.toxics.clear();
            proxy.publish();
            if let Err(err) = proxy.start().await {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Stops every proxy: its listener and connections closed. They stay listed, disabled.
    pub async fn stop_all(&self) {
        let mut proxies = self.proxies.lock().await;
        for proxy in proxies.values_mut() {
            proxy.stop().await;
        }
        tracing::info!(proxies = proxies.len(), "every proxy stopped");
    }

    fn next_revision(&self) -> u64 {
        self.revisions.fetch_add(1, Ordering::Relaxed)
    }
}

fn find<'a>(proxies: &'a BTreeMap<String, Proxy>, name: &str) -> Result<&'a Proxy, Error> {
    proxies
        .get(name)
        .ok_or_else(|| Error::ProxyNotFound(name.to_owned()))
}

fn find_mut<'a>(
    proxies: &'a mut BTreeMap<String, Proxy>,
    name: &str,
) -> Result<&'a mut Proxy, Error> {
    proxies
        .get_mut(name)
        .ok_or_else(|| Error::ProxyNotFound(name.to_owned()))
}

/// A proxy listens on the loopback only: it hands out its engine, unauthenticated, to whoever
/// reaches it, so it is for this machine's clients (the fault switches' rule too).
fn loopback(listen: &str) -> Result<SocketAddr, Error> {
    let addr = match listen.strip_prefix("localhost:") {
        Some(port) => port
            .parse::<u16>()
            .ok()
            .map(|port| SocketAddr::from(([127, 0, 0, 1], port))),
        None => listen.parse::<SocketAddr>().ok(),
    };
    match addr {
        Some(addr) if addr.ip().is_loopback() => Ok(addr),
        Some(_) => Err(Error::invalid(
            "listen",
            "must be a loopback address (127.0.0.1, ::1 or localhost)",
        )),
        None => Err(Error::invalid(
            "listen",
            "expected ip:port, such as 127.0.0.1:0 for any free port",
        )),
    }
}

fn check_upstream(upstream: &str) -> Result<(), Error> {
    let port = upstream
        .rsplit_once(':')
        .filter(|(host, _)| !host.is_empty())
        .and_then(|(_, port)| port.parse::<u16>().ok());
    match port {
        Some(port) if port > 0 => Ok(()),
        _ => Err(Error::invalid(
            "upstream",
            "expected host:port, such as 127.0.0.1:6379",
        )),
    }
}

struct Proxy {
    name: String,
    listen: SocketAddr,
    upstream: Arc<str>,
    toxics: Vec<Installed>,
    /// The toxics, as every connection through the proxy follows them.
    chain: watch::Sender<Chain>,
    running: Option<Running>,
}

/// An enabled proxy's accept loop, which owns its listener and its connections.
struct Running {
    stop: CancellationToken,
    accepting: JoinHandle<()>,
}

impl Proxy {
    fn view(&self) -> ProxyView {
        ProxyView {
            name: self.name.clone(),
            listen: self.listen.to_string(),
            upstream: self.upstream.to_string(),
            enabled: self.running.is_some(),
            toxics: self.toxics.iter().map(|t| t.toxic.clone()).collect(),
        }
    }

    fn position(&self, toxic: &str) -> Result<usize, Error> {
        self.toxics
            .iter()
            .position(|installed| installed.toxic.name == toxic)
            .ok_or_else(|| Error::ToxicNotFound {
                proxy: self.name.clone(),
                toxic: toxic.to_owned(),
            })
    }

    fn publish(&self) {
        self.chain.send_replace(Arc::new(self.toxics.clone()));
    }

    async fn start(&mut self) -> Result<(), Error> {
        if self.running.is_some() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.listen)
            .await
            .map_err(|source| Error::Listen {
                addr: self.listen,
                source,
            })?;
        // Port 0 is resolved once, so that enabled again the proxy listens where its clients
        // were told to connect.
        self.listen = listener.local_addr().map_err(|source| Error::Listen {
            addr: self.listen,
            source,
        })?;
        let stop = CancellationToken::new();
        let accepting = tokio::spawn(accept(
            listener,
            self.upstream.clone(),
            self.chain.subscribe(),
            stop.clone(),
        ));
        self.running = Some(Running { stop, accepting });
        tracing::info!(proxy = %self.name, listen = %self.listen, upstream = %self.upstream, "proxy enabled");
        Ok(())
    }

    /// Closes the listener and every connection, and returns once they are closed; false if
    /// the proxy was not running.
    async fn stop(&mut self) -> bool {
        let Some(running) = self.running.take() else {
            return false;
        };
        running.stop.cancel();
        if let Err(err) = running.accepting.await {
            tracing::error!(proxy = %self.name, error = %err, "the proxy's accept loop failed");
        }
        true
    }
}

/// Accepts connections until `stop`, each relayed in a task of its own; then closes the
/// listener and drops every connection's task, which closes its sockets.
async fn accept(
    listener: TcpListener,
    upstream: Arc<str>,
    chain: watch::Receiver<Chain>,
    stop: CancellationToken,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    tracing::debug!(%peer, %upstream, "relaying a connection");
                    connections.spawn(link::relay(client, upstream.clone(), chain.clone()));
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    connections.shutdown().await;
}
