//! One WebSocket connection, from upgrade to close: a single task whose loop selects over the
//! connection (driven full duplex), the feeds of every room it joined, a request waiting on
//! something slow, the server's ping clock and shutdown.
//!
//! Frames from rooms are queued by reference and written together. The session takes frames
//! from its feeds only while its output is under OUTBOX_BUDGET_BYTES, so a client that reads
//! slowly lags its own feeds (and gets a `gap`) instead of growing the server's memory; it
//! answers the client's requests while its output is under twice that, and keeps reading either
//! way (see [`backlog`]). A client whose socket takes nothing for SEND_TIMEOUT_SECONDS while
//! output waits is dropped.
//!
//! - [`commands`]: join, chat, leave — rate-limited, then answered at once or by a future the
//!   loop drives.
//! - [`history`]: a joiner's history, from memory or the store, in one bounded frame.
//! - [`backlog`]: requests read but not answered yet, in order.
//! - [`delivery`]: the joined rooms and their feeds, lag and gaps.
//! - [`close`]: ending a connection: close frames, read errors, the reasons.

mod backlog;
mod close;
mod commands;
mod delivery;
mod history;
mod identity;

use std::future::Future;
use std::net::IpAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use tokio::time::Sleep;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::admission::Client;
use crate::app::App;
use crate::ping::PingClock;
use crate::protocol::{frames, ErrorCode, ProtocolError};
use crate::ratelimit::{BudgetKey, RateLease, RequestKind};
use crate::telemetry::CloseReason;
use crate::ws::{Event, Frame, WsConnection};

use backlog::Backlog;
use commands::Completed;
use delivery::{FeedItem, Rooms, ToWrite};

/// Runs a connection until it ends, then leaves every room it was in.
///
/// Not an `async fn`: its arguments would stay in the future beside the session they move into,
/// and every idle connection would carry that copy.
///
/// `greeting` is written first: the `welcome` frame with a resume ticket, when the client asked.
pub fn run(
    mut socket: WsConnection,
    app: Arc<App>,
    client: Client,
    greeting: Option<Frame>,
) -> impl Future<Output = ()> {
    app.metrics.connections_opened.increment(1);
    app.metrics.connections_open.increment(1.0);
    socket.record_fanout_latency(app.metrics.fanout_latency.clone());
    if let Some(greeting) = greeting {
        socket.queue(greeting);
    }
    // In token mode the name is proven: all of a user's connections share one budget.
    let budget = match client.grant {
        Some(_) => BudgetKey::User(client.user.clone()),
        None => BudgetKey::NameFrom(client.user.clone(), client.ip),
    };
    let limiter = app.rate_limits.for_connection(budget);
    let mut session = Session {
        app,
        user: client.user,
        peer: client.ip,
        socket,
        rooms: Rooms::default(),
        last_heard: Instant::now(),
        backlog: None,
        stall: None,
        limiter,
        abusive: false,
        identity: None,
    };
    if let Some(grant) = client.grant {
        let leeway = session.app.config.auth.leeway();
        session.identity = Some(Box::new(identity::Identity::new(grant, leeway)));
    }
    async move {
        let reason = session.serve().await;
        session.backlog = None; // a request still waiting is abandoned (a join withdrawn)
        session.rooms.leave_all();
        tracing::debug!(user = %session.user, reason = reason.as_str(), "connection closed");
        session.app.metrics.connection_closed(reason);
        session.app.metrics.connections_open.decrement(1.0);
    }
}

struct Session {
    app: Arc<App>,
    user: Arc<str>,
    peer: Option<IpAddr>,
    socket: WsConnection,
    rooms: Rooms,
    last_heard: Instant,
    /// Requests read but not answered yet. Boxed: idle sessions, which are most of them, carry
    /// one pointer.
    backlog: Option<Box<Backlog>>,
    /// Armed while output waits for a socket that takes nothing: since when, and the
    /// slow-client deadline. Boxed, as tokio timers are large and most sessions never stall.
    stall: Option<(Instant, Pin<Box<Sleep>>)>,
    /// The request rate limits of the connection's budget (see `ratelimit`); `None` when
    /// RATE_LIMITS=off. One pointer in every session.
    limiter: Option<RateLease>,
    /// Refused past the refusal budget: the loop closes the connection with 1008.
    abusive: bool,
    /// Token mode: what the token allows and when it expires.
    identity: Option<Box<identity::Identity>>,
}

