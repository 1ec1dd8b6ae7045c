//! Server configuration: every setting is a CLI flag and an environment variable.
//!
//! The four settings of the original Go server keep its names and defaults (`PORT`, `DB_PATH`,
//! `MAX_ROOMS`, `MAX_HISTORY`); every limit we added is here too, so nothing is hard-coded.
//! `--help` documents each field. Units are in the names (`_seconds`, `_bytes`, `_ms`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// A configuration value that parses but cannot work; names the offending setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting}: {reason}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub reason: String,
}

/// Upper bound for timers and intervals (a year): larger values are typos, and would overflow
/// deadline arithmetic.
const MAX_SECONDS: u64 = 365 * 24 * 3600;
/// Upper bound for the history age limit (a thousand years), so it fits in milliseconds as i64.
const MAX_AGE_SECONDS: u64 = 1000 * MAX_SECONDS;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "chatterbox",
    version,
    about = "A real-time WebSocket chat server"
)]
pub struct Config {
    /// HTTP port (0 picks a free port and logs it).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Address to listen on.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0")]
    pub bind_addr: IpAddr,

    /// SQLite database file for message history (created if missing).
    #[arg(long, env = "DB_PATH", default_value = "chatterbox.db")]
    pub db_path: PathBuf,

    /// Store URL; overrides DB_PATH. The scheme picks the backend (`sqlite:`).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Maximum number of rooms that exist at once; a join that would create one more is refused.
    #[arg(long, env = "MAX_ROOMS", default_value_t = 100)]
    pub max_rooms: usize,

    /// Chat messages sent to a client when it joins a room.
    #[arg(long, env = "MAX_HISTORY", default_value_t = 50)]
    pub max_history: usize,

    /// Rooms one connection may be in at once.
    #[arg(long, env = "MAX_ROOMS_PER_CONNECTION", default_value_t = 32)]
    pub max_rooms_per_connection: usize,

    /// Longest user name, in characters.
    #[arg(long, env = "MAX_USER_NAME_CHARS", default_value_t = 32)]
    pub max_user_name_chars: usize,

    /// Longest room name, in characters.
    #[arg(long, env = "MAX_ROOM_NAME_CHARS", default_value_t = 64)]
    pub max_room_name_chars: usize,

    /// Longest chat text, in characters.
    #[arg(long, env = "MAX_TEXT_CHARS", default_value_t = 4000)]
    pub max_text_chars: usize,

    /// Largest WebSocket message a client may send; larger ones close the connection with 1009.
    #[arg(long, env = "MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,

    /// Shards of the room registry; 0 picks the next power of two ≥ 4 × CPU cores.
    #[arg(long, env = "ROOM_SHARDS", default_value_t = 0)]
    pub room_shards: usize,

    /// Frames buffered per room for subscribers that fall behind; a subscriber further behind gets a
    /// `gap` frame instead of the frames it missed.
    #[arg(long, env = "ROOM_CHANNEL_CAPACITY", default_value_t = 1024)]
    pub room_channel_capacity: usize,

    /// Most frames written to a socket in one flush.
    #[arg(long, env = "MAX_BATCH_FRAMES", default_value_t = 256)]
    pub max_batch_frames: usize,

    /// Seconds between server pings (one clock for all connections); a peer silent for two
    /// intervals is dropped at the next tick, so within two to three intervals.
    #[arg(long, env = "PING_INTERVAL_SECONDS", default_value_t = 30.0)]
    pub ping_interval_seconds: f64,

    /// Seconds a socket write may block before the client is dropped as too slow.
    #[arg(long, env = "SEND_TIMEOUT_SECONDS", default_value_t = 10.0)]
    pub send_timeout_seconds: f64,

    /// Per-connection WebSocket read buffer, allocated for every connection (tungstenite's default
    /// is 128 KiB), and the most read from the socket at once. Client frames are small; a larger
    /// one is read in several chunks of this size. 256 B instead of 1 KiB saves about 0.8 KiB per
    /// idle connection; raise it if clients often send long texts.
    #[arg(long, env = "WS_READ_BUFFER_BYTES", default_value_t = 256)]
    pub ws_read_buffer_bytes: usize,

