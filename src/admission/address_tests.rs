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

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn proxies(header: ForwardedHeader) -> ClientAddress {
    ClientAddress::new(vec!["10.0.0.0/8".parse().unwrap()], header)
}

#[test]
fn only_trusted_proxies_are_believed_and_only_their_header() {
    let xff = proxies(ForwardedHeader::XForwardedFor);
    let spoof = headers(&[("x-forwarded-for", "1.2.3.4")]);
    assert_eq!(xff.resolve(peer("192.0.2.9"), &spoof), ip("192.0.2.9"));
    // The client wrote 6.6.6.6 itself; the trusted proxy 10.0.0.2 appended its client.
    let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.2")]);
    assert_eq!(xff.resolve(peer("10.0.0.1"), &chain), ip("198.51.100.7"));
    // A `Forwarded` the client sent through an X-Forwarded-For proxy is not read.
    let both = headers(&[
        ("forwarded", "for=6.6.6.6"),
        ("x-forwarded-for", "198.51.100.7"),
    ]);
    assert_eq!(xff.resolve(peer("10.0.0.1"), &both), ip("198.51.100.7"));
    let fwd = proxies(ForwardedHeader::Forwarded);
    assert_eq!(fwd.resolve(peer("10.0.0.1"), &both), ip("6.6.6.6"));
    // Without the configured header, the peer is the client.
    let none = headers(&[("forwarded", "for=6.6.6.6")]);
    assert_eq!(xff.resolve(peer("10.0.0.1"), &none), ip("10.0.0.1"));
}

#[test]
fn forwarded_is_parsed_with_quotes_ports_and_unknowns() {
    let fwd = proxies(ForwardedHeader::Forwarded);
    let quoted = headers(&[(
        "forwarded",
        r#"for=6.6.6.6, for="[2001:db8::7]:4711";proto=https;host="a;b,c""#,
    )]);
    assert_eq!(fwd.resolve(peer("10.0.0.1"), &quoted), ip("2001:db8::7"));
    assert_eq!(
        fwd.forwarded_host(peer("10.0.0.1"), &quoted).as_deref(),
        Some("a;b,c")
    );
    let unknown = headers(&[("forwarded", "for=198.51.100.1, for=unknown")]);
    assert_eq!(
        fwd.resolve(peer("10.0.0.1"), &unknown),
        ip("10.0.0.1"),
        "nothing left of an unknown hop is trusted"
    );
    let obfuscated = headers(&[("forwarded", "for=_hidden, for=10.0.0.5")]);
    assert_eq!(fwd.resolve(peer("10.0.0.1"), &obfuscated), ip("10.0.0.5"));
}

#[test]
fn forwarded_host_is_the_proxys_own_value_and_only_from_proxies() {
    let xff = proxies(ForwardedHeader::XForwardedFor);
    let hosts = headers(&[("x-forwarded-host", "evil.example, chat.example")]);
    assert_eq!(
        xff.forwarded_host(peer("10.0.0.1"), &hosts).as_deref(),
        Some("chat.example")
    );
    assert_eq!(xff.forwarded_host(peer("192.0.2.1"), &hosts), None);
    // Found in review: a proxy sending only `for=` made the host "unknown" (403 everywhere).
    let fwd = proxies(ForwardedHeader::Forwarded);
    let only_for = headers(&[("forwarded", "for=192.0.2.1")]);
    assert_eq!(fwd.forwarded_host(peer("10.0.0.1"), &only_for), None);
    let with_host = headers(&[("forwarded", "for=192.0.2.1;host=chat.example")]);
    assert_eq!(
        fwd.forwarded_host(peer("10.0.0.1"), &with_host).as_deref(),
        Some("chat.example")
    );
}

#[test]
fn ipv6_hosts_count_by_their_64() {
    let a = ip("2001:db8:1:2:aaaa::1");
    let b = ip("2001:db8:1:2:ffff::9");
    assert_eq!(quota_address(a), quota_address(b));
    assert_ne!(quota_address(a), quota_address(ip("2001:db8:1:3::1")));
    assert_eq!(quota_address(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
}