impl Session {
    async fn serve(&mut self) -> CloseReason {
        if *self.app.shutdown.borrow() {
            return self.shutdown_close().await;
        }
        let ping_every = self.app.config.connection.ping_interval();
        let budget = self.app.config.connection.outbox_budget_bytes;
        let mut ping = pin!(PingClock::tick(self.app.ping_clock.subscribe()));
        // One shutdown future for the whole session: a new one per loop would register with
        // (and unregister from) the channel shared by every session, each time a frame goes out.
        let mut shutdown = pin!(self.app.shutting_down());
        loop {
            if let Err(reason) = self.answer_backlog() {
                return reason;
            }
            if self.abusive {
                return Box::pin(self.rate_limit_close()).await;
            }
            self.arm_stall_timer();
            let read = self.backlog.as_ref().is_none_or(|b| !b.is_full());
            let take_feeds = self.socket.queued_bytes() < budget && self.rooms.has_feeds();
            let step = tokio::select! {
                _ = &mut shutdown => return self.shutdown_close().await,
                event = self.socket.next_event(read) => self.on_event(event).await,
                Some(item) = self.rooms.next(), if take_feeds => self.deliver_batch(item).await,
                completed = waiting_request(&mut self.backlog) => {
                    if let Some(backlog) = &mut self.backlog {
                        backlog.pending = None;
                    }
                    self.apply_completed(completed);
                    self.write_now()
                }
                clock = &mut ping => {
                    ping.set(PingClock::tick(clock));
                    self.on_ping_tick(ping_every)
                }
                () = stalled(&mut self.stall) => self.on_stall_deadline(),
                () = identity::expired(&mut self.identity) => {
                    if !self.token_still_valid() {
                        return self.token_expired_close().await;
                    }
                    self.write_now()
                }
            };
            if let Err(reason) = step {
                return reason;
            }
        }
    }

    async fn shutdown_close(&mut self) -> CloseReason {
        let close = self.close(
            CloseCode::Away,
            "server shutting down",
            CloseReason::Shutdown,
        );
        Box::pin(close).await
    }

