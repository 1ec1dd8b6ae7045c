//! Where a browser request comes from: the `Host` it was sent to (against DNS rebinding) and
//! the `Origin` of the page that opened it (against cross-site WebSocket hijacking).

use axum::http::{header, HeaderMap};

/// Why a request's host or origin is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginRefusal {
    #[error("host {0:?} is not served here (ALLOWED_HOSTS)")]
    Host(String),
    #[error("requests need a Host header")]
    NoHost,
    #[error("origin {0:?} may not open WebSockets here (ALLOWED_ORIGINS)")]
    Origin(String),
}

/// The configured host and origin rules.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    /// Lowercased `host` or `host:port`; empty = any.
    hosts: Vec<String>,
    origins: Origins,
}

#[derive(Debug, Clone)]
enum Origins {
    Any,
    /// Only the request's own host.
    SameHost,
    /// Lowercased `scheme://host[:port]`.
    List(Vec<String>),
}

impl OriginPolicy {
    pub fn new(allowed_hosts: &str, allowed_origins: &str) -> Self {
        let list = |s: &str| -> Vec<String> {
            s.split(',')
                .map(|item| item.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|item| !item.is_empty())
                .collect()
        };
        let origins = match allowed_origins.trim() {
            "*" => Origins::Any,
            "" => Origins::SameHost,
            other => Origins::List(list(other)),
        };
        OriginPolicy {
            hosts: list(allowed_hosts),
            origins,
        }
    }

