//! Who may connect from where, and how many: origins, hosts, proxies, connection limits.

use std::time::Duration;

use clap::{Args, ValueEnum};
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
    /// `localhost:8080`); requests for others get 403, against DNS rebinding. Empty: on a
    /// loopback BIND_ADDR, `localhost`, `127.0.0.1` and `[::1]`; otherwise any (with a warning at
    /// start).
    #[arg(long, env = "ALLOWED_HOSTS", default_value = "")]
    pub allowed_hosts: String,

    /// Proxies (comma-separated CIDRs, e.g. `10.0.0.0/8,127.0.0.1/32`) whose FORWARDED_HEADER
    /// gives the client's address; nobody else's is believed.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', num_args = 0..)]
    pub trusted_proxies: Vec<IpNet>,

    /// The one header the trusted proxies write the client's address into. Only that header is
    /// read: a client could have sent the other one itself, and a proxy passes it on.
    #[arg(
        long,
        env = "FORWARDED_HEADER",
        value_enum,
        default_value = "x-forwarded-for"
    )]
    pub forwarded_header: ForwardedHeader,

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

    /// New connections per second from one client address that resume with a ticket (bursts of
    /// twice that): looser than MAX_CONNECTS_PER_IP_PER_SECOND, so a NAT full of people coming
    /// back after a restart gets in, but still bounded; 0 = no limit.
    #[arg(long, env = "RESUME_CONNECTS_PER_IP_PER_SECOND", default_value_t = 100)]
    pub resume_connects_per_ip_per_second: u32,

    /// How long a connection must have lasted before the ticket it was given counts: a ticket
    /// proves its holder was chatting, not that it asked.
    #[arg(long, env = "RESUME_TICKET_MIN_AGE_SECONDS", default_value_t = 10)]
    pub resume_ticket_min_age_seconds: u64,

    /// How long a resume ticket stays valid after the server issued it.
    #[arg(long, env = "RESUME_TICKET_TTL_SECONDS", default_value_t = 86_400)]
    pub resume_ticket_ttl_seconds: u64,
}

/// Where trusted proxies put the client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, …` (nginx's `$proxy_add_x_forwarded_for`); with it,
    /// `X-Forwarded-Host` gives the host the client asked for.
    #[value(name = "x-forwarded-for")]
    XForwardedFor,
    /// `Forwarded: for=client;host=…, for=proxy1` (RFC 7239).
    #[value(name = "forwarded")]
    Forwarded,
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
        at_most(
            "RESUME_TICKET_MIN_AGE_SECONDS",
            self.resume_ticket_min_age_seconds,
            self.resume_ticket_ttl_seconds,
        )?;
        Ok(())
    }

    pub fn resume_ticket_ttl(&self) -> Duration {
        Duration::from_secs(self.resume_ticket_ttl_seconds)
    }

    pub fn resume_ticket_min_age(&self) -> Duration {
        Duration::from_secs(self.resume_ticket_min_age_seconds)
    }
}