    /// Bytes of frames queued on one connection before they are written out mid-batch; every
    /// batch is written at its end anyway. Frames are queued by reference, not copied.
    #[arg(long, env = "WS_WRITE_BUFFER_BYTES", default_value_t = 64 * 1024)]
    pub ws_write_buffer_bytes: usize,

    /// Most messages the history writer puts in one transaction. Batches are only this large
    /// under load; each commit costs about as much as a few hundred rows, so large batches are
    /// what keep the store ahead of a busy server.
    #[arg(long, env = "HISTORY_BATCH_SIZE", default_value_t = 4096)]
    pub history_batch_size: usize,

    /// Longest a message waits in the history writer before its batch is written.
    #[arg(long, env = "HISTORY_FLUSH_INTERVAL_MS", default_value_t = 10)]
    pub history_flush_interval_ms: u64,

    /// Messages queued for the history writer before publishers wait (backpressure, never loss).
    #[arg(long, env = "HISTORY_QUEUE_CAPACITY", default_value_t = 65_536)]
    pub history_queue_capacity: usize,

    /// Recent messages kept in memory per room, so joins and short resumes never touch the disk.
    #[arg(long, env = "HISTORY_RING_SIZE", default_value_t = 256)]
    pub history_ring_size: usize,

    /// Most messages a resuming client (`join` with `since`) gets back; a larger gap is answered
    /// with the latest MAX_HISTORY and `"recovered": false`.
    #[arg(long, env = "RESUME_MAX_MESSAGES", default_value_t = 1000)]
    pub resume_max_messages: usize,

    /// How long a history write waits for a SQLite lock held by another process before it fails
    /// and is retried.
    #[arg(long, env = "SQLITE_BUSY_TIMEOUT_MS", default_value_t = 5000)]
    pub sqlite_busy_timeout_ms: u64,

    /// Keep at most this many messages per room in the store (0 = no limit).
    #[arg(long, env = "HISTORY_MAX_PER_ROOM", default_value_t = 0)]
    pub history_max_per_room: u64,

    /// Delete stored messages older than this many seconds (0 = keep forever).
    #[arg(long, env = "HISTORY_MAX_AGE_SECONDS", default_value_t = 0)]
    pub history_max_age_seconds: u64,

    /// Seconds between retention passes.
    #[arg(long, env = "RETENTION_INTERVAL_SECONDS", default_value_t = 60)]
    pub retention_interval_seconds: u64,

    /// Most messages one `GET /api/rooms/{name}/messages` returns.
    #[arg(long, env = "MAX_PAGE_SIZE", default_value_t = 500)]
    pub max_page_size: usize,

    /// Origins allowed to call the read-only REST API from a browser (`*` for any, comma-separated
    /// list, or empty for none).
    #[arg(long, env = "CORS_ALLOW_ORIGIN", default_value = "*")]
    pub cors_allow_origin: String,

    /// Serve `/metrics` on this port instead of the main one (0 = same port).
    #[arg(long, env = "METRICS_PORT", default_value_t = 0)]
    pub metrics_port: u16,

    /// Seconds to drain clients and flush history on SIGTERM/SIGINT before exiting anyway.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 10.0)]
    pub shutdown_grace_seconds: f64,
}

impl Default for Config {
    fn default() -> Self {
        // The defaults live once, in the clap attributes above.
        Config::parse_from(["chatterbox"])
    }
}

