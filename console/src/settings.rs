//! The console's configuration, from the environment:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `CONSOLE_ADDR` | `127.0.0.1:8080` | where the console listens; loopback, since it will hold the fault switches |
//! | `CONSOLE_TARGETS` | the lab's ports on `127.0.0.1` | the systems to watch: `name=url[,url…]`, separated by `;` |
//! | `CONSOLE_TARGETS_FILE` | none | the same in a TOML file, one `[[target]]` table each with `system` and `urls` (see [`Targets::from_toml`]); not with `CONSOLE_TARGETS` |
//! | `CONSOLE_SCRAPE_EVERY` | `1s` | how often each target's `/metrics` and `/readyz` are read |
//! | `CONSOLE_WINDOW` | `15m` | how much history is kept in memory, and served to a page on load |
//! | `CONSOLE_SWITCHES` | none | fault switches a system's page can flip: `system/name=url`, separated by `;` |
//! | `CONSOLE_LOAD_ENV` | none | what a system's k6 scenario needs: `system:NAME=value,NAME=value`, separated by `;` |
//! | `CONSOLE_TOXIPROXY` | none | a Toxiproxy API (or the lab's, which speaks it) whose proxies `<system>-<engine>` are shown as that system's `proxy-<engine>` switches |
//! | `SDLAB_ADMIN_TOKEN` | none | what opens the switches, to the console and, forwarded, to each switch |
//!
//! A system with more than one URL is a set of replicas: the console sums them and also shows
//! each one.

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use platform::{
    auth::AdminToken,
    config::{ConfigError, env_opt, env_or},
};
use url::Url;

#[derive(Debug, Clone)]
pub struct Settings {
    pub addr: SocketAddr,
    pub targets: Targets,
    pub scrape_every: Duration,
    pub window: Duration,
    pub switches: Switches,
    /// `None`: no switch opens (403), as on every sdlab admin endpoint.
    pub admin_token: Option<AdminToken>,
    /// Variables each system's k6 scenario needs (the rate limiter's caller key, say).
    pub load_env: LoadEnv,
    /// The proxies between the systems and their real engines (`console::toxiproxy`).
    pub toxiproxy: Option<Url>,
    /// `CONSOLE_WALKTHROUGH_BIN`: the program that runs the walkthroughs' demonstrations as
    /// `<program> walkthrough <system> --demo <id> --json` (`walkthrough::view::Demos`). `None`:
    /// this process's own executable (the lab's `sdlab`, or `console`), which takes it.
    pub walkthrough_program: Option<PathBuf>,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            addr: env_or("CONSOLE_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            targets: targets()?,
            scrape_every: duration("CONSOLE_SCRAPE_EVERY", Duration::from_secs(1))?,
            window: duration("CONSOLE_WINDOW", Duration::from_secs(15 * 60))?,
            switches: env_opt("CONSOLE_SWITCHES")?.unwrap_or_default(),
            admin_token: AdminToken::from_env()?,
            load_env: env_opt("CONSOLE_LOAD_ENV")?.unwrap_or_default(),
            toxiproxy: env_opt("CONSOLE_TOXIPROXY")?,
            walkthrough_program: env_opt("CONSOLE_WALKTHROUGH_BIN")?,
        })
    }

    /// How many scrapes the window holds.
    pub fn window_len(&self) -> usize {
        let every = self.scrape_every.as_millis().max(1);
        usize::try_from(self.window.as_millis() / every)
            .unwrap_or(usize::MAX)
            .max(2)
    }
}

