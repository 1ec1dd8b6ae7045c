//! Classifies server frames by scanning raw bytes instead of parsing JSON.
//!
//! The generator shares two cores with the server it measures, so the work per
//! delivery must stay tiny: a couple of `memmem` searches over a ~250-byte frame
//! instead of building a `serde_json::Value`. This relies only on what
//! `docs/PROTOCOL.md` promises: JSON objects with a string `"type"`, and for
//! chat frames a string `"text"` and a numeric `"id"`. Field order is not assumed.
//! Values we need to read are written by us (room names, the `lt …` text) and
//! contain no characters JSON would escape.

use std::sync::LazyLock;

use memchr::memmem::Finder;

use crate::payload::parse_u64;

static TYPE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""type":""#));
static TEXT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""text":""#));
static ID: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""id":"#));
static ROOM: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""room":""#));
static CODE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""code":""#));
static MISSED: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""missed":"#));

/// The parts of a server frame the generator cares about.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A chat message. `text` is the raw (still JSON-escaped) string body.
    Chat { id: Option<u64>, text: &'a [u8] },
    /// The joiner's presence list: our join acknowledgement.
    Presence { room: Option<&'a [u8]> },
    /// The history a joiner gets before its presence; see [`history_len`].
    History { room: Option<&'a [u8]> },
    /// The server skipped `missed` chat messages for this slow reader.
    Gap { missed: u64 },
    /// A protocol error, with its machine-readable code if the server sent one.
    Error {
        code: Option<&'a [u8]>,
        room: Option<&'a [u8]>,
    },
    /// `join`, `leave` and anything newer: not measured.
    Other,
}

/// Classifies one text frame.
pub fn classify(frame: &[u8]) -> Frame<'_> {
    let Some(kind) = string_after(&TYPE, frame) else {
        return Frame::Other;
    };
    match kind {
        b"chat" => Frame::Chat {
            id: number_after(&ID, frame),
            text: string_after(&TEXT, frame).unwrap_or_default(),
        },
        b"presence" => Frame::Presence {
            room: string_after(&ROOM, frame),
        },
        // The frame's own `room` comes before its messages (and theirs is the same room).
        b"history" => Frame::History {
            room: string_after(&ROOM, frame),
        },
        b"gap" => Frame::Gap {
            missed: number_after(&MISSED, frame).unwrap_or(0),
        },
        b"error" => Frame::Error {
            code: string_after(&CODE, frame),
            room: string_after(&ROOM, frame),
        },
        _ => Frame::Other,
    }
}

/// How many chat messages a `history` frame carries: one `"id":` per message
/// (a quote inside a text is escaped, so texts cannot fake one).
pub fn history_len(frame: &[u8]) -> u64 {
    ID.find_iter(frame).count() as u64
}

/// The string value that follows `key` (which ends with the opening quote),
/// up to the next unescaped-by-construction `"`.
fn string_after<'a>(key: &Finder<'_>, frame: &'a [u8]) -> Option<&'a [u8]> {
    let start = key.find(frame)? + key.needle().len();
    let rest = &frame[start..];
    let end = memchr::memchr(b'"', rest)?;
    Some(&rest[..end])
}

/// The unsigned integer value that follows `key`.
fn number_after(key: &Finder<'_>, frame: &[u8]) -> Option<u64> {
    let start = key.find(frame)? + key.needle().len();
    let rest = &frame[start..];
    let rest = &rest[rest.iter().take_while(|b| **b == b' ').count()..];
    let len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    parse_u64(&rest[..len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_frame_in_protocol_order() {
        let f = br#"{"type":"chat","room":"general","user":"alice","text":"lt 1 2 3 xx","timestamp":"2026-01-15T10:30:00.123Z","id":42}"#;
        assert_eq!(
            classify(f),
            Frame::Chat {
                id: Some(42),
                text: b"lt 1 2 3 xx"
            }
        );
    }

    #[test]
    fn chat_frame_any_field_order_and_spacing() {
        let f = br#"{"id": 7, "text":"hi","type":"chat"}"#;
        assert_eq!(
            classify(f),
            Frame::Chat {
                id: Some(7),
                text: b"hi"
            }
        );
        let no_id = br#"{"type":"chat","text":"hi"}"#;
        assert_eq!(
            classify(no_id),
            Frame::Chat {
                id: None,
                text: b"hi"
            }
        );
    }

    #[test]
    fn user_id_field_does_not_look_like_id() {
        let f = br#"{"type":"chat","userid":5,"text":"hi"}"#;
        assert_eq!(
            classify(f),
            Frame::Chat {
                id: None,
                text: b"hi"
            }
        );
    }

    #[test]
    fn presence_gap_error_other() {
        assert_eq!(
            classify(br#"{"type":"presence","room":"r1","users":["a","b"]}"#),
            Frame::Presence { room: Some(b"r1") }
        );
        assert_eq!(
            classify(br#"{"type":"gap","room":"r","missed":12,"from":30,"to":41}"#),
            Frame::Gap { missed: 12 }
        );
        assert_eq!(
            classify(br#"{"type":"error","message":"not a member of room \"x\"","code":"not_member","room":"x"}"#),
            Frame::Error {
                code: Some(b"not_member"),
                room: Some(b"x")
            }
        );
        assert_eq!(
            classify(br#"{"type":"error","message":"bad"}"#),
            Frame::Error {
                code: None,
                room: None
            }
        );
        assert_eq!(
            classify(br#"{"type":"join","room":"r","user":"bob"}"#),
            Frame::Other
        );
        let h = br#"{"type":"history","room":"r","messages":[{"type":"chat","room":"r","user":"a","text":"x \"id\":1","id":1},{"type":"chat","room":"r","user":"a","text":"y","id":2}]}"#;
        assert_eq!(classify(h), Frame::History { room: Some(b"r") });
        assert_eq!(history_len(h), 2);
        assert_eq!(
            history_len(br#"{"type":"history","room":"r","messages":[]}"#),
            0
        );
        assert_eq!(classify(b"not json"), Frame::Other);
    }
}
