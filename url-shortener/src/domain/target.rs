//! The URL a link redirects to, checked once when the link is created.
//!
//! What is refused, and why:
//! - anything that is not an absolute `http` or `https` URL with a host. `javascript:` and
//!   `data:` get their own message: a shortener that stored them would run script or serve
//!   content under its own name, the classic way shorteners are abused for phishing and XSS;
//! - more than 2,048 bytes, before or after normalisation (the practical limit browsers and
//!   proxies agree on, and a bound on what one row can cost);
//! - a URL that reaches the shortener itself ([`ServedAt`]): `/abc` → `/def` → `/abc` is a
//!   redirect loop, and a chain through the shortener hides the final destination from users and
//!   filters.
//!
//! Whether a host *name* leads back here depends on what it resolves to, which is I/O and so not
//! decided here: [`TargetUrl::name_to_look_up`] says when its addresses matter, and
//! [`TargetUrl::check_addresses`] judges the addresses the service looked up.

use std::net::{IpAddr, SocketAddr};

use url::{Host, Url};

pub const MAX_URL_BYTES: usize = 2048;

/// A target URL that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl(Url);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetUrlError {
    #[error("must be at most {MAX_URL_BYTES} bytes")]
    TooLong,
    #[error("is not an absolute URL ({0})")]
    Unparseable(String),
    #[error("the {0}: scheme is not allowed")]
    DangerousScheme(String),
    #[error("must use http or https, not {0}:")]
    UnsupportedScheme(String),
    #[error("must have a host")]
    NoHost,
    #[error("must not point back at this shortener")]
    PointsAtShortener,
    #[error("must not point back at this shortener (its host resolves to {0})")]
    ResolvesToShortener(IpAddr),
}

impl TargetUrl {
    /// Checks `input` against the rules above; `own` is where the shortener answers.
    pub fn parse(input: &str, own: &ServedAt) -> Result<Self, TargetUrlError> {
        if input.len() > MAX_URL_BYTES {
            return Err(TargetUrlError::TooLong);
        }
        let url = Url::parse(input).map_err(|err| TargetUrlError::Unparseable(err.to_string()))?;
        match url.scheme() {
            "http" | "https" => {}
            scheme @ ("javascript" | "data" | "vbscript" | "file" | "blob") => {
                return Err(TargetUrlError::DangerousScheme(scheme.to_owned()));
            }
            scheme => return Err(TargetUrlError::UnsupportedScheme(scheme.to_owned())),
        }
        let Some(place) = url.host().and_then(|host| Place::of_host(&host)) else {
            return Err(TargetUrlError::NoHost);
        };
        if own.serves(&place, port_of(&url)) {
            return Err(TargetUrlError::PointsAtShortener);
        }
        // Normalisation (percent-encoding, punycode) can lengthen a URL.
        if url.as_str().len() > MAX_URL_BYTES {
            return Err(TargetUrlError::TooLong);
        }
        Ok(Self(url))
    }

    /// The host name to resolve before the link is accepted: `Some` only for a name (an address
    /// was judged by [`TargetUrl::parse`]) on a port the shortener answers on by address. A
    /// link to `https://example.com` needs no lookup when nothing of ours listens on 443 by
    /// address, which is the usual case behind a load balancer.
    pub fn name_to_look_up(&self, own: &ServedAt) -> Option<&str> {
        match self.0.host()? {
            Host::Domain(name) if own.listens_by_address_on(port_of(&self.0)) => Some(name),
            _ => None,
        }
    }

