//! The real engines behind fault-injecting proxies: one proxy per system and engine, named
//! `<system>-<engine>` (`rate-limiter-redis`, `url-shortener-database`), driven through
//! Toxiproxy's HTTP API, so that the console can take a system's PostgreSQL, Redis or broker
//! away, or slow it down, and the user watches that system's client library meet it.
//!
//! Where the proxies come from, by the environment:
//! - `SDLAB_TOXIPROXY_URL` set (`docker-compose.yml` sets it): a Toxiproxy the lab did not start,
//!   whose proxies its configuration made (`lab/toxiproxy.json`). Each system goes through the
//!   proxy of its name, at that Toxiproxy's host and the proxy's port.
//! - otherwise, when `DATABASE_URL` or `REDIS_URL` names a real engine: the lab's own
//!   (`faultproxy`), in this process, its API on `SDLAB_TOXIPROXY_ADDR` (127.0.0.1:8474, the
//!   port Toxiproxy's clients try), each proxy on a free loopback port.
//! - `SDLAB_PROXY_ENGINES=off`: none; the systems connect to the engines directly.
//!
//! A system's URL is rewritten to its proxy's address, host and port only: the user, password,
//! database and parameters are kept. The embedded backends get no proxy: their fault switches
//! (`/admin/faults`) serve there.
//!
//! The broker is proxied only by a Toxiproxy whose broker was configured for it. A Kafka client
//! connects to the bootstrap address, then to the address the broker advertises for itself, so
//! a proxy in front of a broker that advertises its own address carries the first request only.
//! `docker-compose.yml` gives its Kafka one listener per system, each advertised as that
//! system's proxy; the lab's own proxies stand in front of a broker the lab did not start,
//! whose advertised address it cannot change, so they leave the broker alone, and the systems'
//! `broker` fault switches are what breaks it.

use std::{collections::BTreeMap, fmt, net::SocketAddr, str::FromStr};

use anyhow::Context;
use faultproxy::{NewProxy, Server};
use platform::{
    auth::AdminToken,
    config::{Backends, DatabaseConfig, TopicsConfig, env_opt, env_or},
};
use url::Url;

/// An engine a system can be given a proxy for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Database,
    Redis,
    Broker,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::Redis => "redis",
            Self::Broker => "broker",
        }
    }
}

/// The engines each system uses, by the name the console knows it by: the proxies there are.
pub const ENGINES: [(&str, &[Engine]); 5] = [
    ("url-shortener", &[Engine::Database, Engine::Redis]),
    ("rate-limiter", &[Engine::Redis]),
    ("idempotency-demo", &[Engine::Database, Engine::Broker]),
    ("notifier", &[Engine::Database, Engine::Broker]),
    (
        "feed-service",
        &[Engine::Database, Engine::Redis, Engine::Broker],
    ),
];

/// `SDLAB_PROXY_ENGINES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Switch {
    On,
    Off,
}

impl FromStr for Switch {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "on" => Ok(Self::On),
            "off" => Ok(Self::Off),
            _ => Err("expected on or off"),
        }
    }
}

/// The proxies the systems go through, and the API that drives them.
pub struct EngineProxies {
    source: Source,
    /// The API of the proxies the systems go through, once one does.
    api: Option<Url>,
    /// The proxies a system was given, in the order they were.
    routed: Vec<String>,
}

enum Source {
    Off,
    /// The lab's own, bound on the first proxy a system needs.
    Own {
        addr: SocketAddr,
        admin: AdminToken,
        server: Option<Server>,
    },
    /// A Toxiproxy's proxies, by name, with the port each listens on.
    Toxiproxy {
        api: Url,
        ports: BTreeMap<String, u16>,
    },
}

