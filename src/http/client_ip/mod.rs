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
mod tests;
