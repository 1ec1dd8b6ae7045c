//! A joiner's history: from the room's ring, or through the history reader past it, into one
//! `history` frame of at most MAX_SERVER_FRAME_BYTES.
//!
//! A frame that cannot hold all the messages asked for keeps the newest and ends with
//! `"truncated":true,"before":<id>` (see `protocol::frames::history`); reads from the store are
//! cut to the same budget, so a 43-byte resume can neither make the server load nor send more
//! than about one frame's worth, however long the messages in the room.

use std::sync::Arc;

use crate::app::App;
use crate::history::HistoryError;
use crate::history::{InMemory, Ranged};
use crate::protocol::{frames, ChatRecord, ErrorCode, ProtocolError};
use crate::rooms::{HistoryPlan, HistoryRequest, JoinTicket, Membership, Room, Subscription};
use crate::ws::Frame;

/// History read for a reply: the messages, `recovered` (for a resume) and whether older ones of
/// the reply were left out already.
pub(super) struct Read {
    pub messages: Vec<Arc<ChatRecord>>,
    pub recovered: Option<bool>,
    pub left_out: bool,
}

impl Read {
    /// The `history` frame for `room`, cut to `max_bytes`.
    pub fn frame(&self, room: &str, max_bytes: usize) -> Frame {
        frames::history(
            room,
            &self.messages,
            self.recovered,
            self.left_out,
            max_bytes,
        )
    }

    /// The last id the client is sent with this history (0 if none).
    pub fn last_id(&self) -> u64 {
        self.messages.last().map_or(0, |m| m.id)
    }
}

/// Loads a room (re)created by this join, then subscribes.
pub(super) async fn load_and_join(
    app: Arc<App>,
    ticket: JoinTicket,
    user: Arc<str>,
    request: HistoryRequest,
) -> Result<(Membership, Subscription, Vec<Frame>), ProtocolError> {
    let name = ticket.room().name().clone();
    if let Err(error) = ticket.room().ensure_loaded(&app.reader).await {
        // Dropping the ticket withdraws the join.
        return Err(history_unavailable(error).in_room(&name));
    }
    let (membership, subscription) = ticket.subscribe(&user, request);
    Ok(joiner_frames(&app, membership, subscription, request.since).await)
}

/// The joiner's frames when its history is ready from memory.
pub(super) fn joiner_frames_ready(
    membership: Membership,
    mut subscription: Subscription,
    resume: bool,
    max_bytes: usize,
) -> (Membership, Subscription, Vec<Frame>) {
    let plan = std::mem::replace(
        &mut subscription.history,
        HistoryPlan::Ready {
            messages: Vec::new(),
            recovered: None,
        },
    );
    let mut frames = Vec::with_capacity(2);
    if let HistoryPlan::Ready {
        messages,
        recovered,
    } = plan
    {
        if resume || !messages.is_empty() {
            let read = Read {
                messages,
                recovered,
                left_out: false,
            };
            frames.push(read.frame(membership.room().name(), max_bytes));
        }
    }
    frames.push(subscription.presence.clone());
    (membership, subscription, frames)
}

/// The joiner's frames, reading the store if its plan needs it.
pub(super) async fn joiner_frames(
    app: &App,
    membership: Membership,
    mut subscription: Subscription,
    since: Option<u64>,
) -> (Membership, Subscription, Vec<Frame>) {
    let max_bytes = app.config.limits.max_server_frame_bytes;
    if let HistoryPlan::FromStore { .. } = subscription.history {
        let plan = std::mem::replace(
            &mut subscription.history,
            HistoryPlan::Ready {
                messages: Vec::new(),
                recovered: None,
            },
        );
        let read = read_plan(app, membership.room(), plan).await;
        let mut frames = Vec::with_capacity(2);
        if since.is_some() || !read.messages.is_empty() {
            frames.push(read.frame(membership.room().name(), max_bytes));
        }
        frames.push(subscription.presence.clone());
        return (membership, subscription, frames);
    }
    joiner_frames_ready(membership, subscription, since.is_some(), max_bytes)
}

/// Reads history past the ring through the history reader, up to a frame's worth. A resume that
/// cannot be served in full (pruned, or the store unavailable) says so with `recovered: false`
/// and the latest messages instead; a plain join gets what there is.
pub(super) async fn read_plan(app: &App, room: &Room, plan: HistoryPlan) -> Read {
    let (after, upto, resume) = match plan {
        HistoryPlan::Ready {
            messages,
            recovered,
        } => {
            return Read {
                messages,
                recovered,
                left_out: false,
            }
        }
        HistoryPlan::FromStore {
            after,
            upto,
            resume,
        } => (after, upto, resume),
    };
    let recent = room.recent_range(after, upto);
    let memory = InMemory {
        recent: &recent,
        watermark: Some(room.watermark()),
    };
    let max_bytes = app.config.limits.max_server_frame_bytes;
    // Only up to `upto`: later messages reach the client live, through its subscription.
    let latest = |recovered| Read {
        messages: room.latest(app.config.history.max_history, upto),
        recovered,
        left_out: false,
    };
    match app
        .reader
        .range(room.name(), memory, after, upto, max_bytes)
        .await
    {
        Ok(Ranged {
            messages,
            complete,
            left_out,
        }) if !resume || complete => Read {
            messages,
            recovered: resume.then_some(true),
            left_out,
        },
        _ if !resume => latest(None),
        _ => latest(Some(false)),
    }
}

/// A history error as clients see it: `history_unavailable`, without database internals.
pub(super) fn history_unavailable(error: HistoryError) -> ProtocolError {
    // Store errors are logged where they happen; clients are not shown database internals.
    let why = match error {
        HistoryError::Store(_) => "the history store failed".to_string(),
        other => other.to_string(),
    };
    ProtocolError::new(
        ErrorCode::HistoryUnavailable,
        format!("message history is unavailable, try again: {why}"),
    )
}
