//! A chat message as published, stored and replayed: its fields plus its encoded frame.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::frames::{self, ServerMessage};
use crate::ws::Frame;

#[derive(Debug)]
pub struct ChatRecord {
    pub room: Arc<str>,
    pub id: u64,
    pub user: Arc<str>,
    pub text: Box<str>,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The `chat` frame, encoded once for every subscriber, history reply and REST page.
    pub frame: Frame,
}

impl ChatRecord {
    pub fn new(room: Arc<str>, id: u64, user: Arc<str>, text: Box<str>, timestamp_ms: i64) -> Self {
        let timestamp = format_timestamp(timestamp_ms);
        let frame = frames::encode(
            &ServerMessage::Chat {
                room: &room,
                user: &user,
                text: &text,
                timestamp: &timestamp,
                id,
            },
            id,
        );
        ChatRecord {
            room,
            id,
            user,
            text,
            timestamp_ms,
            frame,
        }
    }
}

impl ChatRecord {
    /// About how much memory a record of these parts holds while it waits for the store: the
    /// text twice (its own field and inside the frame), the names in the frame, and a fixed
    /// part for the frame's other fields, the allocations and the queue entry.
    pub fn footprint(room: &str, user: &str, text: &str) -> usize {
        2 * text.len() + room.len() + user.len() + 256
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-01-15T10:30:00.123Z`.
pub fn format_timestamp(ms: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}
