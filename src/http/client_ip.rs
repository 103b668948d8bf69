//! Which address a request comes from.
//!
//! The socket peer is the client, unless the peer is one of the operator's own
//! proxies. Only then is the one header those proxies write read
//! ([`ForwardedHeader`]: `X-Forwarded-For` or RFC 7239 `Forwarded`, never
//! both), from the right: each proxy appends the address it received the
//! request from, so the rightmost address that is not a trusted proxy is the
//! first one a trusted proxy vouches for. Everything to its left was written
//! by the client and proves nothing: taking the leftmost entry, reading the
//! headers from any peer, or reading a header the proxy passes through
//! untouched lets a caller pick its own rate-limit bucket.
//!
//! The header is read as bytes, entry by entry: a byte that is not ASCII in
//! one entry makes that entry "not an address", and the entries to its right
//! (the ones the proxies wrote) still count.
//!
//! IPv6 clients are grouped by prefix (the layer's `ipv6_prefix`, /64 by
//! default): one end site gets a /64 or more, so a bucket per /128 would give
//! one client 2^64 fresh buckets.

use std::net::IpAddr;
use std::str::FromStr;

use http::HeaderMap;

use crate::error::ConfigError;

/// An address range such as `10.0.0.0/8` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside the range (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = ConfigError;

    /// `addr/prefix`, or a bare address for a single host.
    fn from_str(s: &str) -> Result<Cidr, ConfigError> {
        let invalid = || {
            ConfigError::invalid(
                "trusted proxy",
                format!("`{s}` is not an address or CIDR range"),
            )
        };
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s.trim(), None),
        };
        let network = canonical(IpAddr::from_str(addr).map_err(|_| invalid())?);
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(invalid)?,
            None => max,
        };
        Ok(Cidr { network, prefix })
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The header the trusted proxies write the client's address into. Only this
/// one is read: a proxy that writes `Forwarded` usually passes a client's
/// `X-Forwarded-For` through untouched, and the reverse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` (nginx, HAProxy, AWS ALB, most CDNs); the default.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded`, its `for=` parameters (Envoy, some CDNs).
    Forwarded,
}

impl FromStr for ForwardedHeader {
    type Err = ConfigError;

    /// `x-forwarded-for` or `forwarded`, in any case.
    fn from_str(s: &str) -> Result<ForwardedHeader, ConfigError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(ForwardedHeader::XForwardedFor),
            "forwarded" => Ok(ForwardedHeader::Forwarded),
            other => Err(ConfigError::invalid(
                "forwarded header",
                format!("`{other}` is neither `x-forwarded-for` nor `forwarded`"),
            )),
        }
    }
}

/// The operator's own proxies and load balancers, and the header they write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    ranges: Vec<Cidr>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// No trusted proxies: the socket peer is always the client (the default).
    pub fn none() -> TrustedProxies {
        TrustedProxies::default()
    }

    /// Parses a comma-separated list such as `10.0.0.0/8, 192.168.1.7, fd00::/8`;
    /// they write `X-Forwarded-For` unless [`header`](TrustedProxies::header)
    /// says otherwise.
    pub fn parse(list: &str) -> Result<TrustedProxies, ConfigError> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Cidr::from_str)
            .collect::<Result<_, _>>()
            .map(|ranges| TrustedProxies {
                ranges,
                header: ForwardedHeader::default(),
            })
    }

    /// The one header the proxies write (default `X-Forwarded-For`).
    pub fn header(mut self, header: ForwardedHeader) -> TrustedProxies {
        self.header = header;
        self
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|c| c.contains(ip))
    }

    /// The client address of a request that arrived from `peer` with `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        let hops = match self.header {
            ForwardedHeader::XForwardedFor => x_forwarded_for(headers),
            ForwardedHeader::Forwarded => forwarded(headers),
        };
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop {
                // Not an address where a trusted proxy would have written one:
                // the proxy that received the request is all that is known.
                None => return client,
                Some(ip) => {
                    client = canonical(*ip);
                    if !self.contains(client) {
                        return client;
                    }
                }
            }
        }
        client
    }
}

/// The entries of every occurrence of a header, in order, split on commas,
/// as bytes: one bad entry spoils only itself.
fn entries<'a>(headers: &'a HeaderMap, name: &str) -> impl Iterator<Item = &'a [u8]> {
    headers
        .get_all(name)
        .into_iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b','))
}

/// The addresses of `X-Forwarded-For`; `None` for an entry that is not one.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    entries(headers, "x-forwarded-for")
        .map(|entry| parse_hop(std::str::from_utf8(entry).ok()?.trim()))
        .collect()
}

/// The `for=` parameters of `Forwarded` (RFC 7239, section 4), one per
/// element; `None` for an element whose `for=` is not an address (such as an
/// obfuscated identifier, `unknown`, or bytes that are not text).
fn forwarded(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    entries(headers, "forwarded")
        .map(|element| {
            let element = std::str::from_utf8(element).ok()?;
            element.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                name.eq_ignore_ascii_case("for")
                    .then(|| parse_hop(value.trim().trim_matches('"')))
            })?
        })
        .collect()
}