    /// Whether any Host is accepted (worth a warning on a public address).
    pub fn any_host(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The host the request was sent to: what a trusted proxy says (`forwarded_host`), else
    /// the `Host` header; lowercased.
    fn host(headers: &HeaderMap, forwarded_host: Option<&str>) -> Option<String> {
        forwarded_host
            .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
            .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
    }

    /// Checks `Host` against ALLOWED_HOSTS (for every request, against DNS rebinding) — and a
    /// trusted proxy's forwarded host too, never instead: a proxy that only appends
    /// `X-Forwarded-For` passes a client's own `X-Forwarded-Host` through, and a rebinding page
    /// may set one on its same-origin requests.
    pub fn check_host(
        &self,
        headers: &HeaderMap,
        forwarded_host: Option<&str>,
    ) -> Result<(), OriginRefusal> {
        if self.hosts.is_empty() {
            return Ok(());
        }
        let host = Self::host(headers, None).ok_or(OriginRefusal::NoHost)?;
        let forwarded = forwarded_host.and_then(|f| Self::host(headers, Some(f)));
        for host in std::iter::once(host).chain(forwarded) {
            if !self
                .hosts
                .iter()
                .any(|allowed| host_matches(allowed, &host))
            {
                return Err(OriginRefusal::Host(host));
            }
        }
        Ok(())
    }

    /// Checks `Host` and `Origin` (for a WebSocket, against cross-site hijacking).
    pub fn check(
        &self,
        headers: &HeaderMap,
        forwarded_host: Option<&str>,
    ) -> Result<(), OriginRefusal> {
        self.check_host(headers, forwarded_host)?;
        // Non-browser clients send no Origin; they cannot be hijacked through a page.
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or("").trim().to_ascii_lowercase();
        let allowed = match &self.origins {
            Origins::Any => origin != "null",
            Origins::List(list) => list.contains(&origin),
            Origins::SameHost => Self::host(headers, forwarded_host)
                .is_some_and(|host| same_authority(&origin, &host)),
        };
        if allowed {
            Ok(())
        } else {
            Err(OriginRefusal::Origin(origin))
        }
    }
}

/// Whether an origin (`https://chat.example`) names the host a request was sent to
/// (`chat.example`, `chat.example:443`): the same name and the same port (an origin without a
/// port has its scheme's default; a Host without one was sent to a default port, 80 or 443 —
/// which one a proxy in front terminated is not known — so it matches an origin on either, and
/// `http://chat.example:9999` is another origin).
fn same_authority(origin: &str, host: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false; // `null`, or not an origin
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    if authority.contains('@') {
        return false; // an origin has no userinfo
    }
    let (origin_name, origin_port) = split_port(authority);
    let default_port = match scheme {
        "http" | "ws" => "80",
        "https" | "wss" => "443",
        _ => return false,
    };
    let origin_port = origin_port.unwrap_or(default_port);
    let (host_name, host_port) = split_port(host);
    origin_name.trim_end_matches('.') == host_name
        && match host_port {
            Some(port) => port == origin_port,
            None => origin_port == "80" || origin_port == "443",
        }
}

/// `allowed` is `host` or `host:port`; a bare host matches any port.
fn host_matches(allowed: &str, host: &str) -> bool {
    match split_port(allowed) {
        (_, Some(_)) => allowed == host,
        (name, None) => split_port(host).0 == name,
    }
}

/// `name[:port]`, `[v6]` or `[v6]:port` into the name (without brackets) and the port.
fn split_port(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        let (name, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (name, after.strip_prefix(':'));
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => (name, Some(port)),
        _ => (host, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(header::HOST, host.parse().unwrap());
        if let Some(origin) = origin {
            map.insert(header::ORIGIN, origin.parse().unwrap());
        }
        map
    }

    #[test]
    fn by_default_an_origin_must_be_the_requests_own_host() {
        let policy = OriginPolicy::new("", "");
        let ok = |host, origin| policy.check(&headers(host, origin), None).is_ok();
        assert!(ok("chat.example:8080", None), "no Origin: not a browser");
        assert!(ok("chat.example:8080", Some("http://chat.example:8080")));
        assert!(ok("CHAT.example:8080", Some("http://chat.EXAMPLE:8080")));
        assert!(!ok("chat.example:8080", Some("http://evil.example")));
        assert!(!ok("chat.example:8080", Some("http://chat.example:9999")));
        assert!(!ok("chat.example:8080", Some("null")));
        assert!(
            ok("chat.example", Some("https://chat.example")),
            "default ports"
        );
        assert!(ok("chat.example:443", Some("https://chat.example")));
        assert!(
            !ok("chat.example:443", Some("http://chat.example")),
            "80 is not 443"
        );
        assert!(!ok("chat.example", Some("http://user@chat.example")));
        assert!(!ok("[::1]:8080", Some("http://[::2]:8080")));
        assert!(ok("[::1]:8080", Some("http://[::1]:8080")));
        // Found in review: a Host without a port matched an origin on any port.
        assert!(
            !ok("chat.example", Some("http://chat.example:9999")),
            "another port is another origin"
        );
        assert!(ok("chat.example", Some("http://chat.example")));
    }

    #[test]
    fn listed_or_any_origins() {
        let listed = OriginPolicy::new("", "https://app.example, https://other.example/");
        let ok = |p: &OriginPolicy, origin| p.check(&headers("api.example", Some(origin)), None);
        assert!(ok(&listed, "https://app.example").is_ok());
        assert!(ok(&listed, "https://other.example").is_ok());
        assert!(ok(&listed, "https://api.example").is_err(), "only the list");
        let any = OriginPolicy::new("", "*");
        assert!(ok(&any, "https://anything.example").is_ok());
        assert!(ok(&any, "null").is_err(), "null is never allowed");
    }

    #[test]
    fn hosts_are_checked_with_or_without_port() {
        let policy = OriginPolicy::new("chat.example, localhost:8080", "");
        let check = |host| policy.check(&headers(host, None), None);
        assert!(check("chat.example").is_ok());
        assert!(
            check("chat.example:443").is_ok(),
            "a bare host allows any port"
        );
        assert!(check("localhost:8080").is_ok());
        assert_eq!(
            check("localhost:9000"),
            Err(OriginRefusal::Host("localhost:9000".into()))
        );
        assert!(check("rebound.attacker.example").is_err());
        assert!(policy.check(&HeaderMap::new(), None).is_err(), "no Host");
        // A forwarded host is checked as well as Host, never instead of it: a proxy that passes
        // a client's X-Forwarded-Host through must not let a rebound Host in.
        let rebound = headers("rebound.attacker.example", None);
        assert!(policy.check(&rebound, Some("chat.example")).is_err());
        let proxied = headers("chat.example", None);
        assert!(policy.check(&proxied, Some("chat.example")).is_ok());
        assert_eq!(
            policy.check(&proxied, Some("evil.example")),
            Err(OriginRefusal::Host("evil.example".into()))
        );
    }
}
