//! The wire protocol: what clients send, and the frames the server encodes once per message.
//!
//! Server frames are built as [`Frame`]s: JSON and WebSocket header encoded a single time and shared
//! by every subscriber (cloning a frame clones a reference, never the bytes). See `docs/PROTOCOL.md`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::ws::FrameHeader;

/// A request from a client, after validation of its JSON shape.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientMessage {
    Join {
        room: Option<String>,
        /// Resume: the last chat id this client saw in the room.
        since: Option<u64>,
    },
    Chat {
        room: Option<String>,
        text: Option<String>,
    },
    Leave {
        room: Option<String>,
    },
}

/// What went wrong with a client request; `code` goes on the wire, `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
    pub room: Option<Arc<str>>,
}

/// Machine-readable error kinds, also the `kind` label of the error metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidJson,
    NotAnObject,
    UnknownType,
    MissingRoom,
    InvalidRoom,
    EmptyText,
    TextTooLong,
    NotMember,
    TooManyRooms,
    TooManyJoined,
    BinaryUnsupported,
    HistoryUnavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::NotAnObject => "not_object",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::MissingRoom => "missing_room",
            ErrorCode::InvalidRoom => "invalid_room",
            ErrorCode::EmptyText => "empty_text",
            ErrorCode::TextTooLong => "text_too_long",
            ErrorCode::NotMember => "not_member",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::TooManyJoined => "too_many_joined",
            ErrorCode::BinaryUnsupported => "binary_unsupported",
            ErrorCode::HistoryUnavailable => "history_unavailable",
        }
    }
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ProtocolError {
            code,
            message: message.into(),
            room: None,
        }
    }

    pub fn in_room(mut self, room: &Arc<str>) -> Self {
        self.room = Some(room.clone());
        self
    }
}

/// Parses one text frame from a client, telling apart the ways it can be malformed.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ProtocolError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| ProtocolError::new(ErrorCode::InvalidJson, format!("invalid JSON: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(ProtocolError::new(
            ErrorCode::NotAnObject,
            "message must be a JSON object",
        ));
    };
    match object.get("type").and_then(|t| t.as_str()) {
        Some("join" | "chat" | "leave") => {}
        Some(other) => {
            return Err(ProtocolError::new(
                ErrorCode::UnknownType,
                format!("unknown message type \"{other}\""),
            ))
        }
        None => {
            return Err(ProtocolError::new(
                ErrorCode::UnknownType,
                "message needs a string \"type\": join, chat or leave",
            ))
        }
    }
    serde_json::from_value(value)
        .map_err(|e| ProtocolError::new(ErrorCode::InvalidJson, format!("malformed message: {e}")))
}

/// Checks a user or room name: 1..=max characters and no control characters.
pub fn validate_name(kind: &str, name: &str, max_chars: usize) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{kind} name must not be empty"));
    }
    if name.chars().count() > max_chars {
        return Err(format!("{kind} name is longer than {max_chars} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("{kind} name must not contain control characters"));
    }
    Ok(())
}

/// One server frame, encoded once — its JSON and the WebSocket header in front of it — and shared
/// by every subscriber of a room: cloning it is one reference-count increment, and the bytes go
/// to every socket without a copy (server frames are unmasked, so they are the same for all).
#[derive(Debug, Clone)]
pub struct Frame(Arc<EncodedFrame>);

#[derive(Debug)]
struct EncodedFrame {
    /// Room for the longest WebSocket header, the header right-aligned in it from `start`, then
    /// the JSON: one contiguous buffer, so a lone frame is one plain `write` (measurably cheaper
    /// in the kernel than a two-part `writev`), and the JSON is serialised straight into it.
    wire: Vec<u8>,
    start: u8,
    /// The chat id for `chat` frames, 0 for every other kind.
    chat_id: u64,
    /// When the frame was published, to measure fan-out latency.
    published_at: Instant,
}

impl Frame {
    fn encode(message: &ServerMessage<'_>, chat_id: u64) -> Frame {
        let mut wire = vec![0; FrameHeader::MAX_LEN];
        serde_json::to_writer(&mut wire, message).expect("server messages always serialise");
        Frame::framed(wire, chat_id)
    }

    fn from_json(json: &str, chat_id: u64) -> Frame {
        let mut wire = Vec::with_capacity(FrameHeader::MAX_LEN + json.len());
        wire.resize(FrameHeader::MAX_LEN, 0);
        wire.extend_from_slice(json.as_bytes());
        Frame::framed(wire, chat_id)
    }

    /// `wire` is [`FrameHeader::MAX_LEN`] bytes of room, then the JSON.
    fn framed(mut wire: Vec<u8>, chat_id: u64) -> Frame {
        let header = FrameHeader::text(wire.len() - FrameHeader::MAX_LEN);
        let start = FrameHeader::MAX_LEN - header.as_bytes().len();
        wire[start..FrameHeader::MAX_LEN].copy_from_slice(header.as_bytes());
        Frame(Arc::new(EncodedFrame {
            wire,
            start: start as u8,
            chat_id,
            published_at: Instant::now(),
        }))
    }

    /// The JSON text.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.0.wire[FrameHeader::MAX_LEN..])
            .expect("serde_json and from_json only write UTF-8")
    }

    /// The whole frame as it goes on the wire: WebSocket header, then [`text`](Self::text).
    pub fn wire(&self) -> &[u8] {
        &self.0.wire[usize::from(self.0.start)..]
    }

    /// The chat id for `chat` frames, 0 for every other kind.
    pub fn chat_id(&self) -> u64 {
        self.0.chat_id
    }

    /// When the frame was built, to measure fan-out latency.
    pub fn published_at(&self) -> Instant {
        self.0.published_at
    }

    pub fn join(room: &str, user: &str) -> Frame {
        Frame::encode(&ServerMessage::Join { room, user }, 0)
    }

    pub fn leave(room: &str, user: &str) -> Frame {
        Frame::encode(&ServerMessage::Leave { room, user }, 0)
    }

    pub fn presence(room: &str, users: &[&str]) -> Frame {
        Frame::encode(&ServerMessage::Presence { room, users }, 0)
    }

    pub fn error(error: &ProtocolError) -> Frame {
        Frame::encode(
            &ServerMessage::Error {
                message: &error.message,
                code: error.code.as_str(),
                room: error.room.as_deref(),
            },
            0,
        )
    }

    pub fn gap(room: &str, from: u64, to: u64) -> Frame {
        Frame::encode(
            &ServerMessage::Gap {
                room,
                missed: to + 1 - from,
                from,
                to,
            },
            0,
        )
    }

    /// `{"type":"history",...}` built from already-encoded chat frames, without re-encoding them.
    pub fn history(room: &str, messages: &[Arc<ChatRecord>], recovered: Option<bool>) -> Frame {
        let tail = match recovered {
            None => "",
            Some(true) => r#","recovered":true"#,
            Some(false) => r#","recovered":false"#,
        };
        let json = messages_object(
            r#""type":"history","#,
            room,
            messages.iter().map(|m| &**m),
            tail,
        );
        Frame::from_json(&json, 0)
    }
}

