//! What a client asks for — join, chat, leave — and how each is answered.
//!
//! A request that needs nothing slow is answered at once. One that must wait (for room in the
//! history writer's queue, for a room's history to load, for the store) becomes a [`Pending`]
//! future the session's loop drives beside everything else, so the connection keeps writing,
//! answering pings and seeing shutdown; requests that arrive meanwhile wait their turn, so
//! answers keep the order of the requests.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::wrappers::BroadcastStream;

use super::history::{
    history_unavailable, joiner_frames, joiner_frames_ready, load_and_join, read_plan, Read,
};
use super::Session;
use crate::bus::{Draft, Published};
use crate::protocol::names::{normalize_name, NameKind};
use crate::protocol::{parse_client_message, ChatRecord, ClientMessage, ErrorCode, ProtocolError};
use crate::ratelimit::RequestKind;
use crate::rooms::{HistoryPlan, HistoryRequest, JoinError, Membership, Subscription};
use crate::ws::Frame;

/// A request waiting on something slow; the loop polls it.
pub(super) type Pending = Pin<Box<dyn Future<Output = Completed> + Send>>;

/// What a waiting request finished with.
pub(super) enum Completed {
    /// A join whose room had to load: the new membership and the frames for the joiner.
    Joined(Result<(Membership, Subscription, Vec<Frame>), ProtocolError>),
    /// A resume (join again with `since`) that read the store, and the room's feed, set aside
    /// meanwhile so that no newer live frame went out before this history.
    Resumed {
        room: Arc<str>,
        history: Frame,
        last_sent: u64,
        feed: Option<(Arc<str>, BroadcastStream<Frame>)>,
    },
    /// A chat that waited for room in the writer's queue.
    Published(Result<Published, ProtocolError>),
}

/// How a request was answered.
pub(super) enum Answer {
    Now(Vec<Frame>),
    Later(Pending),
}

impl Session {
    /// Answers one client text message: at once, or by returning the wait it needs.
    pub(super) fn handle_text(&mut self, text: &str) -> Option<Pending> {
        let message = parse_client_message(text);
        let metrics = &self.app.metrics;
        let kind = match &message {
            Err(_) => {
                metrics.received_invalid.increment(1);
                RequestKind::Chat
            }
            Ok(ClientMessage::Chat { .. }) => {
                metrics.received_chat.increment(1);
                RequestKind::Chat
            }
            Ok(ClientMessage::Join { .. }) => {
                metrics.received_join.increment(1);
                RequestKind::Membership
            }
            Ok(ClientMessage::Leave { .. }) => {
                metrics.received_leave.increment(1);
                RequestKind::Membership
            }
            // Rare, and checked against a signature: metered like joins.
            Ok(ClientMessage::Refresh { .. }) => RequestKind::Membership,
        };
        let outcome = self.charge(kind).and_then(|()| match message? {
            ClientMessage::Join { room, since } => self.join(room, since),
            ClientMessage::Chat { room, text } => self.chat(room, text),
            ClientMessage::Leave { room } => self.leave(room),
            ClientMessage::Refresh { token } => self.refresh(token.as_deref()).map(Answer::Now),
        });
        match outcome {
            Ok(Answer::Now(frames)) => {
                self.queue_all(frames);
                None
            }
            Ok(Answer::Later(pending)) => Some(pending),
            Err(error) => {
                self.send_error(error);
                None
            }
        }
    }

    /// Applies what a waiting request finished with.
    pub(super) fn apply_completed(&mut self, completed: Completed) {
        match completed {
            Completed::Joined(Ok((membership, subscription, frames))) => {
                // A refresh while the room loaded may have narrowed the token's rooms.
                if let Err(error) = self.check_room_allowed(membership.room().name()) {
                    drop((membership, subscription)); // leaves the room again
                    return self.send_error(error);
                }
                self.rooms.add(membership, subscription);
                self.queue_all(frames);
            }
            Completed::Joined(Err(error)) | Completed::Published(Err(error)) => {
                self.send_error(error)
            }
            Completed::Resumed {
                room,
                history,
                last_sent,
                feed,
            } => {
                if let Some(joined) = self.rooms.get_mut(&room) {
                    joined.last_id = joined.last_id.max(last_sent);
                    let presence = joined.room().presence_frame();
                    self.queue_all([history, presence]);
                }
                if let Some(feed) = feed {
                    self.rooms.restore_feed(feed);
                }
            }
            Completed::Published(Ok(published)) => self.published(published),
        }
    }