impl EngineProxies {
    /// What the environment asks for (see the module's documentation).
    pub async fn from_env(admin: &AdminToken) -> anyhow::Result<Self> {
        let source = if env_or("SDLAB_PROXY_ENGINES", Switch::On)? == Switch::Off {
            Source::Off
        } else if let Some(api) = env_opt::<Url>("SDLAB_TOXIPROXY_URL")? {
            let ports = listed_ports(&api, admin)
                .await
                .with_context(|| format!("reading the proxies at SDLAB_TOXIPROXY_URL={api}"))?;
            Source::Toxiproxy { api, ports }
        } else {
            Source::Own {
                addr: env_or(
                    "SDLAB_TOXIPROXY_ADDR",
                    SocketAddr::from(([127, 0, 0, 1], faultproxy::DEFAULT_PORT)),
                )?,
                admin: admin.clone(),
                server: None,
            }
        };
        Ok(Self {
            source,
            api: None,
            routed: Vec::new(),
        })
    }

    /// The Toxiproxy API, if any system goes through a proxy.
    pub fn api(&self) -> Option<&Url> {
        self.api.as_ref()
    }

    /// The proxies the systems go through.
    pub fn routed(&self) -> &[String] {
        &self.routed
    }

    /// The lab's own proxy server, to be run for as long as the systems are; `None` when the
    /// proxies are not the lab's.
    pub fn take_server(&mut self) -> Option<Server> {
        match &mut self.source {
            Source::Own { server, .. } => server.take(),
            Source::Off | Source::Toxiproxy { .. } => None,
        }
    }

    /// Sends each of `system`'s real engines (as [`ENGINES`] lists them) through its proxy.
    pub async fn route(&mut self, system: &str, backends: &mut Backends) -> anyhow::Result<()> {
        let engines = ENGINES
            .iter()
            .find(|(name, _)| *name == system)
            .map_or(&[][..], |(_, engines)| *engines);
        for engine in engines {
            match engine {
                Engine::Database => self.route_database(system, &mut backends.database).await?,
                Engine::Redis => self.route_redis(system, &mut backends.redis_url).await?,
                Engine::Broker => self.route_topics(system, &mut backends.topics).await?,
            }
        }
        Ok(())
    }

    async fn route_database(
        &mut self,
        system: &str,
        database: &mut DatabaseConfig,
    ) -> anyhow::Result<()> {
        if let DatabaseConfig::Postgres { url } = database
            && let Some(through) = self.proxy(system, Engine::Database, url, 5432).await?
        {
            *url = through;
        }
        Ok(())
    }

    pub async fn route_redis(
        &mut self,
        system: &str,
        redis_url: &mut Option<String>,
    ) -> anyhow::Result<()> {
        if let Some(url) = redis_url
            && let Some(through) = self.proxy(system, Engine::Redis, url, 6379).await?
        {
            *url = through;
        }
        Ok(())
    }

    async fn route_topics(
        &mut self,
        system: &str,
        topics: &mut TopicsConfig,
    ) -> anyhow::Result<()> {
        let TopicsConfig::Kafka { brokers } = topics else {
            return Ok(());
        };
        // Only a Toxiproxy in front of a broker that advertises it (see the module's docs).
        let Source::Toxiproxy { api, ports } = &self.source else {
            return Ok(());
        };
        let name = proxy_name(system, Engine::Broker);
        if let Some(port) = ports.get(&name) {
            let host = api.host_str().context("SDLAB_TOXIPROXY_URL has no host")?;
            *brokers = format!("{host}:{port}");
            self.api = Some(api.clone());
            self.routed.push(name);
        }
        Ok(())
    }