    /// Refuses the URL if one of `addresses`, what its host name resolves to, is one the
    /// shortener answers on at the URL's port.
    pub fn check_addresses(
        &self,
        addresses: &[IpAddr],
        own: &ServedAt,
    ) -> Result<(), TargetUrlError> {
        let port = port_of(&self.0);
        match addresses
            .iter()
            .find(|&&ip| own.serves(&Place::of_ip(ip), port))
        {
            Some(&ip) => Err(TargetUrlError::ResolvesToShortener(ip)),
            None => Ok(()),
        }
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// The port a browser connects to for `url`.
fn port_of(url: &Url) -> u16 {
    url.port_or_known_default()
        .expect("http and https have default ports")
}

/// Everywhere the shortener answers: its public base URL, the other origins in front of it (the
/// rate limiter's gateway, a CDN), and the socket it listens on.
///
/// Two kinds of place, compared differently:
/// - a **name** (`sho.rt`) is compared as DNS sees it: case-insensitively (`url` lowercases it)
///   and without a trailing dot (`sho.rt.` is `sho.rt`). Our own names are not resolved: behind
///   a load balancer or a CDN their addresses are shared with other sites, which route by name,
///   so refusing every URL on those addresses would refuse innocent links;
/// - an **address**. Every loopback and unspecified form is one place, *this machine*:
///   `localhost`, `127.0.0.0/8`, `[::1]`, `0.0.0.0` (which connects to this machine on Linux
///   and macOS), `[::]`, and each of those as an IPv4-mapped IPv6 address (`[::ffff:127.0.0.1]`).
///   A listener on `127.0.0.1:8081` or `0.0.0.0:8081` answers a browser on this machine at all
///   of them.
///
/// A public origin without a port answers on both 80 and 443: `http://sho.rt/x` reaches a
/// TLS-terminating proxy that redirects to `https://sho.rt/x`, which loops just the same.
///
/// Not known here, and so not refused: the other addresses of this machine's interfaces when it
/// listens on all of them (`http://192.168.1.5:8081/`), and an address of our own public name
/// written as an IP. The first is reachable only from inside that network; for the second, list
/// the address among the other origins when it reaches the shortener directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedAt {
    endpoints: Vec<(Place, Vec<u16>)>,
}

/// A host, reduced to what decides whether a connection to it reaches us.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    ThisMachine,
    Address(IpAddr),
    Name(String),
}

impl Place {
    fn of_host(host: &Host<&str>) -> Option<Self> {
        Some(match *host {
            Host::Domain(name) => {
                let name = name.trim_end_matches('.');
                if name.is_empty() {
                    return None;
                }
                // RFC 6761: `localhost` and every name under it is this machine, and browsers
                // resolve them so without asking DNS.
                if name == "localhost" || name.ends_with(".localhost") {
                    Self::ThisMachine
                } else {
                    Self::Name(name.to_owned())
                }
            }
            Host::Ipv4(ip) => Self::of_ip(IpAddr::V4(ip)),
            Host::Ipv6(ip) => Self::of_ip(IpAddr::V6(ip)),
        })
    }

    fn of_ip(ip: IpAddr) -> Self {
        // `[::ffff:127.0.0.1]` is 127.0.0.1 on the wire: judge the IPv4 address.
        let ip = ip.to_canonical();
        let this_machine = match ip {
            // 0.0.0.0/8 ("this network"): 0.0.0.0 connects to this machine; the rest of the
            // block cannot be connected to at all, so counting it here refuses nothing useful.
            IpAddr::V4(v4) => v4.is_loopback() || v4.octets()[0] == 0,
            IpAddr::V6(v6) => v6.is_loopback() || v6.is_unspecified(),
        };
        if this_machine {
            Self::ThisMachine
        } else {
            Self::Address(ip)
        }
    }
}

