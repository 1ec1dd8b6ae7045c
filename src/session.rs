//! One WebSocket connection: a single task that selects over the client's socket, the feeds of
//! every room it joined, the server's ping clock and shutdown.
//!
//! Frames from rooms are written in batches: every frame that is ready is queued (by reference),
//! then all of them go out in one write. A feed that lags behind its room's buffer never ends the
//! session silently and never slows the room: the client gets a `gap` frame naming the chat ids it
//! missed, a fresh `presence`, and continues from the live edge.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamMap;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::app::App;
use crate::history::HistoryError;
use crate::ping::PingClock;
use crate::protocol::{
    parse_client_message, validate_name, ChatRecord, ClientMessage, ErrorCode, Frame, ProtocolError,
};
use crate::room::{HistoryPlan, HistoryRequest, Room};
use crate::telemetry::CloseReason;
use crate::ws::WsConnection;

/// Longest a close frame may take to go out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

type FeedItem = (Arc<str>, Result<Frame, BroadcastStreamRecvError>);

/// Runs a connection until it ends, then leaves every room it was in.
///
/// Not an `async fn`: its arguments would stay in the future beside the session they move into,
/// and every idle connection would carry that copy.
pub fn run(socket: WsConnection, app: Arc<App>, user: Arc<str>) -> impl Future<Output = ()> {
    app.metrics.connections_opened.increment(1);
    app.metrics.connections_open.increment(1.0);
    let mut session = Session {
        send_timeout: app.config.send_timeout(),
        app,
        user,
        socket,
        feeds: StreamMap::new(),
        joined: JoinedRooms::default(),
        last_heard: Instant::now(),
    };
    async move {
        let reason = session.serve().await;
        session.leave_all();
        tracing::debug!(user = %session.user, reason = reason.as_str(), "connection closed");
        session.app.metrics.connection_closed(reason);
        session.app.metrics.connections_open.decrement(1.0);
    }
}

struct Session {
    app: Arc<App>,
    user: Arc<str>,
    socket: WsConnection,
    /// Receivers of every joined room, keyed by room name.
    feeds: StreamMap<Arc<str>, BroadcastStream<Frame>>,
    joined: JoinedRooms,
    last_heard: Instant,
    /// SEND_TIMEOUT_SECONDS, converted once.
    send_timeout: Duration,
}

/// The rooms a session is in: a few at most (MAX_ROOMS_PER_CONNECTION), so a list beats a hash
/// map — and a delivery finds its room by pointer, without hashing the name.
#[derive(Default)]
struct JoinedRooms(Vec<Joined>);

