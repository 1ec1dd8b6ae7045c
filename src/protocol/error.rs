//! What went wrong with a client request: a machine-readable code and a message for people.

use std::sync::Arc;
use std::time::Duration;

/// A refused client request; `code` goes on the wire, `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
    pub room: Option<Arc<str>>,
    /// For `rate_limited`: when the same request would be accepted, in milliseconds from now.
    pub retry_after_ms: Option<u64>,
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ProtocolError {
            code,
            message: message.into(),
            room: None,
            retry_after_ms: None,
        }
    }

    pub fn in_room(mut self, room: &Arc<str>) -> Self {
        self.room = Some(room.clone());
        self
    }

    /// Tells the client when to try again (rounded up to whole milliseconds, at least 1).
    pub fn retry_after(mut self, wait: Duration) -> Self {
        let ms = wait.as_nanos().div_ceil(1_000_000).max(1);
        self.retry_after_ms = Some(u64::try_from(ms).unwrap_or(u64::MAX));
        self
    }
}

/// Declares [`ErrorCode`] with its wire names once, and the list of all of them.
macro_rules! error_codes {
    ($($variant:ident => $wire:literal),+ $(,)?) => {
        /// Machine-readable error kinds: `error.code` on the wire, the `kind` label of
        /// `chatterbox_error_frames_total`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $($variant),+
        }

        impl ErrorCode {
            /// Every code, in the order of the protocol reference.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $wire),+
                }
            }
        }
    };
}

error_codes! {
    InvalidJson => "invalid_json",
    NotAnObject => "not_object",
    UnknownType => "unknown_type",
    MissingRoom => "missing_room",
    InvalidRoom => "invalid_room",
    EmptyText => "empty_text",
    TextTooLong => "text_too_long",
    InvalidText => "invalid_text",
    NotMember => "not_member",
    TooManyRooms => "too_many_rooms",
    TooManyJoined => "too_many_joined",
    BinaryUnsupported => "binary_unsupported",
    HistoryUnavailable => "history_unavailable",
    RateLimited => "rate_limited",
    Forbidden => "forbidden",
    InvalidToken => "invalid_token",
}