/// `CONSOLE_TARGETS`, or the file `CONSOLE_TARGETS_FILE` names, or the lab's.
fn targets() -> Result<Targets, ConfigError> {
    let inline: Option<Targets> = env_opt("CONSOLE_TARGETS")?;
    let Some(path) = env_opt::<String>("CONSOLE_TARGETS_FILE")? else {
        return Ok(inline.unwrap_or_else(Targets::lab));
    };
    let refuse = |reason: String| ConfigError {
        name: "CONSOLE_TARGETS_FILE".to_owned(),
        value: path.clone(),
        reason,
    };
    if inline.is_some() {
        return Err(refuse(
            "CONSOLE_TARGETS is set too: give the targets one way".to_owned(),
        ));
    }
    let text = std::fs::read_to_string(&path).map_err(|err| refuse(err.to_string()))?;
    Targets::from_toml(&text).map_err(refuse)
}

/// A duration like `1s` or `15m`, not zero.
fn duration(name: &str, default: Duration) -> Result<Duration, ConfigError> {
    let duration: Duration = env_or::<humantime::Duration>(name, default.into())?.into();
    if duration.is_zero() {
        return Err(ConfigError {
            name: name.to_owned(),
            value: "0".to_owned(),
            reason: "must be longer than zero".to_owned(),
        });
    }
    Ok(duration)
}

/// The systems the console watches, each by one or more base URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets(Vec<Target>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The system's name, as its metrics' `service` label says it (`url-shortener`).
    pub system: String,
    /// One base URL per replica.
    pub instances: Vec<Url>,
}

impl Targets {
    /// The five systems where the lab starts them.
    pub fn lab() -> Self {
        let at = |system: &str, port: u16| Target {
            system: system.to_owned(),
            instances: vec![Url::parse(&format!("http://127.0.0.1:{port}/")).expect("a valid URL")],
        };
        Self(vec![
            at("url-shortener", 8081),
            at("rate-limiter", 8082),
            at("idempotency-demo", 8085),
            at("notifier", 8083),
            at("feed-service", 8084),
        ])
    }

    pub fn new(targets: Vec<Target>) -> Self {
        Self(targets)
    }

    /// `url-shortener=http://a:8081,http://b:8081;rate-limiter=http://c:8082`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for entry in text
            .split(';')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            let (system, urls) = entry
                .split_once('=')
                .ok_or_else(|| format!("`{entry}` is not `name=url[,url…]`"))?;
            entries.push((
                system.trim().to_owned(),
                urls.split(',').map(|url| url.trim().to_owned()).collect(),
            ));
        }
        Self::from_entries(entries)
    }

    /// The same from a TOML file, in the order the systems are shown:
    ///
    /// ```toml
    /// [[target]]
    /// system = "url-shortener"
    /// urls = ["http://shortener-1:8081", "http://shortener-2:8081"]
    ///
    /// [[target]]
    /// system = "rate-limiter"
    /// urls = ["http://limiter:8082"]
    /// ```
    pub fn from_toml(text: &str) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            target: Vec<Entry>,
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Entry {
            system: String,
            urls: Vec<String>,
        }
        let file: File = toml::from_str(text).map_err(|err| err.to_string())?;
        Self::from_entries(
            file.target
                .into_iter()
                .map(|entry| (entry.system, entry.urls))
                .collect(),
        )
    }

    fn from_entries(entries: Vec<(String, Vec<String>)>) -> Result<Self, String> {
        let mut targets: Vec<Target> = Vec::new();
        for (system, urls) in entries {
            if !valid_name(&system) {
                return Err(format!(
                    "`{system}` is not a system name (letters, digits, - and _)"
                ));
            }
            if targets.iter().any(|target| target.system == system) {
                return Err(format!("`{system}` is named twice"));
            }
            if urls.is_empty() {
                return Err(format!("`{system}` has no URL"));
            }
            let mut instances = Vec::new();
            for url in &urls {
                let parsed = Url::parse(url)
                    .ok()
                    .filter(|parsed| matches!(parsed.scheme(), "http" | "https"))
                    .ok_or_else(|| format!("`{url}` (for {system}) is not an http or https URL"))?;
                instances.push(parsed);
            }
            targets.push(Target { system, instances });
        }
        if targets.is_empty() {
            return Err("names no system".to_owned());
        }
        Ok(Self(targets))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Target> {
        self.0.iter()
    }

    pub fn get(&self, system: &str) -> Option<&Target> {
        self.0.iter().find(|target| target.system == system)
    }
}