impl JoinedRooms {
    fn get(&self, name: &str) -> Option<&Joined> {
        self.0.iter().find(|j| &*j.name == name)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut Joined> {
        self.0.iter_mut().find(|j| &*j.name == name)
    }

    /// The room a feed item came from; `key` is the very `name` the feed was registered under.
    fn feed_mut(&mut self, key: &Arc<str>) -> Option<&mut Joined> {
        self.0.iter_mut().find(|j| Arc::ptr_eq(&j.name, key))
    }

    fn add(&mut self, joined: Joined) {
        self.0.push(joined);
    }

    fn remove(&mut self, name: &str) -> Option<Joined> {
        let at = self.0.iter().position(|j| &*j.name == name)?;
        Some(self.0.swap_remove(at))
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn take_all(&mut self) -> Vec<Joined> {
        std::mem::take(&mut self.0)
    }
}

struct Joined {
    /// Also the key of this room's feed.
    name: Arc<str>,
    room: Arc<Room>,
    /// The last chat id this client was sent (or skipped past with a gap frame).
    last_id: u64,
}

impl Session {
    async fn serve(&mut self) -> CloseReason {
        if *self.app.shutdown.borrow() {
            return self
                .close(
                    CloseCode::Away,
                    "server shutting down",
                    CloseReason::Shutdown,
                )
                .await;
        }
        let ping_every = self.app.config.ping_interval();
        let mut ping = pin!(PingClock::tick(self.app.ping_clock.subscribe()));
        // One shutdown future for the whole session: a new one per loop would register with
        // (and unregister from) the channel shared by every session, each time a frame goes out.
        let mut shutdown = pin!(self.app.shutting_down());
        loop {
            let step = tokio::select! {
                _ = &mut shutdown => {
                    return self.close(CloseCode::Away, "server shutting down", CloseReason::Shutdown).await;
                }
                // Boxed: handling a client message (a chat waits for the history writer) needs
                // more state than everything else here, and idle sessions would carry it inline.
                incoming = self.socket.recv() => Box::pin(self.on_incoming(incoming)).await,
                Some(item) = self.feeds.next(), if !self.feeds.is_empty() => self.deliver_batch(item).await,
                clock = &mut ping => {
                    ping.set(PingClock::tick(clock));
                    self.on_ping_tick(ping_every).await
                }
            };
            if let Err(reason) = step {
                return reason;
            }
        }
    }

    async fn on_incoming(
        &mut self,
        incoming: Option<Result<Message, WsError>>,
    ) -> Result<(), CloseReason> {
        let message = match incoming {
            None => return Err(CloseReason::ClientClose),
            Some(Err(error)) => return Err(self.on_socket_error(error).await),
            Some(Ok(message)) => message,
        };
        self.last_heard = Instant::now();
        match message {
            Message::Text(text) => self.handle_text(&text).await,
            Message::Binary(_) => {
                self.app.metrics.received_invalid.increment(1);
                self.send_error(ProtocolError::new(
                    ErrorCode::BinaryUnsupported,
                    "binary frames are not supported; send JSON text frames",
                ));
            }
            Message::Close(_) => {
                // tungstenite has queued the close reply; send it to complete the handshake (a
                // client that does not read it is not a slow client, only a gone one).
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.socket.flush()).await;
                return Err(CloseReason::ClientClose);
            }
            // tungstenite has queued the pong for a ping; raw frames are never read.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
        self.flush().await
    }

    /// Maps a read error to a close reason, telling the client why when it can still hear it.
    async fn on_socket_error(&mut self, error: WsError) -> CloseReason {
        match error {
            WsError::Capacity(e) => {
                let reason = format!(
                    "message too big: {e} (limit {} bytes)",
                    self.app.config.max_frame_bytes
                );
                self.close(CloseCode::Size, &reason, CloseReason::TooLarge)
                    .await
            }
            WsError::Protocol(e) => {
                self.close(
                    CloseCode::Protocol,
                    &e.to_string(),
                    CloseReason::ProtocolError,
                )
                .await
            }
            WsError::Utf8(_) => {
                self.close(
                    CloseCode::Invalid,
                    "invalid UTF-8",
                    CloseReason::ProtocolError,
                )
                .await
            }
            WsError::ConnectionClosed | WsError::AlreadyClosed => CloseReason::ClientClose,
            _ => CloseReason::Reset,
        }
    }

    async fn on_ping_tick(&mut self, every: Duration) -> Result<(), CloseReason> {
        if self.last_heard.elapsed() >= every * 2 {
            return Err(CloseReason::Timeout);
        }
        self.socket.queue_ping();
        self.flush().await
    }

    /// Handles one client message, queueing the frames that answer it.
    async fn handle_text(&mut self, text: &str) {
        let metrics = &self.app.metrics;
        let outcome = match parse_client_message(text) {
            Err(error) => {
                metrics.received_invalid.increment(1);
                Err(error)
            }
            Ok(ClientMessage::Join { room, since }) => {
                metrics.received_join.increment(1);
                // Boxed: joining may wait on the store, and that state machine is kilobytes that
                // every idle session would otherwise carry inline.
                Box::pin(self.join(room, since)).await
            }
            Ok(ClientMessage::Chat { room, text }) => {
                metrics.received_chat.increment(1);
                self.chat(room, text).await
            }
            Ok(ClientMessage::Leave { room }) => {
                metrics.received_leave.increment(1);
                self.leave(room)
            }
        };
        match outcome {
            Ok(frames) => {
                self.app.metrics.deliveries.increment(frames.len() as u64);
                for frame in frames {
                    self.socket.queue(frame);
                }
            }
            Err(error) => self.send_error(error),
        }
    }

    fn room_name(&self, room: Option<String>) -> Result<Arc<str>, ProtocolError> {
        let room = room.ok_or_else(|| {
            ProtocolError::new(ErrorCode::MissingRoom, "message needs a \"room\"")
        })?;
        let room: Arc<str> = room.into();
        validate_name("room", &room, self.app.config.max_room_name_chars).map_err(|message| {
            ProtocolError::new(ErrorCode::InvalidRoom, message).in_room(&room)
        })?;
        Ok(room)
    }

    /// Joins a room; returns the frames for the joiner (history, then presence).
    async fn join(
        &mut self,
        room: Option<String>,
        since: Option<u64>,
    ) -> Result<Vec<Frame>, ProtocolError> {
        let name = self.room_name(room)?;
        let config = &self.app.config;
        let request = HistoryRequest {
            since,
            max_history: config.max_history,
            resume_max: config.resume_max_messages,
        };
        if let Some(joined) = self.joined.get(&name) {
            // Joining twice is harmless: announce nothing, answer a resume request as asked, and
            // confirm with the current presence. Live frames already covered by the history are
            // then skipped, so nothing arrives twice.
            let room = joined.room.clone();
            let mut frames = Vec::with_capacity(2);
            if since.is_some() {
                let plan = room.history_plan(request);
                let (history, last_sent) = history_frame(&self.app, &room, plan, true).await;
                frames.extend(history);
                if let Some(joined) = self.joined.get_mut(&name) {
                    joined.last_id = joined.last_id.max(last_sent);
                }
            }
            frames.push(room.presence_frame());
            return Ok(frames);
        }
        if self.joined.len() >= config.max_rooms_per_connection {
            return Err(ProtocolError::new(
                ErrorCode::TooManyJoined,
                format!(
                    "a connection may be in at most {} rooms",
                    config.max_rooms_per_connection
                ),
            )
            .in_room(&name));
        }
        let room = self.app.registry.join(&name).map_err(|e| {
            ProtocolError::new(ErrorCode::TooManyRooms, e.to_string()).in_room(&name)
        })?;
        if let Err(error) = room.ensure_loaded(&self.app.store, &self.app.history).await {
            self.app.registry.abandon_join(&room);
            return Err(history_unavailable(error).in_room(&name));
        }
        let subscription = room.subscribe(&self.user, request);
        self.feeds
            .insert(name.clone(), BroadcastStream::new(subscription.receiver));
        self.joined.add(Joined {
            name: name.clone(),
            room: room.clone(),
            last_id: subscription.last_id,
        });
        self.app.metrics.room_joins.increment(1);

        let mut frames = Vec::with_capacity(2);
        let (history, _) =
            history_frame(&self.app, &room, subscription.history, since.is_some()).await;
        frames.extend(history);
        frames.push(subscription.presence);
        Ok(frames)
    }

    async fn chat(
        &mut self,
        room: Option<String>,
        text: Option<String>,
    ) -> Result<Vec<Frame>, ProtocolError> {
        let name = self.room_name(room)?;
        let Some(joined) = self.joined.get(&name) else {
            return Err(not_member(&name));
        };
        let text = text.unwrap_or_default();
        if text.trim().is_empty() {
            return Err(
                ProtocolError::new(ErrorCode::EmptyText, "chat text must not be empty")
                    .in_room(&name),
            );
        }
        let max = self.app.config.max_text_chars;
        if text.chars().count() > max {
            return Err(ProtocolError::new(
                ErrorCode::TextTooLong,
                format!("chat text is longer than {max} characters"),
            )
            .in_room(&name));
        }
        let room = joined.room.clone();
        let (_, reached) = room
            .publish(&self.app.history, &self.user, text.into_boxed_str())
            .await
            .map_err(|e| history_unavailable(e).in_room(&name))?;
        self.app.metrics.fanout_size.record(reached as f64);
        // The sender receives its own message through its subscription, like everyone else.
        Ok(Vec::new())
    }

    fn leave(&mut self, room: Option<String>) -> Result<Vec<Frame>, ProtocolError> {
        let name = self.room_name(room)?;
        let Some(joined) = self.joined.remove(&name) else {
            // The original broadcast a leave for any room named: anyone could forge one.
            return Err(not_member(&name));
        };
        self.feeds.remove(&name);
        self.app.registry.leave(&joined.room, &self.user);
        self.app.metrics.room_leaves.increment(1);
        Ok(Vec::new())
    }

    fn leave_all(&mut self) {
        for joined in self.joined.take_all() {
            self.app.registry.leave(&joined.room, &self.user);
            self.app.metrics.room_leaves.increment(1);
        }
        self.feeds.clear();
    }

    /// Writes `first` and every other frame already waiting in any joined room, then flushes once
    /// (or early, whenever WS_WRITE_BUFFER_BYTES are queued).
    async fn deliver_batch(&mut self, first: FeedItem) -> Result<(), CloseReason> {
        let max_batch = self.app.config.max_batch_frames;
        let write_early_at = self.app.config.ws_write_buffer_bytes;
        let mut delivered = 0usize;
        let mut oldest: Option<Instant> = None;
        let mut next = Some(first);
        while let Some((room, item)) = next {
            for frame in self.frames_for(&room, item).into_iter().flatten() {
                // Latency is sampled from room frames (chat, join, leave), not from the gap and
                // presence frames this session made itself.
                if frame.chat_id() != 0 || oldest.is_none() {
                    let at = frame.published_at();
                    oldest = Some(oldest.map_or(at, |t| t.min(at)));
                }
                self.socket.queue(frame);
                delivered += 1;
            }
            if delivered >= max_batch {
                break;
            }
            if self.socket.queued_bytes() >= write_early_at {
                self.flush().await?;
            }
            next = ready_now(&mut self.feeds).await;
        }
        self.flush().await?;
        let metrics = &self.app.metrics;
        metrics.deliveries.increment(delivered as u64);
        if let Some(oldest) = oldest {
            metrics
                .fanout_latency
                .record(oldest.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// What to write for one item of a room's feed: the frame itself, nothing (a chat frame the
    /// client was already told it missed), or — after a lag — a gap frame and fresh presence.
    /// A fixed-size array, not a Vec: this runs once per delivery.
    fn frames_for(
        &mut self,
        room: &Arc<str>,
        item: Result<Frame, BroadcastStreamRecvError>,
    ) -> [Option<Frame>; 2] {
        let Some(joined) = self.joined.feed_mut(room) else {
            return [None, None];
        };
        match item {
            Ok(frame) if frame.chat_id() == 0 => [Some(frame), None],
            Ok(frame) if frame.chat_id() <= joined.last_id => [None, None],
            Ok(frame) => {
                joined.last_id = frame.chat_id();
                [Some(frame), None]
            }
            Err(BroadcastStreamRecvError::Lagged(lost)) => {
                let metrics = &self.app.metrics;
                metrics.lagged_receivers.increment(1);
                metrics.lag_lost_frames.increment(lost);
                // Skip to the live edge: everything up to the room's last id is reported as
                // missed (and skipped if still buffered), so the client catches up at once.
                let upto = joined.room.last_id();
                let gap =
                    (upto > joined.last_id).then(|| Frame::gap(room, joined.last_id + 1, upto));
                joined.last_id = joined.last_id.max(upto);
                [gap, Some(joined.room.presence_frame())]
            }
        }
    }

    /// Queues an error frame for the client.
    fn send_error(&mut self, error: ProtocolError) {
        self.app.metrics.error_frame(error.code.as_str());
        self.app.metrics.deliveries.increment(1);
        self.socket.queue(Frame::error(&error));
    }

    /// Writes everything queued, within SEND_TIMEOUT_SECONDS.
    async fn flush(&mut self) -> Result<(), CloseReason> {
        // Almost always the socket takes it all at once: then no timer is armed at all.
        match self.socket.try_flush() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(_) => return Err(CloseReason::Reset),
        }
        // The socket is full: wait for it, but not past the send timeout, and not past the start
        // of shutdown either (a stalled client must not hold the server up for a whole timeout).
        let stopping = self.app.shutting_down();
        tokio::select! {
            flushed = tokio::time::timeout(self.send_timeout, self.socket.flush()) => match flushed {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(CloseReason::Reset),
                Err(_) => Err(self.slow_client()),
            },
            _ = stopping => Err(CloseReason::Shutdown),
        }
    }

    fn slow_client(&self) -> CloseReason {
        self.app.metrics.slow_clients_disconnected.increment(1);
        tracing::info!(user = %self.user, "dropping a client whose socket stopped draining");
        CloseReason::SlowClient
    }

    /// Sends a close frame (best effort, bounded by the send timeout) and returns `reason`.
    async fn close(&mut self, code: CloseCode, reason: &str, outcome: CloseReason) -> CloseReason {
        self.socket.queue_close(CloseFrame {
            code,
            reason: truncate_reason(reason).into(),
        });
        // A peer that is not reading must not hold up shutdown for a whole send timeout.
        let timeout = self.send_timeout.min(CLOSE_TIMEOUT);
        if let Ok(Ok(())) = tokio::time::timeout(timeout, self.socket.flush()).await {
            // Boxed: only closing sessions need this state, not every idle one.
            Box::pin(self.socket.linger(timeout)).await;
        }
        outcome
    }
}

/// The `history` frame for a join: sent when there are messages, or always for a resume (so the
/// client learns whether it `recovered`), with the id of the last message in it (0 if none).
async fn history_frame(
    app: &App,
    room: &Room,
    plan: HistoryPlan,
    resume: bool,
) -> (Option<Frame>, u64) {
    let (messages, recovered) = match plan {
        HistoryPlan::Ready {
            messages,
            recovered,
        } => (messages, recovered),
        HistoryPlan::FromStore { after, upto } => history_from_store(app, room, after, upto).await,
    };
    let last_sent = messages.last().map_or(0, |m| m.id);
    let frame =
        (resume || !messages.is_empty()).then(|| Frame::history(room.name(), &messages, recovered));
    (frame, last_sent)
}

/// Reads a resume range from the store. If the store cannot serve all of it (pruned, or
/// unavailable), says so with `recovered: false` and the latest messages instead.
async fn history_from_store(
    app: &App,
    room: &Room,
    after: u64,
    upto: u64,
) -> (Vec<Arc<ChatRecord>>, Option<bool>) {
    let fetched = async {
        app.history.flush().await.ok()?;
        app.store.range(room.name(), after, upto).await.ok()
    }
    .await;
    match fetched {
        Some(records) if records.len() as u64 == upto - after => {
            (records.into_iter().map(Arc::new).collect(), Some(true))
        }
        // Only up to `upto`: later messages reach the client live, through its subscription.
        _ => (room.latest(app.config.max_history, upto), Some(false)),
    }
}

/// The next feed item if one is ready right now, without waiting.
async fn ready_now(feeds: &mut StreamMap<Arc<str>, BroadcastStream<Frame>>) -> Option<FeedItem> {
    std::future::poll_fn(|cx| match feeds.poll_next_unpin(cx) {
        Poll::Ready(item) => Poll::Ready(item),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// Close reasons must fit a control frame (125 bytes including the 2-byte code).
fn truncate_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

fn not_member(room: &Arc<str>) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::NotMember,
        format!("not a member of room \"{room}\"; join it first"),
    )
    .in_room(room)
}

fn history_unavailable(error: HistoryError) -> ProtocolError {
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
