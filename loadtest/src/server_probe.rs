//! Samples the server's CPU time and resident memory, so server cost per
//! delivery and per connection can be reported next to the generator's own.
//!
//! With `--server-pid` the numbers come straight from `/proc/<pid>` (exact and
//! free). Otherwise the server's Prometheus endpoint is scraped for
//! `process_cpu_seconds_total` and `process_resident_memory_bytes` (the
//! `chatterbox_process_*` names of older servers are accepted too). The scrape is a hand-written HTTP/1.1 GET: pulling an HTTP
//! client stack into a load generator for two numbers is not worth the build time.

use std::time::Duration;

use serde::Serialize;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::resources::{proc_cpu_seconds, proc_rss_bytes};

/// One reading of the server's resources; fields are `None` when unavailable.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct ServerSample {
    pub cpu_seconds: Option<f64>,
    pub rss_bytes: Option<u64>,
}

/// Where server samples come from.
#[derive(Debug, Clone)]
pub enum ServerProbe {
    Pid(u32),
    Metrics { authority: String, path: String },
    None,
}

impl ServerProbe {
    /// Prefers `pid`; otherwise derives `http://host:port/metrics` from the
    /// WebSocket URL unless `metrics_url` overrides it.
    pub fn new(pid: Option<u32>, ws_url: &str, metrics_url: Option<&str>) -> Self {
        if let Some(pid) = pid {
            return Self::Pid(pid);
        }
        let url = match metrics_url {
            Some(u) => u.to_string(),
            None => match authority_of(ws_url) {
                Some(a) => format!("http://{a}/metrics"),
                None => return Self::None,
            },
        };
        match url
            .strip_prefix("http://")
            .and_then(|rest| rest.split_once('/'))
        {
            Some((authority, path)) => Self::Metrics {
                authority: authority.to_string(),
                path: format!("/{path}"),
            },
            None => Self::None,
        }
    }

    /// Where the numbers come from, for the report.
    pub fn describe(&self) -> String {
        match self {
            Self::Pid(pid) => format!("/proc/{pid}"),
            // Prometheus counters are integers in the `metrics` crate: the
            // scraped CPU time moves in whole seconds.
            Self::Metrics { authority, path } => format!(
                "http://{authority}{path} (CPU counter may move in whole seconds; \
                 --server-pid is exact)"
            ),
            Self::None => "unavailable".into(),
        }
    }

    /// Takes one sample; never fails, missing numbers are `None`.
    pub async fn sample(&self) -> ServerSample {
        match self {
            Self::Pid(pid) => {
                let pid = pid.to_string();
                ServerSample {
                    cpu_seconds: proc_cpu_seconds(&pid),
                    rss_bytes: proc_rss_bytes(&pid),
                }
            }
            Self::Metrics { authority, path } => {
                let fetch = http_get(authority, path);
                match tokio::time::timeout(Duration::from_secs(3), fetch).await {
                    Ok(Ok(body)) => parse_metrics(&body),
                    _ => ServerSample::default(),
                }
            }
            Self::None => ServerSample::default(),
        }
    }
}

/// `host:port` of a `ws://host:port/path` URL.
fn authority_of(ws_url: &str) -> Option<&str> {
    let rest = ws_url
        .strip_prefix("ws://")
        .or_else(|| ws_url.strip_prefix("http://"))?;
    Some(rest.split(['/', '?']).next().unwrap_or(rest))
}

async fn http_get(authority: &str, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(authority).await?;
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nAccept: text/plain\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(16 * 1024);
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(std::io::Error::other("metrics endpoint did not answer 200"));
    }
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    Ok(if chunked {
        dechunk(body)
    } else {
        body.to_string()
    })
}

/// Undoes HTTP/1.1 chunked transfer encoding (enough for a metrics page).
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16);
        match size {
            Ok(0) | Err(_) => break,
            Ok(n) if n <= rest.len() => {
                out.push_str(&rest[..n]);
                body = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
            }
            Ok(_) => break,
        }
    }
    out
}

/// Picks the process metrics out of a Prometheus text exposition.
pub fn parse_metrics(body: &str) -> ServerSample {
    let find = |names: &[&str]| {
        names.iter().find_map(|name| {
            body.lines().find_map(|line| {
                let rest = line.strip_prefix(name)?;
                // Exact name: followed by labels or whitespace, not a longer name.
                let rest = match rest.as_bytes().first()? {
                    b'{' => &rest[rest.find('}')? + 1..],
                    b' ' | b'\t' => rest,
                    _ => return None,
                };
                rest.split_whitespace().next()?.parse::<f64>().ok()
            })
        })
    };
    ServerSample {
        cpu_seconds: find(&[
            "chatterbox_process_cpu_seconds_total",
            "process_cpu_seconds_total",
        ]),
        rss_bytes: find(&[
            "chatterbox_process_resident_memory_bytes",
            "process_resident_memory_bytes",
        ])
        .map(|b| b as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_text() {
        let body = "# HELP chatterbox_process_cpu_seconds_total CPU\n\
            # TYPE chatterbox_process_cpu_seconds_total counter\n\
            chatterbox_process_cpu_seconds_total_extra 99\n\
            chatterbox_process_cpu_seconds_total 12.5\n\
            chatterbox_process_resident_memory_bytes{pid=\"1\"} 1.048576e6\n";
        assert_eq!(
            parse_metrics(body),
            ServerSample {
                cpu_seconds: Some(12.5),
                rss_bytes: Some(1_048_576)
            }
        );
        let unprefixed = "process_cpu_seconds_total 3\nprocess_resident_memory_bytes 4096\n";
        assert_eq!(parse_metrics(unprefixed).rss_bytes, Some(4096));
        assert_eq!(parse_metrics("nothing 1\n"), ServerSample::default());
    }

    #[test]
    fn derives_the_metrics_url() {
        match ServerProbe::new(None, "ws://127.0.0.1:8080/ws", None) {
            ServerProbe::Metrics { authority, path } => {
                assert_eq!(
                    (authority.as_str(), path.as_str()),
                    ("127.0.0.1:8080", "/metrics")
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ServerProbe::new(Some(7), "ws://x/ws", None),
            ServerProbe::Pid(7)
        ));
        assert_eq!(
            ServerProbe::new(None, "ws://h:1/ws", Some("http://m:9/x/metrics")).describe(),
            "http://m:9/x/metrics (CPU counter may move in whole seconds; --server-pid is exact)"
        );
    }

    #[test]
    fn dechunks() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
    }
}