impl Config {
    /// Checks what clap's per-field parsing cannot: relations and ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn positive(setting: &'static str, value: f64) -> Result<(), ConfigError> {
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
        fn at_most(setting: &'static str, value: u64, max: u64) -> Result<(), ConfigError> {
            if value <= max {
                Ok(())
            } else {
                Err(ConfigError {
                    setting,
                    reason: format!("must be at most {max}, got {value}"),
                })
            }
        }
        fn at_least(setting: &'static str, value: usize, min: usize) -> Result<(), ConfigError> {
            if value >= min {
                Ok(())
            } else {
                Err(ConfigError {
                    setting,
                    reason: format!("must be at least {min}, got {value}"),
                })
            }
        }
        positive("PING_INTERVAL_SECONDS", self.ping_interval_seconds)?;
        positive("SEND_TIMEOUT_SECONDS", self.send_timeout_seconds)?;
        positive("SHUTDOWN_GRACE_SECONDS", self.shutdown_grace_seconds)?;
        at_most(
            "HISTORY_MAX_PER_ROOM",
            self.history_max_per_room,
            i64::MAX as u64,
        )?;
        at_most(
            "HISTORY_MAX_AGE_SECONDS",
            self.history_max_age_seconds,
            MAX_AGE_SECONDS,
        )?;
        at_most(
            "RETENTION_INTERVAL_SECONDS",
            self.retention_interval_seconds,
            MAX_SECONDS,
        )?;
        at_most(
            "HISTORY_FLUSH_INTERVAL_MS",
            self.history_flush_interval_ms,
            MAX_SECONDS * 1000,
        )?;
        at_least("MAX_ROOMS", self.max_rooms, 1)?;
        at_least("MAX_ROOMS_PER_CONNECTION", self.max_rooms_per_connection, 1)?;
        at_least("MAX_USER_NAME_CHARS", self.max_user_name_chars, 1)?;
        at_least("MAX_ROOM_NAME_CHARS", self.max_room_name_chars, 1)?;
        at_least("MAX_TEXT_CHARS", self.max_text_chars, 1)?;
        at_least("MAX_FRAME_BYTES", self.max_frame_bytes, 256)?;
        at_least("ROOM_CHANNEL_CAPACITY", self.room_channel_capacity, 1)?;
        at_least("MAX_BATCH_FRAMES", self.max_batch_frames, 1)?;
        at_least("WS_READ_BUFFER_BYTES", self.ws_read_buffer_bytes, 256)?;
        at_least("HISTORY_BATCH_SIZE", self.history_batch_size, 1)?;
        at_least("HISTORY_QUEUE_CAPACITY", self.history_queue_capacity, 1)?;
        at_least(
            "HISTORY_RING_SIZE",
            self.history_ring_size,
            self.max_history,
        )?;
        at_least("MAX_PAGE_SIZE", self.max_page_size, 1)?;
        at_least(
            "RETENTION_INTERVAL_SECONDS",
            self.retention_interval_seconds as usize,
            1,
        )?;
        if self.room_shards != 0 && !self.room_shards.is_power_of_two() {
            return Err(ConfigError {
                setting: "ROOM_SHARDS",
                reason: format!("must be 0 or a power of two, got {}", self.room_shards),
            });
        }
        if self.history_flush_interval_ms == 0 {
            return Err(ConfigError {
                setting: "HISTORY_FLUSH_INTERVAL_MS",
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// The store URL: DATABASE_URL when set, else the SQLite file at DB_PATH.
    pub fn store_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.db_path.display()),
        }
    }

    /// Registry shard count, resolving 0 to the next power of two ≥ 4 × cores.
    pub fn resolved_room_shards(&self) -> usize {
        if self.room_shards != 0 {
            return self.room_shards;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (4 * cores).next_power_of_two()
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs_f64(self.ping_interval_seconds)
    }

    pub fn send_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.send_timeout_seconds)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs_f64(self.shutdown_grace_seconds)
    }

    pub fn history_flush_interval(&self) -> Duration {
        Duration::from_millis(self.history_flush_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_original_and_validate() {
        let config = Config::default();
        assert_eq!(config.port, 8080);
        assert_eq!(config.db_path, PathBuf::from("chatterbox.db"));
        assert_eq!(config.max_rooms, 100);
        assert_eq!(config.max_history, 50);
        config.validate().unwrap();
        assert!(config.resolved_room_shards().is_power_of_two());
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = Config::try_parse_from(["chatterbox", "--port", "99999"]).unwrap_err();
        assert!(err.to_string().contains("--port"), "{err}");

        let config = Config {
            room_shards: 3,
            ..Config::default()
        };
        let err = config.validate().unwrap_err();
        assert_eq!(err.setting, "ROOM_SHARDS");

        let config = Config {
            history_ring_size: 10,
            ..Config::default()
        };
        assert_eq!(config.validate().unwrap_err().setting, "HISTORY_RING_SIZE");

        let config = Config {
            history_max_per_room: u64::MAX,
            ..Config::default()
        };
        assert_eq!(
            config.validate().unwrap_err().setting,
            "HISTORY_MAX_PER_ROOM"
        );
        let config = Config {
            ping_interval_seconds: 1e20,
            ..Config::default()
        };
        assert_eq!(
            config.validate().unwrap_err().setting,
            "PING_INTERVAL_SECONDS"
        );
    }
}
