//! The wire protocol: what clients send, what the server answers, and the rules for names.
//! `docs/PROTOCOL.md` is the reference.
//!
//! - [`client`]: what clients send, and the strict decoder for it.
//! - [`frames`]: every server frame, encoded once into a shared [`crate::ws::Frame`].
//! - [`record`]: a chat message as published, stored and replayed.
//! - [`error`]: error codes and the refusal type.
//! - [`names`]: user and room names that cannot pose as someone else.
//! - [`text`]: chat text hygiene (no terminal escapes, bidi overrides, Zalgo).

pub mod client;
pub mod error;
pub mod frames;
pub mod names;
pub mod record;
pub mod text;

#[cfg(test)]
mod hygiene_props;

pub use client::{parse_client_message, ClientMessage};
pub use error::{ErrorCode, ProtocolError};
pub use record::{format_timestamp, now_ms, ChatRecord};
