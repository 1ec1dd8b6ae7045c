//! The frames the server sends, each encoded once into a shared [`Frame`].
//!
//! `history` frames and REST pages splice in the messages' already encoded `chat` JSON instead of
//! serialising them again.
//!
//! Frames whose size grows with what the server holds — `history` (messages) and `presence`
//! (users) — are cut to a byte budget (MAX_SERVER_FRAME_BYTES) and say so with `"truncated":
//! true`, so no request, however small, makes the server build or a client receive a frame larger
//! than that. Everything else is bounded by the limits on what clients send.

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
        /// Set (with `count`) only when the list was cut to fit the frame budget.
        #[serde(skip_serializing_if = "Option::is_none")]
        truncated: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        count: Option<usize>,
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
    Refreshed {
        expires_at: u64,
    },
    Error {
        message: &'a str,
        code: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
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

/// `{"type":"presence","room":R,"users":[…]}`; `users` sorted by the caller. A list that would
/// make the frame larger than `max_bytes` keeps its first users that fit, with
/// `"truncated":true,"count":<all users>` (the full list is on the REST API).
pub fn presence(room: &str, users: &[&str], max_bytes: usize) -> Frame {
    const FIXED: usize = r#"{"type":"presence","room":,"users":[]}"#.len();
    const MARKER: usize = r#","truncated":true,"count":"#.len() + 20;
    let fixed = FIXED + json_string_len(room);
    let cost = |u: &&str| json_string_len(u) + 1;
    let (listed, truncated) = if fixed + users.iter().map(cost).sum::<usize>() <= max_bytes {
        (users, None)
    } else {
        let mut budget = max_bytes.saturating_sub(fixed + MARKER);
        let fit = users
            .iter()
            .take_while(|u| {
                let fits = cost(u) <= budget;
                budget = budget.saturating_sub(cost(u));
                fits
            })
            .count();
        (&users[..fit], Some(true))
    };
    encode(
        &ServerMessage::Presence {
            room,
            users: listed,
            truncated,
            count: truncated.map(|_| users.len()),
        },
        0,
    )
}

/// `{"type":"welcome","user":U,"resume":T}`: the first frame for a client that asked for a
/// resume ticket (`resume` in its upgrade URL), with its name as the server knows it.
pub fn welcome(user: &str, resume: &str) -> Frame {
    encode(&ServerMessage::Welcome { user, resume }, 0)
}

/// `{"type":"refreshed","expires_at":N}`: a `refresh` took; the connection now lasts until N
/// (seconds since the Unix epoch).
pub fn refreshed(expires_at: u64) -> Frame {
    encode(&ServerMessage::Refreshed { expires_at }, 0)
}

/// `{"type":"error",…}` for a refused request.
pub fn error(error: &ProtocolError) -> Frame {
    encode(
        &ServerMessage::Error {
            message: &error.message,
            code: error.code.as_str(),
            room: error.room.as_deref(),
            retry_after_ms: error.retry_after_ms,
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

/// `{"type":"history",…}` built from already-encoded chat frames, without re-encoding them, and
/// at most `max_bytes` long. When the messages do not all fit, the newest that fit are kept and
/// the frame ends with `"truncated":true,"before":<id of the oldest kept>`, so the client can page
/// the rest with `GET /api/rooms/{room}/messages?before=<id>`. `left_out` says that older
/// messages of this reply were already left out before (a store read cut to the budget), which
/// makes the frame truncated even if what is here fits.
pub fn history(
    room: &str,
    messages: &[Arc<ChatRecord>],
    recovered: Option<bool>,
    left_out: bool,
    max_bytes: usize,
) -> Frame {
    let recovered = match recovered {
        None => "",
        Some(true) => r#","recovered":true"#,
        Some(false) => r#","recovered":false"#,
    };
    const FIXED: usize = r#"{"type":"history","room":,"messages":[]}"#.len();
    const MARKER: usize = r#","truncated":true,"before":"#.len() + 20;
    let fixed = FIXED + json_string_len(room) + recovered.len();
    let cost = |m: &Arc<ChatRecord>| m.frame.payload().len() + 1;
    let all: usize = messages.iter().map(cost).sum();
    let keep_from = if !left_out && fixed + all <= max_bytes {
        0
    } else {
        let mut budget = max_bytes.saturating_sub(fixed + MARKER);
        let fit = messages
            .iter()
            .rev()
            .take_while(|m| {
                let fits = cost(m) <= budget;
                budget = budget.saturating_sub(cost(m));
                fits
            })
            .count();
        messages.len() - fit
    };
    let kept = &messages[keep_from..];
    let marker = if keep_from > 0 || left_out {
        let before = kept.first().or(messages.last()).map_or(0, |m| {
            if kept.is_empty() {
                m.id + 1
            } else {
                m.id
            }
        });
        format!(r#","truncated":true,"before":{before}"#)
    } else {
        String::new()
    };
    let json = messages_object(
        r#""type":"history","#,
        room,
        kept.iter().map(|m| &**m),
        &format!("{recovered}{marker}"),
    );
    Frame::from_text(&json, 0)
}

/// The size of a `history` frame holding one chat message at the largest text and names these
/// limits allow: the least MAX_SERVER_FRAME_BYTES that can carry every message. A name
/// character takes at most 4 bytes in JSON (names have no control characters).
pub fn history_frame_with_one_chat(
    max_text_bytes: usize,
    max_room_name_chars: usize,
    max_user_name_chars: usize,
) -> usize {
    const CHAT: usize =
        r#"{"type":"chat","room":"","user":"","text":"","timestamp":"2026-01-15T10:30:00.123Z","id":}"#
            .len()
            + 20;
    const HISTORY: usize = r#"{"type":"history","room":"","messages":[]}"#.len()
        + r#","recovered":false"#.len()
        + r#","truncated":true,"before":"#.len()
        + 20;
    let room = 4 * max_room_name_chars;
    // The message's frame, the comma that may follow it, and the envelope around it.
    CHAT + max_text_bytes + room + 4 * max_user_name_chars + 1 + HISTORY + room
}

/// How many bytes `s` takes as a JSON string literal, quotes included, as serde_json writes it:
/// `"` and `\` take two bytes, the C0 controls two (`\n`, `\t`, …) or six (`\u001b`), every
/// other character its UTF-8 length.
pub fn json_string_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\t' | b'\r' | 0x08 | 0x0C => 2,
            0..=0x1F => 6,
            _ => 1,
        })
        .sum::<usize>()
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
        let history = history("general", &[Arc::new(record)], Some(true), false, 1 << 16);
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