    /// `url` rewritten to the address of `system`'s proxy for `engine`, made if it is the lab's
    /// own; `None` when there is no proxy for it.
    async fn proxy(
        &mut self,
        system: &str,
        engine: Engine,
        url: &str,
        default_port: u16,
    ) -> anyhow::Result<Option<String>> {
        let name = proxy_name(system, engine);
        let (host, port) = match &mut self.source {
            Source::Off => return Ok(None),
            Source::Toxiproxy { api, ports } => {
                let Some(&port) = ports.get(&name) else {
                    tracing::warn!(proxy = %name, %api, "no such proxy at the Toxiproxy: connecting directly");
                    return Ok(None);
                };
                let host = api.host_str().context("SDLAB_TOXIPROXY_URL has no host")?;
                self.api = Some(api.clone());
                (host.to_owned(), port)
            }
            Source::Own {
                addr,
                admin,
                server,
            } => {
                let upstream = upstream(url, default_port).with_context(|| {
                    format!(
                        "cannot put a proxy in front of {} (SDLAB_PROXY_ENGINES=off connects directly)",
                        platform::config::redact(url)
                    )
                })?;
                if server.is_none() {
                    let bound = Server::bind(*addr, Some(admin.clone()))
                        .await
                        .with_context(|| {
                            format!(
                                "starting the engines' proxy API on SDLAB_TOXIPROXY_ADDR={addr}"
                            )
                        })?;
                    self.api = Some(format!("http://{}", bound.addr()?).parse()?);
                    *server = Some(bound);
                }
                let server = server.as_ref().expect("bound above");
                let proxy = server
                    .proxies()
                    .create(NewProxy {
                        name: name.clone(),
                        listen: "127.0.0.1:0".to_owned(),
                        upstream,
                        enabled: true,
                    })
                    .await?;
                let listen: SocketAddr = proxy.listen.parse()?;
                (listen.ip().to_string(), listen.port())
            }
        };
        self.routed.push(name);
        Ok(Some(rewrite(url, &host, port)?))
    }
}

impl fmt::Debug for EngineProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineProxies")
            .field("api", &self.api())
            .field("routed", &self.routed)
            .finish()
    }
}

pub fn proxy_name(system: &str, engine: Engine) -> String {
    format!("{system}-{}", engine.as_str())
}

/// The port each of a Toxiproxy's proxies listens on, by name.
async fn listed_ports(api: &Url, admin: &AdminToken) -> anyhow::Result<BTreeMap<String, u16>> {
    let proxies: BTreeMap<String, serde_json::Value> = reqwest::Client::new()
        .get(api.join("proxies")?)
        // Toxiproxy ignores it; an sdlab proxy API needs it.
        .bearer_auth(admin.expose())
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    proxies
        .into_iter()
        .map(|(name, proxy)| {
            let listen = proxy["listen"].as_str().unwrap_or_default();
            let port = listen
                .rsplit_once(':')
                .and_then(|(_, port)| port.parse().ok())
                .with_context(|| format!("proxy {name} listens on {listen:?}"))?;
            Ok((name, port))
        })
        .collect()
}

/// The `host:port` a URL connects to.
fn upstream(url: &str, default_port: u16) -> anyhow::Result<String> {
    let parsed = Url::parse(url)?;
    let host = parsed.host_str().context("the URL names no host")?;
    Ok(format!("{host}:{}", parsed.port().unwrap_or(default_port)))
}

