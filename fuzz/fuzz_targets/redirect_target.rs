//! `TargetUrl::parse` (url-shortener/src/domain/target.rs) on any text, against the lab's
//! shortener and against a shortener served at fuzzed origins and a fuzzed listening socket.
//!
//! Checked on every input, for both:
//! - an accepted target is `http` or `https`, at most 2,048 bytes as given and as stored, and
//!   parses again to itself;
//! - an accepted target never reaches the shortener: not one of its names on one of their ports,
//!   and not this machine (`localhost` and names under it, 127.0.0.0/8, 0.0.0.0/8, `::1`, `::`,
//!   and those as IPv4-mapped IPv6) on a port the shortener answers on there. That judgement is
//!   made again here from the RFCs' address blocks, not with the parser's own helpers;
//! - a target refused as pointing at the shortener does reach it;
//! - of an accepted target, a host name is to be looked up exactly when something of ours
//!   listens by address on its port, and `127.0.0.1` as its address is refused exactly when this
//!   machine serves that port.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use url::{Host, Url};
use url_shortener::domain::{ServedAt, TargetUrl, TargetUrlError, target::MAX_URL_BYTES};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    origins: Vec<Origin>,
    listening: SocketAddr,
    target: &'a str,
}

#[derive(Debug, Arbitrary)]
struct Origin {
    https: bool,
    host: OriginHost,
    port: Option<u16>,
}

#[derive(Debug, Arbitrary)]
enum OriginHost {
    Name(u8),
    Address(IpAddr),
}

/// Names an origin may have: plain, in capitals with the root's dot, and one under localhost.
const NAMES: &[&str] = &[
    "sho.rt",
    "SHO.RT.",
    "example.com",
    "app.localhost",
    "localhost",
];

impl Origin {
    fn url(&self) -> Option<Url> {
        let host = match self.host {
            OriginHost::Name(i) => NAMES[usize::from(i) % NAMES.len()].to_owned(),
            OriginHost::Address(IpAddr::V4(ip)) => ip.to_string(),
            OriginHost::Address(IpAddr::V6(ip)) => format!("[{ip}]"),
        };
        let scheme = if self.https { "https" } else { "http" };
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        Url::parse(&format!("{scheme}://{host}{port}/")).ok()
    }
}

fuzz_target!(|input: Input<'_>| {
    let lab = [
        Url::parse("http://localhost:8081").unwrap(),
        Url::parse("http://127.0.0.1:8092").unwrap(),
    ];
    check(input.target, &lab, "127.0.0.1:8081".parse().unwrap());

    let origins: Vec<Url> = input.origins.iter().filter_map(Origin::url).collect();
    check(input.target, &origins, input.listening);
});

fn check(input: &str, origins: &[Url], listening: SocketAddr) {
    let own = ServedAt::new(origins, listening);
    let endpoints = endpoints(origins, listening);

    match TargetUrl::parse(input, &own) {
        Ok(target) => {
            assert!(input.len() <= MAX_URL_BYTES);
            assert!(target.as_str().len() <= MAX_URL_BYTES, "{target:?}");
            let url = Url::parse(target.as_str()).expect("a stored target parses");
            assert!(matches!(url.scheme(), "http" | "https"), "{target:?}");
            let (place, port) = place_and_port(&url).expect("a stored target has a host");
            assert!(
                !endpoints
                    .iter()
                    .any(|(p, ports)| *p == place && ports.contains(&port)),
                "{input:?} reaches the shortener served at {origins:?} on {listening}"
            );
            assert_eq!(
                TargetUrl::parse(target.as_str(), &own).as_ref(),
                Ok(&target),
                "{input:?} is stored as {:?}, which parses differently",
                target.as_str()
            );

            let by_address = endpoints
                .iter()
                .any(|(p, ports)| !matches!(p, Place::Name(_)) && ports.contains(&port));
            let is_name = matches!(url.host(), Some(Host::Domain(_)));
            assert_eq!(
                target.name_to_look_up(&own).is_some(),
                is_name && by_address,
                "{input:?}"
            );

            let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
            let this_machine = endpoints
                .iter()
                .any(|(p, ports)| *p == Place::ThisMachine && ports.contains(&port));
            assert_eq!(
                target.check_addresses(&[loopback], &own).is_err(),
                this_machine,
                "{input:?} resolving to 127.0.0.1"
            );
        }
        Err(TargetUrlError::PointsAtShortener) => {
            let url = Url::parse(input).unwrap();
            let (place, port) = place_and_port(&url).unwrap();
            assert!(
                endpoints
                    .iter()
                    .any(|(p, ports)| *p == place && ports.contains(&port)),
                "{input:?} was refused, yet does not reach {origins:?} or {listening}"
            );
        }
        Err(TargetUrlError::TooLong) => {
            assert!(
                input.len() > MAX_URL_BYTES
                    || Url::parse(input).is_ok_and(|url| url.as_str().len() > MAX_URL_BYTES),
                "{input:?} is not too long"
            );
        }
        Err(_) => {}
    }
}

/// Where a connection goes, as far as reaching the shortener is concerned.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    ThisMachine,
    Address(IpAddr),
    Name(String),
}

fn endpoints(origins: &[Url], listening: SocketAddr) -> Vec<(Place, Vec<u16>)> {
    let mut endpoints: Vec<(Place, Vec<u16>)> = origins
        .iter()
        .filter_map(|origin| {
            let place = place_of(&origin.host()?)?;
            // An origin without a port answers on both: http:// redirects to https://.
            let ports = origin.port().map_or(vec![80, 443], |port| vec![port]);
            Some((place, ports))
        })
        .collect();
    endpoints.push((place_of_ip(listening.ip()), vec![listening.port()]));
    endpoints
}

fn place_and_port(url: &Url) -> Option<(Place, u16)> {
    Some((place_of(&url.host()?)?, url.port_or_known_default()?))
}

fn place_of(host: &Host<&str>) -> Option<Place> {
    match host {
        Host::Domain(name) => {
            let name = name.trim_end_matches('.');
            let this_machine = name == "localhost" || name.ends_with(".localhost");
            match name {
                "" => None,
                _ if this_machine => Some(Place::ThisMachine),
                _ => Some(Place::Name(name.to_ascii_lowercase())),
            }
        }
        Host::Ipv4(ip) => Some(place_of_ip(IpAddr::V4(*ip))),
        Host::Ipv6(ip) => Some(place_of_ip(IpAddr::V6(*ip))),
    }
}

/// RFC 1122 §3.2.1.3 (0.0.0.0/8, 127.0.0.0/8), RFC 4291 §2.5.2, §2.5.3 and §2.5.5.2 (`::`,
/// `::1`, `::ffff:a.b.c.d`).
fn place_of_ip(ip: IpAddr) -> Place {
    match ip {
        IpAddr::V4(v4) if matches!(v4.octets()[0], 0 | 127) => Place::ThisMachine,
        IpAddr::V4(v4) => Place::Address(IpAddr::V4(v4)),
        IpAddr::V6(v6) => match v6.segments() {
            [0, 0, 0, 0, 0, 0, 0, 0 | 1] => Place::ThisMachine,
            [0, 0, 0, 0, 0, 0xffff, high, low] => {
                let [a, b] = high.to_be_bytes();
                let [c, d] = low.to_be_bytes();
                place_of_ip(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
            }
            _ => Place::Address(IpAddr::V6(v6)),
        },
    }
}
