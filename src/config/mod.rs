//! Server configuration: every setting is a CLI flag and an environment variable, grouped by the
//! component it configures (each group is one file here, flattened into [`Config`]).
//!
//! The original Go server's settings keep its names (`PORT`, `DB_PATH`, `MAX_ROOMS`,
//! `MAX_HISTORY`); every limit we added is here too, so nothing is hard-coded. `--help` documents
//! each field, grouped under a heading per concern. Units are in the names (`_seconds`, `_bytes`,
//! `_ms`). Each component is handed its own group, never the whole configuration.

mod admission;
mod auth;
mod connection;
mod history;
mod limits;
mod net;
mod rate;
mod rooms;
mod store;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use admission::{AdmissionConfig, ForwardedHeader};
pub use auth::{AuthConfig, PublicKeyAlgorithm};
pub use connection::ConnectionConfig;
pub use history::HistoryConfig;
pub use limits::LimitsConfig;
pub use net::NetConfig;
pub use rate::{RateLimitConfig, Switch};
pub use rooms::RoomsConfig;
pub use store::StoreConfig;

/// A configuration value that parses but cannot work; names the offending setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting}: {reason}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub reason: String,
}

/// Upper bound for timers and intervals (a year): larger values are typos, and would overflow
/// deadline arithmetic.
pub(crate) const MAX_SECONDS: u64 = 365 * 24 * 3600;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "chatterbox",
    version,
    about = "A real-time WebSocket chat server"
)]
pub struct Config {
    #[command(flatten)]
    pub net: NetConfig,
    #[command(flatten)]
    pub store: StoreConfig,
    #[command(flatten)]
    pub limits: LimitsConfig,
    #[command(flatten)]
    pub history: HistoryConfig,
    #[command(flatten)]
    pub connection: ConnectionConfig,
    #[command(flatten)]
    pub rooms: RoomsConfig,
    #[command(flatten)]
    pub admission: AdmissionConfig,
    #[command(flatten)]
    pub auth: AuthConfig,
    #[command(flatten)]
    pub rate: RateLimitConfig,
    /// Without a command, the server runs.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What the binary can do besides serving.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Mint a signed token (for operators, scripts and tests) and print it alone on stdout:
    /// HS256 from AUTH_SECRET, or RS256/ES256 from --private-key.
    Token(TokenArgs),
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The user the token names (its `sub`).
    #[arg(long)]
    pub user: String,
    /// Rooms the token may join: names or patterns such as `team-*`, comma-separated (default:
    /// any room).
    #[arg(long, value_delimiter = ',')]
    pub rooms: Option<Vec<String>>,
    /// How long the token is valid, e.g. `90s`, `1h`, `7d`.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// PEM private key to sign with instead of AUTH_SECRET (algorithm AUTH_PUBLIC_KEY_ALGORITHM).
    #[arg(long)]
    pub private_key: Option<std::path::PathBuf>,
    /// `aud` to put in the token (default: AUTH_AUDIENCE, if set).
    #[arg(long)]
    pub audience: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        // The defaults live once, in the clap attributes.
        Config::parse_from(["chatterbox"])
    }
}

impl Config {
    /// Checks what clap's per-field parsing cannot: relations and ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.net.validate()?;
        self.store.validate()?;
        self.limits.validate()?;
        self.history.validate()?;
        self.connection.validate()?;
        self.rooms.validate()?;
        self.admission.validate()?;
        self.auth.validate()?;
        self.rate.validate()?;
        Ok(())
    }
}

/// `value` seconds as a duration, checked to be above 0 and at most [`MAX_SECONDS`].
pub(crate) fn positive_seconds(setting: &'static str, value: f64) -> Result<(), ConfigError> {
    if value.is_finite() && value > 0.0 && value <= MAX_SECONDS as f64 {
        Ok(())
    } else {
        Err(ConfigError {
            setting,
            reason: format!(
                "must be a number of seconds above 0 and at most {MAX_SECONDS}, got {value}"
            ),
        })
    }
}

pub(crate) fn at_most(setting: &'static str, value: u64, max: u64) -> Result<(), ConfigError> {
    if value <= max {
        Ok(())
    } else {
        Err(ConfigError {
            setting,
            reason: format!("must be at most {max}, got {value}"),
        })
    }
}

pub(crate) fn at_least(setting: &'static str, value: usize, min: usize) -> Result<(), ConfigError> {
    if value >= min {
        Ok(())
    } else {
        Err(ConfigError {
            setting,
            reason: format!("must be at least {min}, got {value}"),
        })
    }
}

/// Seconds from a validated setting.
pub(crate) fn seconds(value: f64) -> Duration {
    Duration::from_secs_f64(value)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn defaults_validate() {
        let config = Config::default();
        assert_eq!(config.net.port, 8080);
        assert_eq!(config.store.db_path, PathBuf::from("chatterbox.db"));
        assert_eq!(config.history.max_history, 50);
        config.validate().unwrap();
        assert!(config.rooms.resolved_shards().is_power_of_two());
    }

    /// With the defaults, one client address may create at most 1% of the room slots, so it
    /// takes a hundred addresses (each under its own connection limits) to fill them.
    #[test]
    fn one_address_cannot_take_every_room_by_default() {
        let limits = Config::default().limits;
        assert!(limits.max_rooms_created_per_ip > 0);
        assert!(limits.max_rooms_created_per_ip * 100 <= limits.max_rooms);
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = Config::try_parse_from(["chatterbox", "--port", "99999"]).unwrap_err();
        assert!(err.to_string().contains("--port"), "{err}");

        let mut config = Config::default();
        config.rooms.room_shards = 3;
        assert_eq!(config.validate().unwrap_err().setting, "ROOM_SHARDS");

        let mut config = Config::default();
        config.history.history_ring_size = 10;
        assert_eq!(config.validate().unwrap_err().setting, "HISTORY_RING_SIZE");

        let mut config = Config::default();
        config.history.history_max_per_room = u64::MAX;
        assert_eq!(
            config.validate().unwrap_err().setting,
            "HISTORY_MAX_PER_ROOM"
        );

        let mut config = Config::default();
        config.net.metrics_bind_addr = Some("127.0.0.1".parse().unwrap());
        assert_eq!(config.validate().unwrap_err().setting, "METRICS_BIND_ADDR");

        let mut config = Config::default();
        config.net.max_request_header_bytes = 4096;
        assert_eq!(
            config.validate().unwrap_err().setting,
            "MAX_REQUEST_HEADER_BYTES"
        );

        let mut config = Config::default();
        config.connection.ping_interval_seconds = 1e20;
        assert_eq!(
            config.validate().unwrap_err().setting,
            "PING_INTERVAL_SECONDS"
        );
    }
}