/// `{<head>"room":<room>,"messages":[<chat frames>]<tail>}`, splicing in the messages' already
/// encoded frames instead of serialising them again. Used for `history` frames and REST pages.
pub fn messages_object<'a>(
    head: &str,
    room: &str,
    messages: impl Iterator<Item = &'a ChatRecord> + Clone,
    tail: &str,
) -> String {
    // The wire length (header included) bounds the JSON length without validating it as text.
    let body: usize = messages.clone().map(|m| m.frame.wire().len() + 1).sum();
    let mut json = String::with_capacity(32 + head.len() + room.len() + body + tail.len());
    json.push('{');
    json.push_str(head);
    json.push_str(r#""room":"#);
    json.push_str(&serde_json::to_string(room).expect("strings serialise"));
    json.push_str(r#","messages":["#);
    for (i, message) in messages.enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(message.frame.text());
    }
    json.push(']');
    json.push_str(tail);
    json.push('}');
    json
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ServerMessage<'a> {
    Chat {
        room: &'a str,
        user: &'a str,
        text: &'a str,
        timestamp: &'a str,
        id: u64,
    },
    Join {
        room: &'a str,
        user: &'a str,
    },
    Leave {
        room: &'a str,
        user: &'a str,
    },
    Presence {
        room: &'a str,
        users: &'a [&'a str],
    },
    Gap {
        room: &'a str,
        missed: u64,
        from: u64,
        to: u64,
    },
    Error {
        message: &'a str,
        code: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a str>,
    },
}

/// A chat message as published, stored and replayed: its fields plus its encoded frame.
#[derive(Debug)]
pub struct ChatRecord {
    pub room: Arc<str>,
    pub id: u64,
    pub user: Arc<str>,
    pub text: Box<str>,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    pub frame: Frame,
}

impl ChatRecord {
    pub fn new(room: Arc<str>, id: u64, user: Arc<str>, text: Box<str>, timestamp_ms: i64) -> Self {
        let timestamp = format_timestamp(timestamp_ms);
        let frame = Frame::encode(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_bad_input() {
        let code = |text: &str| parse_client_message(text).unwrap_err().code;
        assert_eq!(code("{nope"), ErrorCode::InvalidJson);
        assert_eq!(code("[1,2]"), ErrorCode::NotAnObject);
        assert_eq!(code(r#"{"type":"dance"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"room":"x"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":"join","room":5}"#), ErrorCode::InvalidJson);
        assert!(matches!(
            parse_client_message(r#"{"type":"join","room":"a","since":3}"#).unwrap(),
            ClientMessage::Join { since: Some(3), .. }
        ));
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("user", "alice", 32).is_ok());
        assert!(validate_name("user", "", 32).is_err());
        assert!(validate_name("user", "a\u{7}b", 32).is_err());
        assert!(validate_name("user", &"é".repeat(32), 32).is_ok());
        assert!(validate_name("user", &"é".repeat(33), 32).is_err());
    }

    #[test]
    fn frames_are_the_original_wire_format_plus_extensions() {
        let record = ChatRecord::new(
            "general".into(),
            7,
            "alice".into(),
            "Hi \"there\"".into(),
            0,
        );
        let v: serde_json::Value = serde_json::from_str(record.frame.text()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"chat","room":"general","user":"alice",
                "text":"Hi \"there\"","timestamp":"1970-01-01T00:00:00.000Z","id":7})
        );
        let history = Frame::history("general", &[Arc::new(record)], Some(true));
        let v: serde_json::Value = serde_json::from_str(history.text()).unwrap();
        assert_eq!(v["messages"][0]["id"], 7);
        assert_eq!(v["recovered"], true);
        let gap: serde_json::Value = serde_json::from_str(Frame::gap("r", 3, 5).text()).unwrap();
        assert_eq!(
            gap,
            serde_json::json!({"type":"gap","room":"r","missed":3,"from":3,"to":5})
        );
    }
}