impl ServedAt {
    /// The shortener served at `origins` (its public base URL first) and listening on
    /// `listening`, the address its socket is bound to.
    pub fn new<'a>(origins: impl IntoIterator<Item = &'a Url>, listening: SocketAddr) -> Self {
        let mut endpoints: Vec<(Place, Vec<u16>)> = origins
            .into_iter()
            .filter_map(|origin| {
                let place = Place::of_host(&origin.host()?)?;
                let ports = match origin.port() {
                    Some(port) => vec![port],
                    None => vec![80, 443],
                };
                Some((place, ports))
            })
            .collect();
        endpoints.push((Place::of_ip(listening.ip()), vec![listening.port()]));
        Self { endpoints }
    }

    fn serves(&self, place: &Place, port: u16) -> bool {
        self.endpoints
            .iter()
            .any(|(served, ports)| served == place && ports.contains(&port))
    }

    /// Whether something of ours answers on `port` at an address (as opposed to by name only),
    /// so that a name resolving to that address would reach it.
    fn listens_by_address_on(&self, port: u16) -> bool {
        self.endpoints
            .iter()
            .any(|(place, ports)| !matches!(place, Place::Name(_)) && ports.contains(&port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lab's shortener: `http://localhost:8081`, listening on 127.0.0.1:8081, with the rate
    /// limiter's gateway in front of it on 8092.
    fn own() -> ServedAt {
        let base = Url::parse("http://localhost:8081").unwrap();
        let gateway = Url::parse("http://127.0.0.1:8092").unwrap();
        ServedAt::new([&base, &gateway], "127.0.0.1:8081".parse().unwrap())
    }

    fn check(input: &str) -> Result<TargetUrl, TargetUrlError> {
        TargetUrl::parse(input, &own())
    }

    #[test]
    fn ordinary_web_urls_are_accepted_and_normalised() {
        assert_eq!(
            check("HTTPS://Example.COM/a path?q=1#frag")
                .unwrap()
                .as_str(),
            "https://example.com/a%20path?q=1#frag"
        );
        assert!(check("http://127.0.0.1:9000/").is_ok());
        assert!(check("https://[::1]/x").is_ok());
    }

    #[test]
    fn script_and_data_urls_are_refused_by_name() {
        assert_eq!(
            check("javascript:alert(1)"),
            Err(TargetUrlError::DangerousScheme("javascript".into()))
        );
        assert_eq!(
            check("data:text/html,<script>alert(1)</script>"),
            Err(TargetUrlError::DangerousScheme("data".into()))
        );
        assert_eq!(
            check("JaVaScRiPt:alert(1)"),
            Err(TargetUrlError::DangerousScheme("javascript".into()))
        );
    }

    #[test]
    fn other_schemes_are_refused() {
        assert_eq!(
            check("ftp://example.com/f"),
            Err(TargetUrlError::UnsupportedScheme("ftp".into()))
        );
        assert!(matches!(
            check("mailto:a@example.com"),
            Err(TargetUrlError::UnsupportedScheme(_))
        ));
    }

    #[test]
    fn relative_and_hostless_urls_are_refused() {
        assert!(matches!(
            check("/just/a/path"),
            Err(TargetUrlError::Unparseable(_))
        ));
        assert!(matches!(
            check("example.com"),
            Err(TargetUrlError::Unparseable(_))
        ));
        assert!(matches!(
            check("http://"),
            Err(TargetUrlError::Unparseable(_))
        ));
        assert!(matches!(check(""), Err(TargetUrlError::Unparseable(_))));
        assert_eq!(check("http://./"), Err(TargetUrlError::NoHost));
    }

    #[test]
    fn urls_over_2048_bytes_are_refused_and_2048_is_fine() {
        let prefix = "https://example.com/";
        let exact = format!("{prefix}{}", "a".repeat(MAX_URL_BYTES - prefix.len()));
        assert!(check(&exact).is_ok());
        assert_eq!(check(&format!("{exact}a")), Err(TargetUrlError::TooLong));
    }

    #[test]
    fn a_url_that_grows_past_the_limit_when_normalised_is_refused() {
        let spaces = format!("https://example.com/{}", "a b".repeat(600));
        assert!(spaces.len() < MAX_URL_BYTES);
        assert_eq!(check(&spaces), Err(TargetUrlError::TooLong));
    }

    #[test]
    fn urls_on_the_shorteners_own_origin_are_refused() {
        assert_eq!(
            check("http://localhost:8081/abc"),
            Err(TargetUrlError::PointsAtShortener)
        );
        assert_eq!(
            check("http://LOCALHOST:8081/"),
            Err(TargetUrlError::PointsAtShortener)
        );
        assert!(
            check("http://localhost:9999/abc").is_ok(),
            "another port is another service"
        );

        let public = ServedAt::new(
            [&Url::parse("https://sho.rt").unwrap()],
            "0.0.0.0:8081".parse().unwrap(),
        );
        assert_eq!(
            TargetUrl::parse("https://sho.rt./abc", &public),
            Err(TargetUrlError::PointsAtShortener),
            "a trailing dot names the same host"
        );
        assert_eq!(
            TargetUrl::parse("http://sho.rt/abc", &public),
            Err(TargetUrlError::PointsAtShortener)
        );
        assert_eq!(
            TargetUrl::parse("https://sho.rt:443/abc", &public),
            Err(TargetUrlError::PointsAtShortener)
        );
        assert!(TargetUrl::parse("https://sho.rt:8443/abc", &public).is_ok());
    }

    #[test]
    fn every_form_of_this_machine_is_refused_on_a_port_the_shortener_listens_on() {
        for this_machine in [
            "http://127.0.0.1:8081/abc",
            "http://127.1.2.3:8081/",
            "http://[::1]:8081/abc",
            // Unspecified: connecting to it reaches this machine.
            "http://0.0.0.0:8081/abc",
            "http://0:8081/abc",
            "http://[::]:8081/abc",
            // IPv4-mapped IPv6: the IPv4 address on the wire.
            "http://[::ffff:127.0.0.1]:8081/abc",
            "http://[0:0:0:0:0:ffff:7f00:1]:8081/abc",
            "http://[::ffff:0.0.0.0]:8081/abc",
            // The spellings of 127.0.0.1 a browser accepts: hexadecimal, octal, one number, short.
            "http://0x7f.0.0.1:8081/abc",
            "http://0177.0.0.1:8081/abc",
            "http://2130706433:8081/abc",
            "http://127.1:8081/abc",
            // Every name under localhost, with or without the root's dot.
            "http://localhost.:8081/abc",
            "http://app.localhost:8081/abc",
        ] {
            assert_eq!(
                check(this_machine),
                Err(TargetUrlError::PointsAtShortener),
                "{this_machine}"
            );
        }
        for another_service in [
            "http://127.0.0.1:9000/",
            "http://0.0.0.0:9000/",
            "http://[::]:9000/",
            "http://[::ffff:127.0.0.1]:9000/",
        ] {
            assert!(check(another_service).is_ok(), "{another_service}");
        }
    }

    #[test]
    fn the_gateway_in_front_of_the_shortener_is_refused_in_every_form() {
        for gateway in [
            "http://127.0.0.1:8092/abc",
            "http://localhost:8092/abc",
            "http://0.0.0.0:8092/abc",
            "http://[::ffff:7f00:1]:8092/abc",
        ] {
            assert_eq!(
                check(gateway),
                Err(TargetUrlError::PointsAtShortener),
                "{gateway}"
            );
        }
    }

    #[test]
    fn a_listener_on_one_address_is_refused_at_that_address_in_either_family() {
        let own = ServedAt::new([], "10.0.0.5:8081".parse().unwrap());
        for same in ["http://10.0.0.5:8081/", "http://[::ffff:10.0.0.5]:8081/"] {
            assert_eq!(
                TargetUrl::parse(same, &own),
                Err(TargetUrlError::PointsAtShortener),
                "{same}"
            );
        }
        assert!(TargetUrl::parse("http://10.0.0.6:8081/", &own).is_ok());
    }

    #[test]
    fn a_name_is_looked_up_only_on_a_port_the_shortener_answers_on_by_address() {
        let own = own();
        let lookup = |input: &str| {
            check(input)
                .unwrap()
                .name_to_look_up(&own)
                .map(str::to_owned)
        };
        assert_eq!(
            lookup("http://loops.example:8081/x").as_deref(),
            Some("loops.example")
        );
        assert_eq!(
            lookup("http://loops.example:8092/x").as_deref(),
            Some("loops.example")
        );
        assert_eq!(lookup("https://example.com/x"), None);
        assert_eq!(
            lookup("http://127.0.0.1:9000/"),
            None,
            "an address is judged as written"
        );
    }

    #[test]
    fn a_name_that_resolves_to_the_shortener_is_refused_and_one_that_does_not_is_accepted() {
        let own = own();
        let target = check("http://loops.example:8081/x").unwrap();
        let public: IpAddr = "93.184.216.34".parse().unwrap();

        for ours in ["127.0.0.1", "::1", "0.0.0.0", "::ffff:127.0.0.1"] {
            let ours: IpAddr = ours.parse().unwrap();
            assert_eq!(
                target.check_addresses(&[public, ours], &own),
                Err(TargetUrlError::ResolvesToShortener(ours))
            );
        }
        assert_eq!(target.check_addresses(&[public], &own), Ok(()));
        assert_eq!(target.check_addresses(&[], &own), Ok(()));
        let elsewhere = check("http://loops.example:9000/x").unwrap();
        assert_eq!(
            elsewhere.check_addresses(&["127.0.0.1".parse().unwrap()], &own),
            Ok(()),
            "another port is another service"
        );
    }
}
