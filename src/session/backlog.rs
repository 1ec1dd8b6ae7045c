//! Requests read but not answered yet, kept in order.
//!
//! A request may wait on something slow (a [`Pending`] future the session's loop drives); the
//! requests read meanwhile wait behind it, so answers keep the order of requests. Requests also
//! wait while the client has not read its answers (over twice OUTBOX_BUDGET_BYTES of output):
//! the connection keeps reading — close frames, pings and pongs are handled at once — but answers
//! no more until the output drains. The backlog is bounded; when it is full the session stops
//! reading until it has room.

use std::collections::VecDeque;

use tokio_tungstenite::tungstenite::Message;

use super::commands::Pending;
use crate::protocol::{parse_client_message, ClientMessage};

/// Requests waiting behind a slow one before the session stops reading.
const MAX_WAITING_REQUESTS: usize = 16;

#[derive(Default)]
pub(super) struct Backlog {
    /// The request being waited on, if any.
    pub pending: Option<Pending>,
    waiting: VecDeque<Message>,
    /// Payload bytes of `waiting`.
    waiting_bytes: usize,
    /// Most payload bytes `waiting` may hold (at least one message always fits).
    max_bytes: usize,
}

impl Backlog {
    pub fn new(max_bytes: usize) -> Self {
        Backlog {
            max_bytes,
            ..Backlog::default()
        }
    }

    pub fn push(&mut self, request: Message) {
        self.waiting_bytes += request.len();
        self.waiting.push_back(request);
    }

    /// The oldest waiting request, unless one is still being waited on.
    pub fn next(&mut self) -> Option<Message> {
        if self.pending.is_some() {
            return None;
        }
        let request = self.waiting.pop_front()?;
        self.waiting_bytes -= request.len();
        Some(request)
    }

    /// Whether the session should stop reading until there is room.
    pub fn is_full(&self) -> bool {
        self.waiting.len() >= MAX_WAITING_REQUESTS || self.waiting_bytes >= self.max_bytes
    }

    /// Takes the newest waiting `refresh` out of the line, for a token about to expire.
    pub fn take_refresh(&mut self) -> Option<Message> {
        let at = self.waiting.iter().rposition(|request| match request {
            Message::Text(text) => matches!(
                parse_client_message(text),
                Ok(ClientMessage::Refresh { .. })
            ),
            _ => false,
        })?;
        let request = self.waiting.remove(at)?;
        self.waiting_bytes -= request.len();
        Some(request)
    }

    /// Whether nothing waits at all.
    pub fn is_empty(&self) -> bool {
        self.pending.is_none() && self.waiting.is_empty()
    }
}