/// `url` with its host and port replaced, and the rest kept.
fn rewrite(url: &str, host: &str, port: u16) -> anyhow::Result<String> {
    let mut parsed = Url::parse(url)?;
    parsed.set_host(Some(host))?;
    parsed
        .set_port(Some(port))
        .map_err(|()| anyhow::anyhow!("{} cannot take a port", platform::config::redact(url)))?;
    Ok(parsed.into())
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeSet, fs, path::Path};

    use super::*;

    /// `docker-compose.yml`'s Toxiproxy has a proxy for each engine of each system, as the lab
    /// looks them up, each in front of that engine; and Kafka advertises each broker proxy on
    /// the listener the proxy forwards to, or its clients would leave the proxy after their
    /// first request. Read from the files' text: no Docker engine is needed.
    #[test]
    fn compose_s_toxiproxy_proxies_every_engine_and_kafka_advertises_the_broker_proxies() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let compose: serde_norway::Value = serde_norway::from_str(
            &fs::read_to_string(workspace.join("docker-compose.yml")).unwrap(),
        )
        .unwrap();
        let config: Vec<serde_json::Value> = serde_json::from_str(
            &fs::read_to_string(workspace.join("lab/toxiproxy.json")).unwrap(),
        )
        .unwrap();
        let services = &compose["services"];
        let text = |value: &serde_norway::Value| value.as_str().unwrap_or_default().to_owned();
        let lab = services
            .as_mapping()
            .unwrap()
            .values()
            .find(|service| service.get("build").is_some())
            .expect("the lab's service");
        let toxiproxy = Url::parse(&text(&lab["environment"]["SDLAB_TOXIPROXY_URL"])).unwrap();
        let host = toxiproxy.host_str().unwrap();
        let mounted = services[host]["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|volume| text(volume).starts_with("./lab/toxiproxy.json:"));
        assert!(
            mounted,
            "the `{host}` service does not load lab/toxiproxy.json"
        );

        let expected: BTreeSet<String> = ENGINES
            .iter()
            .flat_map(|(system, engines)| engines.iter().map(|engine| proxy_name(system, *engine)))
            .collect();
        let named: BTreeSet<String> = config
            .iter()
            .map(|proxy| proxy["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(named, expected, "lab/toxiproxy.json names other proxies");

        let kafka = &services["kafka"]["environment"];
        let listeners = |variable: &str| -> BTreeMap<String, String> {
            text(&kafka[variable])
                .split(',')
                .map(|listener| {
                    let (name, address) = listener.trim().split_once("://").unwrap();
                    (name.to_owned(), address.to_owned())
                })
                .collect()
        };
        let (listening, advertised) = (
            listeners("KAFKA_LISTENERS"),
            listeners("KAFKA_ADVERTISED_LISTENERS"),
        );
        let engine_at = |variable: &str, default_port| {
            upstream(&text(&lab["environment"][variable]), default_port).unwrap()
        };
        let mut wrong = Vec::new();
        for proxy in &config {
            let name = proxy["name"].as_str().unwrap();
            let listen = proxy["listen"].as_str().unwrap();
            let port = listen.rsplit_once(':').unwrap().1;
            let upstream = proxy["upstream"].as_str().unwrap();
            if name.ends_with("-database") && upstream != engine_at("DATABASE_URL", 5432) {
                wrong.push(format!(
                    "{name} is not in front of DATABASE_URL's {upstream}"
                ));
            }
            if name.ends_with("-redis") && upstream != engine_at("REDIS_URL", 6379) {
                wrong.push(format!("{name} is not in front of REDIS_URL's {upstream}"));
            }
            if name.ends_with("-broker") {
                let listener = listening
                    .iter()
                    .find(|(_, address)| format!("kafka{address}") == upstream)
                    .map(|(listener, _)| listener);
                let advertised = listener.and_then(|listener| advertised.get(listener));
                if advertised != Some(&format!("{host}:{port}")) {
                    wrong.push(format!(
                        "{name} forwards to {upstream}, whose Kafka listener ({listener:?}) is \
                         advertised as {advertised:?}, not as the proxy, {host}:{port}"
                    ));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn a_url_sent_through_a_proxy_keeps_everything_but_its_address() {
        assert_eq!(
            rewrite(
                "postgres://app:s3cret@db.internal:5432/sdlab?sslmode=disable",
                "127.0.0.1",
                40123
            )
            .unwrap(),
            "postgres://app:s3cret@127.0.0.1:40123/sdlab?sslmode=disable"
        );
        assert_eq!(
            rewrite("redis://127.0.0.1:6379", "toxiproxy", 16371).unwrap(),
            "redis://toxiproxy:16371"
        );
        assert_eq!(
            rewrite("redis://:pw@cache/2", "127.0.0.1", 40124).unwrap(),
            "redis://:pw@127.0.0.1:40124/2"
        );
    }

    #[test]
    fn the_upstream_is_the_url_s_address_with_the_engine_s_default_port() {
        assert_eq!(
            upstream("postgres://postgres@127.0.0.1/postgres", 5432).unwrap(),
            "127.0.0.1:5432"
        );
        assert_eq!(upstream("redis://[::1]:6380", 6379).unwrap(), "[::1]:6380");
        assert!(upstream("postgres:///sdlab?host=/var/run/postgresql", 5432).is_err());
    }
}
