//! The URL a link redirects to, checked once when the link is created.
//!
//! What is refused, and why:
//! - anything that is not an absolute `http` or `https` URL with a host. `javascript:` and
//!   `data:` get their own message: a shortener that stored them would run script or serve
//!   content under its own name, the classic way shorteners are abused for phishing and XSS;
//! - more than 2,048 bytes, before or after normalisation (the practical limit browsers and
//!   proxies agree on, and a bound on what one row can cost);
//! - a URL on the shortener's own origin: `/abc` → `/def` → `/abc` is a redirect loop, and a
//!   chain through the shortener hides the final destination from users and filters.

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
}

impl TargetUrl {
    /// Checks `input` against the rules above; `own_origin` is the shortener's public base URL.
    pub fn parse(input: &str, own_origin: &Url) -> Result<Self, TargetUrlError> {
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
        if url.host_str().is_none_or(str::is_empty) {
            return Err(TargetUrlError::NoHost);
        }
        if same_origin(&url, own_origin) {
            return Err(TargetUrlError::PointsAtShortener);
        }
        // Normalisation (percent-encoding, punycode) can lengthen a URL.
        if url.as_str().len() > MAX_URL_BYTES {
            return Err(TargetUrlError::TooLong);
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// Same host and same effective port. Hosts are compared the way DNS sees them: case-insensitively
/// (`url` lowercases them), without a trailing dot (`sho.rt.` is `sho.rt`), and every loopback
/// name (`localhost`, `127.0.0.0/8`, `[::1]`) as one host. The scheme is ignored on purpose:
/// `http://sho.rt/x` behind a TLS-terminating proxy still loops.
fn same_origin(url: &Url, own: &Url) -> bool {
    let port = |u: &Url| u.port_or_known_default();
    let same_host = match (host_of(url), host_of(own)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    };
    same_host && (port(url) == port(own) || own.port().is_none() && url.port().is_none())
}

#[derive(PartialEq, Eq)]
enum HostKey {
    Loopback,
    Name(String),
}

fn host_of(url: &Url) -> Option<HostKey> {
    let loopback = match url.host()? {
        Host::Domain(name) => {
            let name = name.trim_end_matches('.');
            if name != "localhost" && !name.ends_with(".localhost") {
                return Some(HostKey::Name(name.to_owned()));
            }
            true
        }
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    };
    Some(if loopback {
        HostKey::Loopback
    } else {
        HostKey::Name(url.host_str()?.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> Url {
        Url::parse("http://localhost:8081").unwrap()
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
        for loopback in [
            "http://127.0.0.1:8081/abc",
            "http://[::1]:8081/abc",
            "http://127.1.2.3:8081/",
        ] {
            assert_eq!(
                check(loopback),
                Err(TargetUrlError::PointsAtShortener),
                "{loopback}"
            );
        }
        assert!(check("http://127.0.0.1:9000/").is_ok());

        let public = Url::parse("https://sho.rt").unwrap();
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
    }
}
