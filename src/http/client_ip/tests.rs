//! Client addresses from peers and forwarding headers, as an attacker sends them.

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
