//! Where a connection comes from: the TCP peer, or — only when the peer is a trusted proxy —
//! the client that proxy names in the one header it writes; and the address per-address limits
//! count it under.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::config::ForwardedHeader;

/// Decides a request's client address (and the host it asked for, behind a proxy).
#[derive(Debug, Clone)]
pub struct ClientAddress {
    trusted_proxies: Vec<IpNet>,
    header: ForwardedHeader,
}

impl ClientAddress {
    pub fn new(trusted_proxies: Vec<IpNet>, header: ForwardedHeader) -> Self {
        ClientAddress {
            trusted_proxies,
            header,
        }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// The client's address. The proxy's header is read right to left, skipping trusted
    /// proxies: the first address a trusted hop did not add itself is the client, and anything
    /// further left (which the client could have written) is ignored. A header that cannot be
    /// read is no header: the peer is the client.
    pub fn resolve(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer.ip());
        if !self.is_trusted(peer) {
            return peer;
        }
        let hops = match self.header {
            // An element without `for=` counts as unknown: nothing left of it is trusted.
            ForwardedHeader::Forwarded => forwarded(headers, "for").map(|values| {
                values
                    .into_iter()
                    .map(|v| v.unwrap_or_else(|| "unknown".to_string()))
                    .collect()
            }),
            ForwardedHeader::XForwardedFor => x_forwarded(headers, "x-forwarded-for"),
        };
        let Some(hops) = hops else {
            return peer;
        };
        let mut client = peer;
        for hop in hops.iter().rev() {
            match parse_node(hop) {
                Some(ip) => client = canonical(ip),
                None => return client, // obfuscated or unknown: nothing left of it is known
            }
            if !self.is_trusted(client) {
                break;
            }
        }
        client
    }

    /// The host the client asked a trusted proxy for (`X-Forwarded-Host`, or `host=` of
    /// `Forwarded`), the proxy's own (rightmost) value; `None` from anyone else.
    pub fn forwarded_host(&self, peer: SocketAddr, headers: &HeaderMap) -> Option<String> {
        if !self.is_trusted(canonical(peer.ip())) {
            return None;
        }
        match self.header {
            // The proxy's own element; one without `host=` says nothing about the host (proxies
            // often send only `for=`), and `Host` applies.
            ForwardedHeader::Forwarded => forwarded(headers, "host")?.pop().flatten(),
            ForwardedHeader::XForwardedFor => x_forwarded(headers, "x-forwarded-host")?.pop(),
        }
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

/// The comma-separated values of every `name` header, in order; `None` without one, or when any
/// is not text.
fn x_forwarded(headers: &HeaderMap, name: &str) -> Option<Vec<String>> {
    let mut values = Vec::new();
    for value in headers.get_all(name) {
        let value = value.to_str().ok()?;
        values.extend(value.split(',').map(|v| v.trim().to_string()));
    }
    (!values.is_empty()).then_some(values)
}

/// The `key=` parameter of every `Forwarded` element, in order (RFC 7239: elements separated by
/// `,`, pairs by `;`, values possibly quoted — separators inside quotes do not count); `None`
/// for an element without the key.
fn forwarded(headers: &HeaderMap, key: &str) -> Option<Vec<Option<String>>> {
    let mut values = Vec::new();
    for header in headers.get_all("forwarded") {
        let header = header.to_str().ok()?;
        for element in split_unquoted(header, ',') {
            let value = split_unquoted(element, ';').into_iter().find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case(key)
                    .then(|| v.trim().trim_matches('"').to_string())
            });
            values.push(value);
        }
    }
    (!values.is_empty()).then_some(values)
}

/// `s` split at `separator` outside double quotes.
fn split_unquoted(s: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
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
#[path = "address_tests.rs"]
mod tests;
