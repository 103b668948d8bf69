//! Which address a request comes from.
//!
//! The socket peer is the client, unless the peer is one of the operator's own
//! proxies. Only then are `X-Forwarded-For` / `Forwarded` read, from the right:
//! each proxy appends the address it received the request from, so the
//! rightmost address that is not a trusted proxy is the first one a trusted
//! proxy vouches for. Everything to its left was written by the client and
//! proves nothing: taking the leftmost entry, or reading the headers from any
//! peer, lets a caller pick its own rate-limit bucket.

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

/// The operator's own proxies and load balancers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// No trusted proxies: the socket peer is always the client (the default).
    pub fn none() -> TrustedProxies {
        TrustedProxies(Vec::new())
    }

    /// Parses a comma-separated list such as `10.0.0.0/8, 192.168.1.7, fd00::/8`.
    pub fn parse(list: &str) -> Result<TrustedProxies, ConfigError> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Cidr::from_str)
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client address of a request that arrived from `peer` with `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        let hops = forwarded_hops(headers);
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

/// The addresses of `X-Forwarded-For` (every occurrence, in order), or if
/// there is none, the `for=` parameters of `Forwarded`; `None` for an entry
/// that is not an address.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let xff: Vec<Option<IpAddr>> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| {
            v.to_str()
                .unwrap_or("\u{0}")
                .split(',')
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .map(|entry| parse_hop(entry.trim()))
        .collect();
    if !xff.is_empty() {
        return xff;
    }
    headers
        .get_all("forwarded")
        .iter()
        .flat_map(|v| {
            v.to_str()
                .unwrap_or("for=\u{0}")
                .split(',')
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                name.eq_ignore_ascii_case("for")
                    .then(|| parse_hop(value.trim().trim_matches('"')))
            })
        })
        .collect()
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
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
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
        assert_eq!(trusted.client_ip(ip("10.1.1.1"), &h), ip("10.1.1.1"));
    }
}
