//! The wire protocol: what clients send, what the server answers, and the rules for names.
//! `docs/PROTOCOL.md` is the reference.
//!
//! - [`frames`]: every server frame, encoded once into a shared [`crate::ws::Frame`].
//! - [`record`]: a chat message as published, stored and replayed.
//! - [`error`]: error codes and the refusal type.
//! - [`names`]: user and room names that cannot pose as someone else.
//! - [`text`]: chat text hygiene (no terminal escapes, bidi overrides, Zalgo).

pub mod error;
pub mod frames;
pub mod names;
pub mod record;
pub mod text;

#[cfg(test)]
mod hygiene_props;

use serde::Deserialize;

pub use error::{ErrorCode, ProtocolError};
pub use record::{format_timestamp, now_ms, ChatRecord};

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
}
