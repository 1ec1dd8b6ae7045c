//! What several benches build the same way: a chat message as the room publishes it.

use chatterbox::protocol::ChatRecord;

/// A fixed, realistic timestamp (2026-01-15T10:30:00.123Z).
pub const TIMESTAMP_MS: i64 = 1_768_473_000_123;

/// Chat message `id` from alice in "general", encoded as the room does on publish.
pub fn chat_record(id: u64, text: &str) -> ChatRecord {
    ChatRecord::new(
        "general".into(),
        id,
        "alice".into(),
        text.into(),
        TIMESTAMP_MS,
    )
}