/// The variables a system's k6 scenario is run with, by system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadEnv(Vec<(String, Vec<(String, String)>)>);

impl LoadEnv {
    pub fn new(entries: Vec<(String, Vec<(String, String)>)>) -> Self {
        Self(entries)
    }

    pub fn of(&self, system: &str) -> &[(String, String)] {
        self.0
            .iter()
            .find(|(name, _)| name == system)
            .map(|(_, env)| env.as_slice())
            .unwrap_or_default()
    }
}

impl FromStr for LoadEnv {
    type Err = String;

    /// `rate-limiter:API_KEY=sk_…,GATEWAY_URL=http://127.0.0.1:8092;…`.
    fn from_str(text: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for entry in text
            .split(';')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            let (system, pairs) = entry
                .split_once(':')
                .filter(|(system, _)| valid_name(system.trim()))
                .ok_or_else(|| format!("`{entry}` is not `system:NAME=value,…`"))?;
            let mut env = Vec::new();
            for pair in pairs
                .split(',')
                .map(str::trim)
                .filter(|pair| !pair.is_empty())
            {
                let (name, value) = pair
                    .split_once('=')
                    .filter(|(name, _)| valid_name(name))
                    .ok_or_else(|| format!("`{pair}` (for {system}) is not `NAME=value`"))?;
                env.push((name.to_owned(), value.to_owned()));
            }
            entries.push((system.trim().to_owned(), env));
        }
        Ok(Self(entries))
    }
}

/// The fault switches the console can flip for its pages: each an HTTP endpoint that answers
/// `GET` with its settings as a JSON object and takes new ones with `PUT` (the payment provider
/// simulator's and the SMS/push simulator's `/v1/faults`, the mailbox's `/mailbox/faults`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Switches(Vec<Switch>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switch {
    pub system: String,
    /// What the page calls it: `provider`, `sms-push`, `mailbox`.
    pub name: String,
    pub url: Url,
}

impl Switches {
    pub fn new(switches: Vec<Switch>) -> Self {
        Self(switches)
    }

    /// `idempotency-demo/provider=http://127.0.0.1:8095/v1/faults;notifier/mailbox=…`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut switches: Vec<Switch> = Vec::new();
        for entry in text
            .split(';')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            let (key, url) = entry
                .split_once('=')
                .ok_or_else(|| format!("`{entry}` is not `system/name=url`"))?;
            let (system, name) = key
                .trim()
                .split_once('/')
                .filter(|(system, name)| valid_name(system) && valid_name(name))
                .ok_or_else(|| {
                    format!("`{key}` is not `system/name` (letters, digits, - and _)")
                })?;
            let url = Url::parse(url.trim())
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https"))
                .ok_or_else(|| format!("`{url}` (for {key}) is not an http or https URL"))?;
            if switches
                .iter()
                .any(|s| s.system == system && s.name == name)
            {
                return Err(format!("`{key}` is named twice"));
            }
            switches.push(Switch {
                system: system.to_owned(),
                name: name.to_owned(),
                url,
            });
        }
        Ok(Self(switches))
    }

    /// `system`'s switches, in the order they were given.
    pub fn of<'a>(&'a self, system: &'a str) -> impl Iterator<Item = &'a Switch> + 'a {
        self.0.iter().filter(move |switch| switch.system == system)
    }

    pub fn get(&self, system: &str, name: &str) -> Option<&Switch> {
        self.0
            .iter()
            .find(|switch| switch.system == system && switch.name == name)
    }
}

impl FromStr for Switches {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text)
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

impl FromStr for Targets {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text)
    }
}

