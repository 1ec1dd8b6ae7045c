//! What one client may ask for: names, texts, frames, and its share of the rooms.

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};

use super::{at_least, ConfigError};

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitsConfig {
    /// Rooms that may exist at once; a join that would create one more is refused. Each room
    /// costs about ROOM_CHANNEL_CAPACITY × 40 B plus its ring of recent messages.
    #[arg(long, env = "MAX_ROOMS", default_value_t = 10_000)]
    pub max_rooms: usize,

    /// Rooms that connections from one client IP may have created and that still exist, so no
    /// client can take every room slot (0 = no limit).
    #[arg(long, env = "MAX_ROOMS_CREATED_PER_IP", default_value_t = 100)]
    pub max_rooms_created_per_ip: usize,

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

    /// Rate limits on or off (`on`/`off`): `off` turns every rate limit off at once, for
    /// trusted deployments and benchmarks.
    #[arg(
        long = "rate-limits",
        env = "RATE_LIMITS",
        default_value = "on",
        value_parser = BoolishValueParser::new(),
        action = ArgAction::Set
    )]
    pub rate_limits_enabled: bool,
}

impl LimitsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        at_least("MAX_ROOMS", self.max_rooms, 1)?;
        at_least("MAX_ROOMS_PER_CONNECTION", self.max_rooms_per_connection, 1)?;
        at_least("MAX_USER_NAME_CHARS", self.max_user_name_chars, 1)?;
        at_least("MAX_ROOM_NAME_CHARS", self.max_room_name_chars, 1)?;
        at_least("MAX_TEXT_CHARS", self.max_text_chars, 1)?;
        at_least("MAX_FRAME_BYTES", self.max_frame_bytes, 256)?;
        Ok(())
    }
}