/// A client address as a rate-limit subject: IPv4 as it is, IPv6 as the
/// network of its first `ipv6_prefix` bits (`2001:db8:1:2::/64`).
pub(crate) fn subject(ip: IpAddr, ipv6_prefix: u8) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(ipv6_prefix.min(128)))
                .unwrap_or(0);
            let network = std::net::Ipv6Addr::from(u128::from(v6) & mask);
            format!("{network}/{ipv6_prefix}")
        }
    }
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `[2001:db8::1]:80`, `2001:db8::1`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = IpAddr::from_str(hop) {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return IpAddr::from_str(rest.split(']').next()?).ok();
    }
    let (host, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    IpAddr::from_str(host).ok().filter(IpAddr::is_ipv4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn forwarded_proxies(list: &str) -> TrustedProxies {
        TrustedProxies::parse(list)
            .unwrap()
            .header(ForwardedHeader::Forwarded)
    }

    #[test]
    fn ranges_contain_what_they_should() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.200.1.1")) && !c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped IPv6");
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let host: Cidr = "192.168.1.7".parse().unwrap();
        assert!(host.contains(ip("192.168.1.7")) && !host.contains(ip("192.168.1.8")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0.0/x", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_are_ignored_unless_the_peer_is_a_trusted_proxy() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let spoofed = headers(&[("x-forwarded-for", "1.1.1.1")]);
        assert_eq!(
            trusted.client_ip(ip("203.0.113.5"), &spoofed),
            ip("203.0.113.5")
        );
        assert_eq!(
            TrustedProxies::none().client_ip(ip("10.0.0.1"), &spoofed),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client_never_the_leftmost() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 192.168.0.0/16").unwrap();
        // The client wrote "6.6.6.6" itself; the edge proxy appended 203.0.113.9.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 192.168.3.3")]);
        assert_eq!(trusted.client_ip(ip("10.1.1.1"), &h), ip("203.0.113.9"));
        // Several header lines form one list.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.2"),
        ]);
        assert_eq!(trusted.client_ip(ip("10.1.1.1"), &h), ip("198.51.100.2"));
        // Every hop trusted: the leftmost one is as far as anyone vouches.
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 10.8.8.8")]);
        assert_eq!(trusted.client_ip(ip("10.1.1.1"), &h), ip("10.9.9.9"));
    }

    #[test]
    fn forwarded_is_read_when_the_proxies_write_it() {
        let trusted = forwarded_proxies("10.0.0.0/8");
        let h = headers(&[(
            "forwarded",
            r#"for=6.6.6.6, for="[2001:db8::7]:4711";proto=https, for=10.2.2.2"#,
        )]);
        assert_eq!(trusted.client_ip(ip("10.1.1.1"), &h), ip("2001:db8::7"));
        let h = headers(&[("forwarded", "for=198.51.100.4:1234")]);
        assert_eq!(trusted.client_ip(ip("10.1.1.1"), &h), ip("198.51.100.4"));
    }

    #[test]
    fn garbage_where_an_address_belongs_stops_at_the_last_trusted_hop() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let h = headers(&[("x-forwarded-for", "6.6.6.6, unknown, 10.3.3.3")]);
        assert_eq!(trusted.client_ip(ip("10.1.1.1"), &h), ip("10.3.3.3"));
        let h = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(
            forwarded_proxies("10.0.0.0/8").client_ip(ip("10.1.1.1"), &h),
            ip("10.1.1.1")
        );
    }

    /// Behind a proxy that writes `Forwarded` and passes the client's
    /// `X-Forwarded-For` through, rotating `X-Forwarded-For` moved a caller
    /// to a fresh bucket on every request.
    #[test]
    fn only_the_header_the_proxy_writes_is_read() {
        let by_forwarded = forwarded_proxies("10.0.0.0/8");
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=203.0.113.9"),
        ]);
        assert_eq!(
            by_forwarded.client_ip(ip("10.1.1.1"), &h),
            ip("203.0.113.9")
        );
        let by_xff = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=6.6.6.6"),
        ]);
        assert_eq!(by_xff.client_ip(ip("10.1.1.1"), &h), ip("203.0.113.9"));
        // The header the proxy does not own is never a source.
        let h = headers(&[("x-forwarded-for", "6.6.6.6")]);
        assert_eq!(by_forwarded.client_ip(ip("10.1.1.1"), &h), ip("10.1.1.1"));
        assert_eq!(
            "Forwarded".parse::<ForwardedHeader>().unwrap(),
            ForwardedHeader::Forwarded
        );
        assert!("x-real-ip".parse::<ForwardedHeader>().is_err());
    }

    /// A non-ASCII byte used to drop the whole header, moving a locked-out
    /// client into the proxy's own bucket.
    #[test]
    fn a_bad_byte_spoils_only_its_own_entry() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"6.6.6.\xff6, 203.0.113.9").unwrap(),
        );
        assert_eq!(trusted.client_ip(ip("10.1.1.1"), &h), ip("203.0.113.9"));
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"203.0.113.9, \xe9t\xe9").unwrap(),
        );
        assert_eq!(
            trusted.client_ip(ip("10.1.1.1"), &h),
            ip("10.1.1.1"),
            "garbage where the proxy's entry belongs: the proxy is all that is known"
        );
        let mut h = HeaderMap::new();
        h.append(
            "forwarded",
            HeaderValue::from_bytes(b"for=\xff, for=198.51.100.4").unwrap(),
        );
        assert_eq!(
            forwarded_proxies("10.0.0.0/8").client_ip(ip("10.1.1.1"), &h),
            ip("198.51.100.4")
        );
    }

    #[test]
    fn ipv6_clients_share_a_subject_per_prefix() {
        let a = subject(ip("2001:db8:1:2:aaaa::1"), 64);
        let b = subject(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), 64);
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(a, b);
        assert_ne!(a, subject(ip("2001:db8:1:3::1"), 64));
        assert_eq!(subject(ip("2001:db8::1"), 128), "2001:db8::1/128");
        assert_eq!(subject(ip("203.0.113.9"), 64), "203.0.113.9");
        assert_eq!(subject(ip("::ffff:203.0.113.9"), 64), "203.0.113.9");
        assert_eq!(subject(ip("2001:db8::1"), 0), "::/0");
    }
}
