//! `docker compose up --build` gives a lab that can be reached: every address a system listens
//! on is `0.0.0.0:<port>` in the lab's container and published on the host, or the compose file
//! says why it is not.
//!
//! A system's default address, 127.0.0.1, is right on a laptop and wrong in a container, where
//! it is the container's own loopback, which no published port reaches: the feed service was
//! unreachable that way, its `FEED_ADDR` unset and port 8084 unpublished. The addresses come from
//! the systems' settings tables (`settings/mod.rs`), so a new listener fails this test until
//! someone decides, in the compose file, whether users outside the container need it.
//!
//! Only the compose file's own text is read: no Docker engine is needed (CI also runs
//! `docker-compose config -q`, which checks the file against the Compose schema).

mod settings;

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    net::{IpAddr, SocketAddr},
};

use serde_norway::{Mapping, Value};

/// The service that runs the lab: the one built from this repository's `Dockerfile`.
fn lab_service(compose: &Value) -> &Mapping {
    let services = compose["services"].as_mapping().expect("a services map");
    let built: Vec<&Mapping> = services
        .values()
        .filter_map(Value::as_mapping)
        .filter(|service| service.contains_key("build"))
        .collect();
    assert_eq!(built.len(), 1, "one service is built from the Dockerfile");
    built[0]
}