    async fn on_event(&mut self, event: Event) -> Result<(), CloseReason> {
        let message = match event {
            Event::Message(message) => message,
            // The loop re-reads the gates: room feeds and waiting requests may go on.
            Event::Drained => return Ok(()),
            Event::Closed => return Err(CloseReason::ClientClose),
            Event::WriteFailed(_) => return Err(CloseReason::Reset),
            // Boxed, like every close: idle sessions must not carry that state inline.
            Event::ReadFailed(error) => return Err(Box::pin(self.on_read_error(error)).await),
        };
        self.last_heard = Instant::now();
        match message {
            Message::Close(_) => return Err(Box::pin(self.on_client_close()).await),
            // tungstenite has queued the pong for a ping; raw frames are never read.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            request @ (Message::Text(_) | Message::Binary(_)) => {
                if self.backlog.is_none() && self.may_answer() {
                    self.on_request(request);
                } else {
                    // Behind a waiting request, or the client is not reading its answers.
                    let max_bytes = self.app.config.limits.max_frame_bytes;
                    self.backlog
                        .get_or_insert_with(|| Box::new(Backlog::new(max_bytes)))
                        .push(request);
                }
            }
        }
        self.write_now()
    }

    /// Whether the client reads its answers well enough to be given more.
    fn may_answer(&self) -> bool {
        self.socket.queued_bytes() < 2 * self.app.config.connection.outbox_budget_bytes
    }

    /// Answers one request; a slow one waits in the backlog until it completes.
    fn on_request(&mut self, request: Message) {
        let pending = match request {
            Message::Text(text) => self.handle_text(&text),
            _ => {
                self.app.metrics.received_invalid.increment(1);
                let refusal = self.charge(RequestKind::Chat).err();
                self.send_error(refusal.unwrap_or_else(|| {
                    ProtocolError::new(
                        ErrorCode::BinaryUnsupported,
                        "binary frames are not supported; send JSON text frames",
                    )
                }));
                None
            }
        };
        if let Some(pending) = pending {
            let max_bytes = self.app.config.limits.max_frame_bytes;
            self.backlog
                .get_or_insert_with(|| Box::new(Backlog::new(max_bytes)))
                .pending = Some(pending);
        }
    }

    /// Answers waiting requests in order while nothing is waited on and the client reads.
    fn answer_backlog(&mut self) -> Result<(), CloseReason> {
        let mut answered = false;
        // Nothing more is answered for a client about to be closed for abuse.
        while self.may_answer() && !self.abusive {
            let Some(request) = self.backlog.as_mut().and_then(|b| b.next()) else {
                break;
            };
            self.on_request(request);
            answered = true;
        }
        if self.backlog.as_ref().is_some_and(|b| b.is_empty()) {
            self.backlog = None;
        }
        if answered {
            self.write_now()?;
        }
        Ok(())
    }

    /// The slow-client deadline passed: drop the client, unless a write made progress since the
    /// deadline was armed (the loop then arms it again from the new stall).
    fn on_stall_deadline(&mut self) -> Result<(), CloseReason> {
        let armed = self.stall.as_ref().map(|(since, _)| *since);
        if self.socket.stalled_since().is_some() && self.socket.stalled_since() == armed {
            return Err(self.slow_client());
        }
        self.stall = None;
        Ok(())
    }

    fn on_ping_tick(&mut self, every: std::time::Duration) -> Result<(), CloseReason> {
        if self.last_heard.elapsed() >= every * 2 {
            return Err(CloseReason::Timeout);
        }
        self.socket.queue_ping();
        self.write_now()
    }

    /// Queues `first` and every other frame ready in any joined room (up to MAX_BATCH_FRAMES, or
    /// until the output budget is reached), then writes them together.
    async fn deliver_batch(&mut self, first: FeedItem) -> Result<(), CloseReason> {
        let connection = &self.app.config.connection;
        let (max_batch, budget) = (connection.max_batch_frames, connection.outbox_budget_bytes);
        let mut delivered = 0u64;
        let mut taken = 0usize;
        let mut next = Some(first);
        while let Some(item) = next {
            match self.rooms.frames_for(item, &self.app.metrics) {
                ToWrite::Nothing => {}
                ToWrite::Room(frame) => {
                    self.socket.queue_room_frame(frame);
                    delivered += 1;
                }
                ToWrite::Lagged { gap, presence } => {
                    for frame in gap.into_iter().chain([presence]) {
                        self.socket.queue(frame);
                        delivered += 1;
                    }
                }
            }
            taken += 1;
            if taken >= max_batch || self.socket.queued_bytes() >= budget {
                break;
            }
            next = self.rooms.ready_now().await;
        }
        self.app.metrics.deliveries.increment(delivered);
        self.write_now()
    }

    /// Writes what the socket takes now; the rest goes out as the connection becomes writable.
    fn write_now(&mut self) -> Result<(), CloseReason> {
        match self.socket.try_flush() {
            Ok(_) => Ok(()),
            Err(_) => Err(CloseReason::Reset),
        }
    }

    /// Keeps the slow-client deadline in step with the connection: armed from the moment the
    /// socket stopped taking output, moved whenever a write makes progress, gone when it drains.
    fn arm_stall_timer(&mut self) {
        let Some(since) = self.socket.stalled_since() else {
            self.stall = None;
            return;
        };
        let deadline =
            tokio::time::Instant::from(since) + self.app.config.connection.send_timeout();
        match &mut self.stall {
            Some((armed, _)) if *armed == since => {}
            Some((armed, sleep)) => {
                *armed = since;
                sleep.as_mut().reset(deadline);
            }
            None => self.stall = Some((since, Box::pin(tokio::time::sleep_until(deadline)))),
        }
    }

    /// Queues an error frame for the client, unless it is not reading its answers anyway.
    fn send_error(&mut self, error: ProtocolError) {
        let metrics = &self.app.metrics;
        if self.socket.queued_bytes() >= 2 * self.app.config.connection.outbox_budget_bytes {
            metrics.error_frames_dropped.increment(1);
            return;
        }
        metrics.error_frame(error.code.as_str());
        metrics.deliveries.increment(1);
        self.socket.queue(frames::error(&error));
    }

    fn queue_all(&mut self, frames: impl IntoIterator<Item = Frame>) {
        for frame in frames {
            self.app.metrics.deliveries.increment(1);
            self.socket.queue(frame);
        }
    }
}

/// Completes when the waiting request does; never while there is none.
fn waiting_request(backlog: &mut Option<Box<Backlog>>) -> impl Future<Output = Completed> + '_ {
    std::future::poll_fn(
        move |cx| match backlog.as_mut().and_then(|b| b.pending.as_mut()) {
            Some(pending) => pending.as_mut().poll(cx),
            None => Poll::Pending,
        },
    )
}

/// Completes when the slow-client deadline passes; never while none is armed.
fn stalled(stall: &mut Option<(Instant, Pin<Box<Sleep>>)>) -> impl Future<Output = ()> + '_ {
    std::future::poll_fn(move |cx| match stall {
        Some((_, deadline)) => deadline.as_mut().poll(cx),
        None => Poll::Pending,
    })
}