impl fmt::Display for Targets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries: Vec<String> = self
            .0
            .iter()
            .map(|target| {
                let urls: Vec<&str> = target.instances.iter().map(Url::as_str).collect();
                format!("{}={}", target.system, urls.join(","))
            })
            .collect();
        f.write_str(&entries.join(";"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_each_system_and_its_replicas() {
        let targets = Targets::parse(
            "url-shortener=http://a:8081, http://b:8081 ; feed-service=http://c:8084",
        )
        .unwrap();
        let shortener = targets.get("url-shortener").unwrap();
        assert_eq!(shortener.instances.len(), 2);
        assert_eq!(shortener.instances[1].as_str(), "http://b:8081/");
        assert_eq!(targets.get("feed-service").unwrap().instances.len(), 1);
        assert_eq!(Targets::parse(&targets.to_string()).unwrap(), targets);
    }

    #[test]
    fn a_bad_target_list_says_what_is_wrong() {
        for (text, says) in [
            ("", "names no system"),
            ("url-shortener", "is not `name=url"),
            ("a=http://x;a=http://y", "named twice"),
            ("a=ftp://x", "not an http or https URL"),
            ("a b=http://x", "not a system name"),
        ] {
            let err = Targets::parse(text).unwrap_err();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_targets_file_names_the_same_as_the_variable_in_its_order() {
        let file = Targets::from_toml(
            r#"
            [[target]]
            system = "url-shortener"
            urls = ["http://a:8081", "http://b:8081"]

            [[target]]
            system = "feed-service"
            urls = ["http://c:8084"]
            "#,
        )
        .unwrap();
        assert_eq!(
            file,
            Targets::parse("url-shortener=http://a:8081,http://b:8081;feed-service=http://c:8084")
                .unwrap()
        );
        for (text, says) in [
            ("", "missing field `target`"),
            ("[[target]]\nsystem = \"a\"\nurls = []", "has no URL"),
            (
                "[[target]]\nsystem = \"a\"\nurl = [\"http://x\"]",
                "unknown field `url`",
            ),
            (
                "[[target]]\nsystem = \"a\"\nurls = [\"ftp://x\"]",
                "not an http or https URL",
            ),
        ] {
            let err = Targets::from_toml(text).unwrap_err();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }

    #[test]
    fn switches_belong_to_a_system_and_have_a_name() {
        let switches = Switches::parse(
            "idempotency-demo/provider=http://127.0.0.1:8095/v1/faults;\
             notifier/mailbox=http://127.0.0.1:8025/mailbox/faults",
        )
        .unwrap();
        assert_eq!(switches.of("idempotency-demo").count(), 1);
        assert_eq!(
            switches.get("notifier", "mailbox").unwrap().url.path(),
            "/mailbox/faults"
        );
        assert!(switches.get("notifier", "provider").is_none());
        for (text, says) in [
            ("provider=http://x", "is not `system/name`"),
            ("a/b=ftp://x", "not an http or https URL"),
            ("a/b=http://x;a/b=http://y", "named twice"),
        ] {
            let err = Switches::parse(text).unwrap_err();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_scenarios_variables_are_given_per_system() {
        let env: LoadEnv = "rate-limiter:API_KEY=sk_1,GATEWAY_URL=http://x:8092"
            .parse()
            .unwrap();
        assert_eq!(
            env.of("rate-limiter")[1],
            ("GATEWAY_URL".to_owned(), "http://x:8092".to_owned())
        );
        assert!(env.of("url-shortener").is_empty());
        assert!("rate-limiter".parse::<LoadEnv>().is_err());
    }

    #[test]
    fn the_window_holds_at_least_two_scrapes() {
        let settings = Settings {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            targets: Targets::lab(),
            scrape_every: Duration::from_secs(1),
            window: Duration::from_secs(900),
            switches: Switches::default(),
            admin_token: None,
            load_env: LoadEnv::default(),
            toxiproxy: None,
            walkthrough_program: None,
        };
        assert_eq!(settings.window_len(), 900);
        let tiny = Settings {
            window: Duration::from_millis(10),
            ..settings
        };
        assert_eq!(tiny.window_len(), 2);
    }
}