    /// Takes a token for a request of `kind` from the connection's rate limits (none when they
    /// are off). A refusal is answered with `rate_limited`; one past the refusal budget also
    /// marks the session for a 1008 close.
    pub(super) fn charge(&mut self, kind: RequestKind) -> Result<(), ProtocolError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check(kind).map_err(|refused| {
            self.abusive |= refused.abusive;
            let what = match kind {
                RequestKind::Chat => "messages",
                RequestKind::Membership => "joins and leaves",
            };
            ProtocolError::new(
                ErrorCode::RateLimited,
                format!("too many {what}: slow down and retry after retry_after_ms"),
            )
            .retry_after(refused.retry_after)
        })
    }

    /// The room a message names, normalised (see `protocol::names`).
    fn room_name(&self, room: Option<Cow<'_, str>>) -> Result<Arc<str>, ProtocolError> {
        let room = room.ok_or_else(|| {
            ProtocolError::new(ErrorCode::MissingRoom, "message needs a \"room\"")
        })?;
        let max = self.app.config.limits.max_room_name_chars;
        match normalize_name(NameKind::Room, &room, max) {
            Ok(name) => Ok(name.into()),
            Err(error) => {
                // Echoed so the client knows which request failed, but bounded.
                let shown: Arc<str> = room.chars().take(4 * max).collect::<String>().into();
                Err(ProtocolError::new(ErrorCode::InvalidRoom, error.to_string()).in_room(&shown))
            }
        }
    }

    fn history_request(&self, since: Option<u64>) -> HistoryRequest {
        let history = &self.app.config.history;
        HistoryRequest {
            since,
            max_history: history.max_history,
            resume_max: history.resume_max_messages,
        }
    }

    /// Joins a room: the joiner gets history (when there is any, or always for a resume), then
    /// presence.
    fn join(
        &mut self,
        room: Option<Cow<'_, str>>,
        since: Option<u64>,
    ) -> Result<Answer, ProtocolError> {
        let name = self.room_name(room)?;
        self.check_room_allowed(&name)?;
        let request = self.history_request(since);
        if let Some(joined) = self.rooms.get(&name) {
            // Joining twice is harmless: announce nothing, answer a resume request as asked, and
            // confirm with the current presence. Live frames the history covers are then
            // skipped, so nothing arrives twice.
            let room = joined.room().clone();
            if since.is_none() {
                return Ok(Answer::Now(vec![room.presence_frame()]));
            }
            let max_bytes = self.app.config.limits.max_server_frame_bytes;
            return Ok(match room.history_plan(request) {
                HistoryPlan::Ready {
                    messages,
                    recovered,
                } => {
                    let read = Read {
                        messages,
                        recovered,
                        left_out: false,
                    };
                    let joined = self.rooms.get_mut(&name).expect("checked above");
                    joined.last_id = joined.last_id.max(read.last_id());
                    Answer::Now(vec![read.frame(&name, max_bytes), room.presence_frame()])
                }
                plan @ HistoryPlan::FromStore { .. } => {
                    let app = self.app.clone();
                    let feed = self.rooms.take_feed(&name);
                    Answer::Later(Box::pin(async move {
                        let read = read_plan(&app, &room, plan).await;
                        Completed::Resumed {
                            last_sent: read.last_id(),
                            history: read.frame(&name, max_bytes),
                            room: name,
                            feed,
                        }
                    }))
                }
            });
        }
        let max_joined = self.app.config.limits.max_rooms_per_connection;
        if self.rooms.len() >= max_joined {
            return Err(ProtocolError::new(
                ErrorCode::TooManyJoined,
                format!("a connection may be in at most {max_joined} rooms"),
            )
            .in_room(&name));
        }
        let ticket = self.app.registry.join(&name, self.peer).map_err(|e| {
            let code = match e {
                JoinError::TooManyRooms(_) | JoinError::TooManyCreated(_) => {
                    ErrorCode::TooManyRooms
                }
            };
            ProtocolError::new(code, e.to_string()).in_room(&name)
        })?;
        let user = self.user.clone();
        if ticket.room().is_loaded() {
            let (membership, subscription) = ticket.subscribe(&user, request);
            if let HistoryPlan::Ready { .. } = subscription.history {
                let max_bytes = self.app.config.limits.max_server_frame_bytes;
                let (membership, subscription, frames) =
                    joiner_frames_ready(membership, subscription, since.is_some(), max_bytes);
                self.rooms.add(membership, subscription);
                return Ok(Answer::Now(frames));
            }
            let app = self.app.clone();
            return Ok(Answer::Later(Box::pin(async move {
                Completed::Joined(Ok(
                    joiner_frames(&app, membership, subscription, since).await
                ))
            })));
        }
        let app = self.app.clone();
        Ok(Answer::Later(Box::pin(async move {
            Completed::Joined(load_and_join(app, ticket, user, request).await)
        })))
    }

    fn chat(
        &mut self,
        room: Option<Cow<'_, str>>,
        text: Option<Cow<'_, str>>,
    ) -> Result<Answer, ProtocolError> {
        let name = self.room_name(room)?;
        let Some(joined) = self.rooms.get(&name) else {
            return Err(not_member(&name));
        };
        let text = self
            .app
            .config
            .limits
            .text_rules()
            .check(text.as_deref().unwrap_or_default())
            .map_err(|e| e.in_room(&name))?;
        let room = joined.room().clone();
        let bytes = ChatRecord::footprint(&name, &self.user, &text);
        let draft = Draft {
            user: self.user.clone(),
            text: text.into_owned().into_boxed_str(),
        };
        // The common case: the writer has room, so the message is published right here.
        if let Some(permit) = self.app.history.try_reserve(bytes) {
            let published = self.app.bus.publish(&room, permit, draft);
            self.published(published);
            return Ok(Answer::Now(Vec::new()));
        }
        // The store is behind: wait for a slot (backpressure) without stopping the connection.
        let app = self.app.clone();
        Ok(Answer::Later(Box::pin(async move {
            let published = match app.history.reserve(bytes).await {
                Ok(permit) => Ok(app.bus.publish(&room, permit, draft)),
                Err(e) => Err(history_unavailable(e).in_room(&name)),
            };
            Completed::Published(published)
        })))
    }

    /// The sender receives its own message through its subscription, like everyone else.
    fn published(&mut self, published: Published) {
        self.app
            .metrics
            .fanout_size
            .record(published.reached as f64);
    }

    fn leave(&mut self, room: Option<Cow<'_, str>>) -> Result<Answer, ProtocolError> {
        let name = self.room_name(room)?;
        if !self.rooms.leave(&name) {
            // The original broadcast a leave for any room named: anyone could forge one.
            return Err(not_member(&name));
        }
        Ok(Answer::Now(Vec::new()))
    }
}

fn not_member(room: &Arc<str>) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::NotMember,
        format!("not a member of room \"{room}\"; join it first"),
    )
    .in_room(room)
}
