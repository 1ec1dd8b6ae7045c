//! Where the server listens, what one HTTP client may send, take and ask for, and how it stops.

use std::net::IpAddr;
use std::time::Duration;

use clap::Args;

use super::{at_least, at_most, positive_seconds, seconds, ConfigError, MAX_SECONDS};

/// hyper cannot buffer less than this; a smaller header cap would be silently raised.
const MIN_HEADER_BYTES: usize = 8192;

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Network")]
pub struct NetConfig {
    /// HTTP port (0 picks a free port and logs it).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Address to listen on.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0")]
    pub bind_addr: IpAddr,

    /// Serve `/metrics` on this port instead of the main one (0 = same port).
    #[arg(long, env = "METRICS_PORT", default_value_t = 0)]
    pub metrics_port: u16,

    /// Address for METRICS_PORT (default: BIND_ADDR). In production use a loopback or private
    /// address here, so the unauthenticated metrics never face the internet.
    #[arg(long, env = "METRICS_BIND_ADDR")]
    pub metrics_bind_addr: Option<IpAddr>,

    /// Origins allowed to call the read-only REST API from other sites' pages (`*` for any, a
    /// comma-separated list, or empty: same-origin only, as the embedded page needs).
    #[arg(long, env = "CORS_ALLOW_ORIGIN", default_value = "")]
    pub cors_allow_origin: String,

    /// Largest HTTP request head (request line and headers) a client may send; a larger one is
    /// answered with 431 and the connection closed. This is also all hyper buffers per request.
    #[arg(long, env = "MAX_REQUEST_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_request_header_bytes: usize,

    /// Seconds a client may take to send a request head, and an idle keep-alive connection may
    /// wait for its next request, before the connection is closed.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECONDS", default_value_t = 30.0)]
    pub header_read_timeout_seconds: f64,

    /// Seconds a response may take to reach the client once its socket stops taking data; a
    /// client that does not read is then dropped and its response freed.
    #[arg(long, env = "HTTP_WRITE_TIMEOUT_SECONDS", default_value_t = 30.0)]
    pub http_write_timeout_seconds: f64,

    /// REST requests (`/api/...`) one client address may make per second, sustained (0 = no
    /// limit); over it, HTTP 429 with Retry-After. Health checks and `/metrics` are exempt.
    #[arg(long, env = "REST_REQUESTS_PER_IP_PER_SECOND", default_value_t = 20)]
    pub rest_requests_per_ip_per_second: u32,

    /// REST requests one client address may make at once before the per-second rate applies
    /// (0 = no limit).
    #[arg(long, env = "REST_REQUEST_BURST", default_value_t = 100)]
    pub rest_request_burst: u32,

    /// Seconds between SIGTERM/SIGINT and the start of draining: `/health/ready` answers 503
    /// while everything else is served as usual, so load balancers stop sending new clients first.
    #[arg(long, env = "SHUTDOWN_DELAY_SECONDS", default_value_t = 0.0)]
    pub shutdown_delay_seconds: f64,

    /// Seconds to drain clients and flush history on SIGTERM/SIGINT before exiting anyway.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 10.0)]
    pub shutdown_grace_seconds: f64,
}

impl NetConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive_seconds("SHUTDOWN_GRACE_SECONDS", self.shutdown_grace_seconds)?;
        positive_seconds(
            "HEADER_READ_TIMEOUT_SECONDS",
            self.header_read_timeout_seconds,
        )?;
        positive_seconds(
            "HTTP_WRITE_TIMEOUT_SECONDS",
            self.http_write_timeout_seconds,
        )?;
        if !(self.shutdown_delay_seconds.is_finite()
            && (0.0..=MAX_SECONDS as f64).contains(&self.shutdown_delay_seconds))
        {
            return Err(ConfigError {
                setting: "SHUTDOWN_DELAY_SECONDS",
                reason: format!(
                    "must be a number of seconds from 0 to {MAX_SECONDS}, got {}",
                    self.shutdown_delay_seconds
                ),
            });
        }
        at_least(
            "MAX_REQUEST_HEADER_BYTES",
            self.max_request_header_bytes,
            MIN_HEADER_BYTES,
        )?;
        at_most(
            "MAX_REQUEST_HEADER_BYTES",
            self.max_request_header_bytes as u64,
            1024 * 1024,
        )?;
        if self.metrics_port == 0 && self.metrics_bind_addr.is_some_and(|a| a != self.bind_addr) {
            return Err(ConfigError {
                setting: "METRICS_BIND_ADDR",
                reason: "needs METRICS_PORT: with METRICS_PORT=0 metrics share the main listener"
                    .into(),
            });
        }
        Ok(())
    }

    pub fn shutdown_grace(&self) -> Duration {
        seconds(self.shutdown_grace_seconds)
    }

    pub fn shutdown_delay(&self) -> Duration {
        seconds(self.shutdown_delay_seconds)
    }

    pub fn header_read_timeout(&self) -> Duration {
        seconds(self.header_read_timeout_seconds)
    }

    pub fn http_write_timeout(&self) -> Duration {
        seconds(self.http_write_timeout_seconds)
    }

    /// Where `/metrics` gets a listener of its own, if it does.
    pub fn metrics_listen_addr(&self) -> Option<(IpAddr, u16)> {
        (self.metrics_port != 0).then(|| {
            (
                self.metrics_bind_addr.unwrap_or(self.bind_addr),
                self.metrics_port,
            )
        })
    }

    /// The REST rate limit as (per second, burst), or `None` when either is 0.
    pub fn rest_rate(&self) -> Option<(u32, u32)> {
        (self.rest_requests_per_ip_per_second > 0 && self.rest_request_burst > 0).then_some((
            self.rest_requests_per_ip_per_second,
            self.rest_request_burst,
        ))
    }
}
