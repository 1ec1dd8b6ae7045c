//! Where the server listens and how it stops.

use std::net::IpAddr;
use std::time::Duration;

use clap::Args;

use super::{positive_seconds, seconds, ConfigError};

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

    /// Origins allowed to call the read-only REST API from a browser (`*` for any, comma-separated
    /// list, or empty for none).
    #[arg(long, env = "CORS_ALLOW_ORIGIN", default_value = "*")]
    pub cors_allow_origin: String,

    /// Seconds to drain clients and flush history on SIGTERM/SIGINT before exiting anyway.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 10.0)]
    pub shutdown_grace_seconds: f64,
}

impl NetConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive_seconds("SHUTDOWN_GRACE_SECONDS", self.shutdown_grace_seconds)
    }

    pub fn shutdown_grace(&self) -> Duration {
        seconds(self.shutdown_grace_seconds)
    }
}
