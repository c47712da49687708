//! Which network addresses the notifier sends to: ordinary public unicast addresses only. A
//! webhook URL is chosen by a user and the POST comes from inside our network, so an address
//! inside it (a private range, loopback, the cloud metadata service at 169.254.169.254) would let
//! any user reach what only we should.
//!
//! A rule on values, with no I/O, applied twice: when a webhook URL is stored, to an address
//! written in it (`User::parse`: a mistake is a 422 at once, not a dead letter later), and when a
//! webhook is sent, to every address its host resolves to (`providers/webhook.rs`: the check that
//! holds, since what a name resolves to can change between the two).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Which addresses webhooks may be sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressPolicy {
    /// Public unicast addresses only: everywhere but a developer's machine.
    PublicOnly,
    /// Any address, so that a receiver on loopback works: local development and tests only
    /// (`NOTIFIER_WEBHOOK_ALLOW_PRIVATE`).
    AllowPrivate,
}

impl AddressPolicy {
    pub fn allowing_private(allow: bool) -> Self {
        if allow {
            Self::AllowPrivate
        } else {
            Self::PublicOnly
        }
    }

    /// Whether a webhook to `ip` is refused.
    pub fn refuses(self, ip: IpAddr) -> bool {
        self == Self::PublicOnly && is_forbidden(ip)
    }
}

/// The address written as `url`'s host (`http://10.0.0.5/`, `http://[::1]/`, and the spellings
/// `url` reads as one, such as `http://0x7f000001/`); `None` for a name.
pub fn written_address(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        Host::Domain(_) => None,
    }
}

/// Whether a webhook may not be sent to `ip`: anything that is not an ordinary public unicast
/// address.
///
/// The list is IANA's, not ours. A hand-picked list of checks misses blocks (198.18.0.0/15 for
/// benchmarking, 240.0.0.0/4 reserved, 192.0.0.0/24 for protocol assignments) and every row IANA
/// adds later; `iprfc::RFC6890` is both special-purpose registries (IPv4 and IPv6) as data, a
/// dated snapshot that a `cargo update` refreshes. Every row counts, including those IANA marks
/// globally reachable (anycast services such as AS112 and TURN): none of them is where a customer
/// runs a webhook receiver. Two rules come from other IANA registries: multicast (it has its own,
/// and is no destination for a POST), and IPv6 outside 2000::/3, the only block the IPv6 address
/// space registry allocates as global unicast (which also covers the deprecated site-local
/// fec0::/10).
pub fn is_forbidden(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => embedded_ipv4(v6).map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    };
    let outside_global_unicast = match ip {
        IpAddr::V6(v6) => v6.segments()[0] & 0xe000 != 0x2000,
        IpAddr::V4(_) => false,
    };
    iprfc::RFC6890.contains(&ip) || ip.is_multicast() || outside_global_unicast
}

/// The IPv4 address an IPv6 address leads to, for the forms that carry one in fixed bits:
/// - IPv4-mapped, `::ffff:a.b.c.d` (RFC 4291): the socket *is* an IPv4 one;
/// - IPv4-compatible, `::a.b.c.d` (RFC 4291, deprecated; `::` and `::1` fall here too, and come
///   out as 0.0.0.0 and 0.0.0.1, both refused as they should be);
/// - NAT64, `64:ff9b::a.b.c.d` (RFC 6052): the translator connects to the IPv4 address;
/// - 6to4, `2002:AABB:CCDD::/48` (RFC 3056): the relay tunnels to `AA.BB.CC.DD`.
///
/// Judging these by their own IPv6 block instead would let `[64:ff9b::a9fe:a9fe]` (the metadata
/// service through a NAT64 translator) past as a public address.
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let from = |high: u16, low: u16| {
        let [a, b] = high.to_be_bytes();
        let [c, d] = low.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    match s {
        [0x0064, 0xff9b, 0, 0, 0, 0, high, low] => Some(from(high, low)),
        [0x2002, high, low, ..] => Some(from(high, low)),
        // Mapped and compatible, both.
        _ => ip.to_ipv4(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowing_private_addresses_lifts_the_check_and_nothing_else_does() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(AddressPolicy::PublicOnly.refuses(loopback));
        assert!(!AddressPolicy::AllowPrivate.refuses(loopback));
        assert!(!AddressPolicy::PublicOnly.refuses("8.8.8.8".parse().unwrap()));
        let written = |url: &str| written_address(&Url::parse(url).unwrap());
        assert_eq!(written("http://0x7f000001:8080/"), Some(loopback));
        assert_eq!(written("http://[::1]/"), Some("::1".parse().unwrap()));
        assert_eq!(written("http://localhost/"), None);
    }

    fn forbidden(address: &str) -> bool {
        is_forbidden(address.parse().unwrap())
    }

    #[test]
    fn internal_addresses_are_forbidden_and_public_ones_are_not() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(forbidden(internal), "{internal}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(!forbidden(public), "{public}");
        }
    }

    #[test]
    fn every_block_of_the_special_purpose_registries_is_forbidden() {
        for special in [
            // Benchmarking, 198.18.0.0/15 (RFC 2544).
            "198.18.0.1",
            "198.19.255.254",
            // Reserved, 240.0.0.0/4 (RFC 1112).
            "240.0.0.1",
            "250.1.2.3",
            // IETF protocol assignments, 192.0.0.0/24 (RFC 6890), and its DS-Lite and NAT64
            // discovery rows.
            "192.0.0.1",
            "192.0.0.8",
            "192.0.0.170",
            // Documentation.
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "2001:db8::1",
            "3fff::1",
            // IPv6: discard-only, Teredo and the other IETF protocol assignments, ORCHIDv2,
            // local-use NAT64, segment routing.
            "100::1",
            "2001::1",
            "2001:20::1",
            "64:ff9b:1::1",
            "5f00::1",
            // IPv6 outside 2000::/3: site-local (deprecated), and space not allocated at all.
            "fec0::1",
            "4000::1",
        ] {
            assert!(forbidden(special), "{special}");
        }
    }

    #[test]
    fn an_ipv6_address_carrying_an_ipv4_address_is_judged_by_the_ipv4_address() {
        for internal in [
            // IPv4-compatible, ::a.b.c.d.
            "::127.0.0.1",
            "::10.0.0.1",
            "::169.254.169.254",
            // NAT64, 64:ff9b::/96.
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::c612:1",
            // 6to4, 2002:AABB:CCDD::/48.
            "2002:7f00:1::1",
            "2002:a00:1::",
            "2002:c0a8:101:1::1",
            // IPv4-mapped, with a block the hand-written list missed.
            "::ffff:198.18.0.1",
        ] {
            assert!(forbidden(internal), "{internal}");
        }
        for public in [
            "::8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
            "::ffff:1.1.1.1",
        ] {
            assert!(!forbidden(public), "{public}");
        }
    }
}
