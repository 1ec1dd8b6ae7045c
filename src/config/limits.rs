//! What one client may ask for: names, texts, frames, and its share of the rooms.

use clap::Args;

use super::{at_least, ConfigError};
use crate::protocol::frames;
use crate::protocol::text::TextRules;

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

    /// Longest chat text in bytes as encoded in JSON (escapes count: `"` and a newline are two
    /// bytes each), so what one message adds to every frame that carries it is bounded whatever
    /// its characters. 16 KiB admits any 4,000 characters the text rules allow.
    #[arg(long, env = "MAX_TEXT_BYTES", default_value_t = 16 * 1024)]
    pub max_text_bytes: usize,

    /// Most combining marks on one character of a chat text (more is refused with
    /// `invalid_text`): enough for Vedic, Biblical Hebrew or Quranic text, not for "Zalgo".
    #[arg(long, env = "MAX_COMBINING_MARKS", default_value_t = crate::protocol::text::DEFAULT_MAX_COMBINING_RUN)]
    pub max_combining_marks: usize,

    /// Largest WebSocket message the server sends. `history` and `presence` frames are cut to
    /// fit (and say so); everything else is smaller by the other limits. Must hold a `history`
    /// frame with one message of MAX_TEXT_BYTES.
    #[arg(long, env = "MAX_SERVER_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_server_frame_bytes: usize,

    /// Largest WebSocket message a client may send; larger ones close the connection with 1009.
    #[arg(long, env = "MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,
}

impl LimitsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        at_least("MAX_ROOMS", self.max_rooms, 1)?;
        at_least("MAX_ROOMS_PER_CONNECTION", self.max_rooms_per_connection, 1)?;
        at_least("MAX_USER_NAME_CHARS", self.max_user_name_chars, 1)?;
        at_least("MAX_ROOM_NAME_CHARS", self.max_room_name_chars, 1)?;
        at_least("MAX_TEXT_CHARS", self.max_text_chars, 1)?;
        at_least("MAX_FRAME_BYTES", self.max_frame_bytes, 256)?;
        at_least("MAX_TEXT_BYTES", self.max_text_bytes, 1)?;
        at_least(
            "MAX_SERVER_FRAME_BYTES",
            self.max_server_frame_bytes,
            frames::history_frame_with_one_chat(
                self.max_text_bytes,
                self.max_room_name_chars,
                self.max_user_name_chars,
            ),
        )?;
        Ok(())
    }

    /// The rules every chat text must meet.
    pub fn text_rules(&self) -> TextRules {
        TextRules {
            max_chars: self.max_text_chars,
            max_bytes: self.max_text_bytes,
            max_combining_run: self.max_combining_marks,
        }
    }
}
