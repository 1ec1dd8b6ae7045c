//! The frames the server sends, each encoded once into a shared [`Frame`].
//!
//! `history` frames and REST pages splice in the messages' already encoded `chat` JSON instead of
//! serialising them again.

use std::sync::Arc;

use serde::Serialize;

use super::{ChatRecord, ProtocolError};
use crate::ws::Frame;

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(super) enum ServerMessage<'a> {
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
    Welcome {
        user: &'a str,
        resume: &'a str,
    },
    Error {
        message: &'a str,
        code: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a str>,
    },
}

/// Serialises `message` straight behind the room for its WebSocket header.
pub(super) fn encode(message: &ServerMessage<'_>, seq: u64) -> Frame {
    let mut wire = Frame::buffer(64);
    serde_json::to_writer(&mut wire, message).expect("server messages always serialise");
    Frame::from_buffer(wire, seq)
}

/// `{"type":"join","room":R,"user":U}`: announced to the other members.
pub fn join(room: &str, user: &str) -> Frame {
    encode(&ServerMessage::Join { room, user }, 0)
}

/// `{"type":"leave","room":R,"user":U}`.
pub fn leave(room: &str, user: &str) -> Frame {
    encode(&ServerMessage::Leave { room, user }, 0)
}

/// `{"type":"presence","room":R,"users":[…]}`; `users` sorted by the caller.
pub fn presence(room: &str, users: &[&str]) -> Frame {
    encode(&ServerMessage::Presence { room, users }, 0)
}

/// `{"type":"welcome","user":U,"resume":T}`: the first frame for a client that asked for a
/// resume ticket (`resume` in its upgrade URL), with its name as the server knows it.
pub fn welcome(user: &str, resume: &str) -> Frame {
    encode(&ServerMessage::Welcome { user, resume }, 0)
}

/// `{"type":"error",…}` for a refused request.
pub fn error(error: &ProtocolError) -> Frame {
    encode(
        &ServerMessage::Error {
            message: &error.message,
            code: error.code.as_str(),
            room: error.room.as_deref(),
        },
        0,
    )
}

/// `{"type":"gap",…}`: the chat ids `from..=to` were skipped for a client that read too slowly.
pub fn gap(room: &str, from: u64, to: u64) -> Frame {
    encode(
        &ServerMessage::Gap {
            room,
            missed: to + 1 - from,
            from,
            to,
        },
        0,
    )
}

/// `{"type":"history",…}` built from already-encoded chat frames, without re-encoding them.
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
    Frame::from_text(&json, 0)
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(record.frame.seq(), 7);
        let history = history("general", &[Arc::new(record)], Some(true));
        let v: serde_json::Value = serde_json::from_str(history.text()).unwrap();
        assert_eq!(v["messages"][0]["id"], 7);
        assert_eq!(v["recovered"], true);
        let gap: serde_json::Value = serde_json::from_str(gap("r", 3, 5).text()).unwrap();
        assert_eq!(
            gap,
            serde_json::json!({"type":"gap","room":"r","missed":3,"from":3,"to":5})
        );
    }
}
