//! Who may connect from where, and how many: origins, hosts, proxies, connection limits.

use std::time::Duration;

use clap::Args;
use ipnet::IpNet;

use super::{at_most, ConfigError};

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Admission")]
pub struct AdmissionConfig {
    /// Browser origins allowed to open a WebSocket (`*` for any, or a comma-separated list such
    /// as `https://chat.example.com`). Empty: an `Origin` must be the request's own host (the
    /// page this server serves). `Origin: null` is always refused; requests without `Origin`
    /// (wscat, bots) are allowed.
    #[arg(long, env = "ALLOWED_ORIGINS", default_value = "")]
    pub allowed_origins: String,

    /// Host names this server answers to (comma-separated, a port optional: `chat.example.com`,
    /// `localhost:8080`); others get 403, against DNS rebinding. Empty: any (logged loudly at
    /// start when listening beyond loopback).
    #[arg(long, env = "ALLOWED_HOSTS", default_value = "")]
    pub allowed_hosts: String,

    /// Proxies (comma-separated CIDRs, e.g. `10.0.0.0/8,127.0.0.1/32`) whose `Forwarded` /
    /// `X-Forwarded-For` header gives the client's address; nobody else's is believed.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', num_args = 0..)]
    pub trusted_proxies: Vec<IpNet>,

    /// WebSocket connections in total (0 = no limit). Unset: what the process's descriptor limit
    /// leaves after a reserve for everything else.
    #[arg(long, env = "MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// WebSocket connections from one client address (IPv4, or an IPv6 /64); 0 = no limit.
    #[arg(long, env = "MAX_CONNECTIONS_PER_IP", default_value_t = 100)]
    pub max_connections_per_ip: usize,

    /// New WebSocket connections per second from one client address (bursts of twice that);
    /// 0 = no limit.
    #[arg(long, env = "MAX_CONNECTS_PER_IP_PER_SECOND", default_value_t = 20)]
    pub max_connects_per_ip_per_second: u32,

    /// New WebSocket connections per second in total, the server's accept budget (bursts of
    /// twice that); 0 = no limit.
    #[arg(long, env = "MAX_CONNECTS_PER_SECOND", default_value_t = 0)]
    pub max_connects_per_second: u32,

    /// Share (percent) of MAX_CONNECTIONS and of MAX_CONNECTS_PER_SECOND kept for clients that
    /// resume a session (a valid resume ticket in the upgrade URL), so a reconnect storm after a
    /// restart never locks out the people who were chatting.
    #[arg(long, env = "RESUME_RESERVE_PERCENT", default_value_t = 10)]
    pub resume_reserve_percent: u8,

    /// How long a resume ticket stays valid after the server issued it.
    #[arg(long, env = "RESUME_TICKET_TTL_SECONDS", default_value_t = 86_400)]
    pub resume_ticket_ttl_seconds: u64,
}

impl AdmissionConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        at_most(
            "RESUME_RESERVE_PERCENT",
            u64::from(self.resume_reserve_percent),
            90,
        )?;
        at_most(
            "RESUME_TICKET_TTL_SECONDS",
            self.resume_ticket_ttl_seconds,
            super::MAX_SECONDS,
        )?;
        Ok(())
    }

    pub fn resume_ticket_ttl(&self) -> Duration {
        Duration::from_secs(self.resume_ticket_ttl_seconds)
    }
}