/// The service's environment, in either of its forms (`NAME: value` or `- NAME=value`).
fn environment(service: &Mapping) -> BTreeMap<String, String> {
    match service.get("environment") {
        None => BTreeMap::new(),
        Some(Value::Mapping(variables)) => variables
            .iter()
            .map(|(name, value)| (scalar(name), scalar(value)))
            .collect(),
        Some(Value::Sequence(variables)) => variables
            .iter()
            .map(|variable| {
                let variable = scalar(variable);
                let (name, value) = variable.split_once('=').unwrap_or((&variable, ""));
                (name.to_owned(), value.to_owned())
            })
            .collect(),
        Some(other) => panic!("environment is neither a map nor a list: {other:?}"),
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Null => String::new(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// A port the service publishes: `host_ip:host_port` on the host to `container_port` inside.
#[derive(Debug)]
struct Published {
    host_ip: Option<IpAddr>,
    host_port: Option<u16>,
    container_port: u16,
}

/// The service's `ports`, in the short (`"127.0.0.1:8081:8081"`) or the long syntax.
fn published(service: &Mapping) -> Vec<Published> {
    let Some(ports) = service.get("ports") else {
        return Vec::new();
    };
    let port = |text: &str| -> u16 {
        text.parse()
            .unwrap_or_else(|_| panic!("{text:?} is not one port (ranges are not read here)"))
    };
    let ip = |text: &str| -> IpAddr {
        let text = text.trim_start_matches('[').trim_end_matches(']');
        text.parse()
            .unwrap_or_else(|_| panic!("{text:?} is not an IP address"))
    };
    ports
        .as_sequence()
        .expect("ports is a list")
        .iter()
        .map(|entry| match entry {
            Value::Mapping(long) => Published {
                host_ip: long.get("host_ip").map(|host| ip(&scalar(host))),
                host_port: long.get("published").map(|host| port(&scalar(host))),
                container_port: port(&scalar(&long["target"])),
            },
            short => {
                let short = scalar(short);
                let short = short.split('/').next().unwrap_or_default();
                let (host, container) = short.rsplit_once(':').unwrap_or(("", short));
                let (host_ip, host_port) = match host.rsplit_once(':') {
                    Some((host_ip, host_port)) => (Some(ip(host_ip)), Some(port(host_port))),
                    None if host.is_empty() => (None, None),
                    None => (None, Some(port(host))),
                };
                Published {
                    host_ip,
                    host_port,
                    container_port: port(container),
                }
            }
        })
        .collect()
}

/// The service's `x-unpublished`: address variables deliberately not published, with the reason.
fn unpublished(service: &Mapping) -> BTreeMap<String, String> {
    service
        .get("x-unpublished")
        .and_then(Value::as_mapping)
        .map(|reasons| {
            reasons
                .iter()
                .map(|(name, reason)| (scalar(name), scalar(reason)))
                .collect()
        })
        .unwrap_or_default()
}

/// The ports the `Dockerfile` says the image listens on.
fn exposed() -> BTreeSet<u16> {
    let dockerfile = fs::read_to_string(settings::workspace().join("Dockerfile")).unwrap();
    dockerfile
        .lines()
        .filter_map(|line| line.trim().strip_prefix("EXPOSE "))
        .flat_map(str::split_whitespace)
        .map(|port| port.split('/').next().unwrap().parse().unwrap())
        .collect()
}

fn compose() -> Value {
    let text = fs::read_to_string(settings::workspace().join("docker-compose.yml")).unwrap();
    serde_norway::from_str(&text).expect("docker-compose.yml is YAML")
}

/// What is wrong with how the lab's container serves `variable`, if anything.
fn misserved(
    variable: &str,
    default: SocketAddr,
    environment: &BTreeMap<String, String>,
    published: &[Published],
    exposed: &BTreeSet<u16>,
) -> Option<String> {
    let Some(value) = environment.get(variable) else {
        return Some(format!(
            "{variable} is unset, so it listens on {default}, the container's own loopback: set \
             it to 0.0.0.0:{} and publish the port, or say in x-unpublished why no one outside \
             the container needs it",
            default.port()
        ));
    };
    let Ok(addr) = value.parse::<SocketAddr>() else {
        return Some(format!("{variable}={value} is not a socket address"));
    };
    if !addr.ip().is_unspecified() {
        return Some(format!(
            "{variable}={value}: only 0.0.0.0 (or [::]) is reached from outside the container"
        ));
    }
    let port = addr.port();
    let Some(publication) = published.iter().find(|p| p.container_port == port) else {
        return Some(format!(
            "{variable}={value}: port {port} is not published (\"127.0.0.1:{port}:{port}\")"
        ));
    };
    // The banner prints every address as localhost:<the port the system listens on>.
    if publication.host_port != Some(port) {
        return Some(format!(
            "{variable}: port {port} is published at another port of the host ({publication:?}), \
             so the banner's curl lines do not work as printed"
        ));
    }
    // Published without an address, a port is open to every machine that reaches the host.
    if !publication.host_ip.is_some_and(|ip| ip.is_loopback()) {
        return Some(format!(
            "{variable}: port {port} is published beyond the host's loopback ({publication:?})"
        ));
    }
    if !exposed.contains(&port) {
        return Some(format!(
            "{variable}: the Dockerfile does not EXPOSE port {port}"
        ));
    }
    None
}

#[test]
fn every_address_a_system_listens_on_is_reached_from_the_host_or_says_why_not() {
    let compose = compose();
    let lab = lab_service(&compose);
    let (environment, published, unpublished) =
        (environment(lab), published(lab), unpublished(lab));
    let exposed = exposed();

    let mut wrong = Vec::new();
    for listener in settings::listeners() {
        let variable = &listener.variable;
        if let Some(reason) = unpublished.get(variable) {
            if reason.trim().is_empty() {
                wrong.push(format!("{variable} is unpublished without a reason"));
            }
            if environment.contains_key(variable) {
                wrong.push(format!(
                    "{variable} is unpublished but set: unset, it stays on the container's loopback"
                ));
            }
            continue;
        }
        if let Some(why) = misserved(
            variable,
            listener.default,
            &environment,
            &published,
            &exposed,
        ) {
            wrong.push(format!("{}/src/settings.rs: {why}", listener.system));
        }
    }

    assert!(
        wrong.is_empty(),
        "docker-compose.yml, the lab's service:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_unpublished_addresses_are_addresses_a_system_listens_on() {
    let compose = compose();
    let listening: BTreeSet<String> = settings::listeners()
        .into_iter()
        .map(|listener| listener.variable)
        .collect();

    let unknown: Vec<String> = unpublished(lab_service(&compose))
        .into_keys()
        .filter(|variable| !listening.contains(variable))
        .collect();

    assert!(
        unknown.is_empty(),
        "x-unpublished names what no settings table does: {unknown:?}"
    );
}

/// The check above is only as good as the tables it reads: every `…_ADDR` variable the settings
/// code reads must be a listener in some system's table (the lab runs them all from one
/// environment, so the shortener reading the gateway's `RATE_LIMITER_GATEWAY_ADDR` is covered by
/// the rate limiter's row).
#[test]
fn every_address_variable_the_settings_read_is_in_a_settings_table() {
    let listening: BTreeSet<String> = settings::listeners()
        .into_iter()
        .map(|listener| listener.variable)
        .collect();

    let mut undocumented = Vec::new();
    for (system, text) in settings::settings_files() {
        for line in text.lines().filter(|line| !line.trim().starts_with("//")) {
            for variable in address_variables_in(line) {
                if !listening.contains(variable) {
                    undocumented.push(format!("{system}: {variable}"));
                }
            }
        }
    }

    assert!(
        undocumented.is_empty(),
        "read, but in no settings table with a socket-address default: {undocumented:?}"
    );
}

/// The string literals in `line` that name an address variable: `"…_ADDR"`.
fn address_variables_in(line: &str) -> Vec<&str> {
    line.split('"')
        .skip(1)
        .step_by(2)
        .filter(|literal| {
            literal.ends_with("_ADDR")
                && literal
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .collect()
}
