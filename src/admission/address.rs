//! Where a connection comes from: the TCP peer, or — only when the peer is a trusted proxy —
//! the client that proxy names; and the address per-address limits count it under.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Decides a request's client address.
#[derive(Debug, Clone, Default)]
pub struct ClientAddress {
    trusted_proxies: Vec<IpNet>,
}

impl ClientAddress {
    pub fn new(trusted_proxies: Vec<IpNet>) -> Self {
        ClientAddress { trusted_proxies }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// Whether the peer is a proxy whose forwarding headers are believed.
    pub fn from_trusted_proxy(&self, peer: SocketAddr) -> bool {
        self.is_trusted(canonical(peer.ip()))
    }

    /// The client's address. Forwarding headers are read right to left, skipping trusted
    /// proxies: the first address a trusted hop did not add itself is the client, and anything
    /// further left (which the client could have written) is ignored. `Forwarded` (RFC 7239) is
    /// preferred over `X-Forwarded-For`.
    pub fn resolve(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer.ip());
        if !self.is_trusted(client) {
            return client;
        }
        let hops = forwarded_for(headers).or_else(|| x_forwarded_for(headers));
        for hop in hops.unwrap_or_default().into_iter().rev() {
            client = hop;
            if !self.is_trusted(hop) {
                break;
            }
        }
        client
    }
}

/// The address per-address limits count a client under: an IPv4 address, or the /64 an IPv6
/// address belongs to — one IPv6 host usually has a whole /64, so counting single IPv6 addresses
/// would let it take any number of shares. IPv4-mapped IPv6 addresses count as IPv4.
pub fn quota_address(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

/// IPv4-mapped IPv6 addresses as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The `for=` addresses of every `Forwarded` element, in order; `None` without the header.
/// Obfuscated or unknown identifiers end the list where they stand (nothing left of them can be
/// trusted).
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let mut hops = Vec::new();
    let mut seen = false;
    for value in headers.get_all("forwarded") {
        seen = true;
        let value = value.to_str().ok()?;
        for element in value.split(',') {
            for pair in element.split(';') {
                let Some((key, node)) = pair.trim().split_once('=') else {
                    continue;
                };
                if key.eq_ignore_ascii_case("for") {
                    match parse_node(node.trim().trim_matches('"')) {
                        Some(ip) => hops.push(canonical(ip)),
                        None => hops.clear(),
                    }
                }
            }
        }
    }
    seen.then_some(hops)
}

/// The addresses of `X-Forwarded-For`, in order; `None` without the header.
fn x_forwarded_for(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let mut hops = Vec::new();
    let mut seen = false;
    for value in headers.get_all("x-forwarded-for") {
        seen = true;
        for part in value.to_str().ok()?.split(',') {
            match parse_node(part.trim()) {
                Some(ip) => hops.push(canonical(ip)),
                None => hops.clear(),
            }
        }
    }
    seen.then_some(hops)
}

/// `192.0.2.1`, `192.0.2.1:8080`, `[2001:db8::1]`, `[2001:db8::1]:8080` or a bare IPv6.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    node.strip_prefix('[')?.split(']').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 4000)
    }

    #[test]
    fn only_trusted_proxies_are_believed() {
        let addresses = ClientAddress::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let spoof = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            addresses.resolve(peer("192.0.2.9"), &spoof),
            peer("192.0.2.9").ip()
        );
        // The client wrote 6.6.6.6 itself; the trusted proxy 10.0.0.2 appended its client.
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.2")]);
        assert_eq!(
            addresses.resolve(peer("10.0.0.1"), &chain),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        let forwarded = headers(&[
            (
                "forwarded",
                r#"for=6.6.6.6, for="[2001:db8::7]:4711";proto=https"#,
            ),
            ("x-forwarded-for", "9.9.9.9"),
        ]);
        assert_eq!(
            addresses.resolve(peer("10.0.0.1"), &forwarded),
            "2001:db8::7".parse::<IpAddr>().unwrap(),
            "Forwarded wins over X-Forwarded-For"
        );
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(
            addresses.resolve(peer("10.0.0.1"), &unknown),
            peer("10.0.0.1").ip()
        );
    }

    #[test]
    fn ipv6_hosts_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(quota_address(a), quota_address(b));
        assert_ne!(quota_address(a), quota_address(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            quota_address(mapped),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }
}
