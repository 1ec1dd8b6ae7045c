//! Resource snapshots at the edges of a measured window, and what they add up to.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::{
    resources::{self_cpu, self_rss},
    server_probe::{ServerProbe, ServerSample},
};

/// The generator's and the server's resources at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    pub at: Instant,
    pub self_cpu: Duration,
    pub self_rss: Option<u64>,
    pub server: ServerSample,
    /// Deliveries received so far (live counter).
    pub delivered: u64,
}

impl Snapshot {
    pub async fn take(probe: &ServerProbe, delivered: u64) -> Self {
        let server = probe.sample().await;
        Self {
            at: Instant::now(),
            self_cpu: self_cpu(),
            self_rss: self_rss(),
            server,
            delivered,
        }
    }
}

/// CPU and memory of both sides, side by side.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Resources {
    /// Length of the measured window.
    pub window_secs: f64,
    /// Deliveries received during the window.
    pub window_deliveries: u64,
    pub loadtest_cpu_secs: f64,
    /// Percent of one core.
    pub loadtest_cpu_percent: f64,
    pub loadtest_cpu_us_per_delivery: Option<f64>,
    pub loadtest_rss_per_connection_bytes: Option<f64>,
    /// Where server numbers come from (`/proc/<pid>`, a metrics URL, or unavailable).
    pub server_source: String,
    pub server_cpu_secs: Option<f64>,
    pub server_cpu_percent: Option<f64>,
    pub server_cpu_us_per_delivery: Option<f64>,
    pub server_rss_before_bytes: Option<u64>,
    pub server_rss_after_bytes: Option<u64>,
    pub server_rss_per_connection_bytes: Option<f64>,
}

impl Resources {
    /// CPU over `[start, end]`; memory growth from `idle` (before connecting)
    /// to `loaded` (connections up), divided by `connections`.
    pub fn compute(
        source: String,
        idle: &Snapshot,
        loaded: &Snapshot,
        start: &Snapshot,
        end: &Snapshot,
        connections: u64,
    ) -> Self {
        let window = end.at.saturating_duration_since(start.at).as_secs_f64();
        let deliveries = end.delivered.saturating_sub(start.delivered);
        let own_cpu = end.self_cpu.saturating_sub(start.self_cpu).as_secs_f64();
        let server_cpu = match (start.server.cpu_seconds, end.server.cpu_seconds) {
            (Some(a), Some(b)) => Some((b - a).max(0.0)),
            _ => None,
        };
        let per_delivery = |cpu: f64| (deliveries > 0).then(|| cpu * 1e6 / deliveries as f64);
        let percent = |cpu: f64| {
            if window > 0.0 {
                cpu / window * 100.0
            } else {
                0.0
            }
        };
        let per_conn = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) if connections > 0 => {
                Some((b as f64 - a as f64) / connections as f64)
            }
            _ => None,
        };
        Self {
            window_secs: window,
            window_deliveries: deliveries,
            loadtest_cpu_secs: own_cpu,
            loadtest_cpu_percent: percent(own_cpu),
            loadtest_cpu_us_per_delivery: per_delivery(own_cpu),
            loadtest_rss_per_connection_bytes: per_conn(idle.self_rss, loaded.self_rss),
            server_source: source,
            server_cpu_secs: server_cpu,
            server_cpu_percent: server_cpu.map(percent),
            server_cpu_us_per_delivery: server_cpu.and_then(per_delivery),
            server_rss_before_bytes: idle.server.rss_bytes,
            server_rss_after_bytes: loaded.server.rss_bytes,
            server_rss_per_connection_bytes: per_conn(
                idle.server.rss_bytes,
                loaded.server.rss_bytes,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(
        at: Instant,
        cpu_ms: u64,
        rss: u64,
        server_cpu: f64,
        server_rss: u64,
        d: u64,
    ) -> Snapshot {
        Snapshot {
            at,
            self_cpu: Duration::from_millis(cpu_ms),
            self_rss: Some(rss),
            server: ServerSample {
                cpu_seconds: Some(server_cpu),
                rss_bytes: Some(server_rss),
            },
            delivered: d,
        }
    }

    #[test]
    fn per_delivery_and_per_connection() {
        let t = Instant::now();
        let idle = snap(t, 0, 10_000, 0.0, 1_000_000, 0);
        let loaded = snap(t, 0, 110_000, 0.0, 3_000_000, 0);
        let start = snap(t, 1000, 0, 5.0, 0, 1_000);
        let end = snap(t + Duration::from_secs(10), 3000, 0, 9.0, 0, 1_001_000);
        let r = Resources::compute("x".into(), &idle, &loaded, &start, &end, 1000);
        assert_eq!(r.window_deliveries, 1_000_000);
        assert!((r.loadtest_cpu_us_per_delivery.unwrap() - 2.0).abs() < 1e-9);
        assert!((r.server_cpu_us_per_delivery.unwrap() - 4.0).abs() < 1e-9);
        assert!((r.loadtest_cpu_percent - 20.0).abs() < 1e-9);
        assert!((r.server_cpu_percent.unwrap() - 40.0).abs() < 1e-9);
        assert_eq!(r.loadtest_rss_per_connection_bytes, Some(100.0));
        assert_eq!(r.server_rss_per_connection_bytes, Some(2000.0));
    }

    #[test]
    fn missing_numbers_stay_missing() {
        let t = Instant::now();
        let mut s = snap(t, 0, 0, 0.0, 0, 0);
        s.server = ServerSample::default();
        let r = Resources::compute("none".into(), &s, &s, &s, &s, 0);
        assert_eq!(r.server_cpu_secs, None);
        assert_eq!(r.loadtest_cpu_us_per_delivery, None);
        assert_eq!(r.server_rss_per_connection_bytes, None);
    }
}
