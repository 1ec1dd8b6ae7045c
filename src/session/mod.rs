//! One WebSocket connection, from upgrade to close: a single task whose loop selects over the
//! connection (driven full duplex), the feeds of every room it joined, a request waiting on
//! something slow, the server's ping clock and shutdown.
//!
//! Frames from rooms are queued by reference and written together. The session takes frames
//! from its feeds only while its output is under OUTBOX_BUDGET_BYTES, so a client that reads
//! slowly lags its own feeds (and gets a `gap`) instead of growing the server's memory; it reads
//! the client's requests while its output is under twice that. A client whose socket takes
//! nothing for SEND_TIMEOUT_SECONDS while output waits is dropped.
//!
//! - [`commands`]: join, chat, leave — answered at once or by a future the loop drives.
//! - [`delivery`]: the joined rooms and their feeds, lag and gaps.
//! - [`close`]: ending a connection: close frames, read errors, the reasons.

mod close;
mod commands;
mod delivery;

use std::collections::VecDeque;
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
use crate::telemetry::CloseReason;
use crate::ws::{Event, Frame, WsConnection};

use commands::{Completed, Pending};
use delivery::{FeedItem, Rooms};

/// Requests read while one waits, before the session stops reading.
const MAX_WAITING_REQUESTS: usize = 16;

/// Runs a connection until it ends, then leaves every room it was in.
///
/// Not an `async fn`: its arguments would stay in the future beside the session they move into,
/// and every idle connection would carry that copy.
pub fn run(socket: WsConnection, app: Arc<App>, client: Client) -> impl Future<Output = ()> {
    app.metrics.connections_opened.increment(1);
    app.metrics.connections_open.increment(1.0);
    let mut session = Session {
        app,
        user: client.user,
        peer: client.ip,
        socket,
        rooms: Rooms::default(),
        last_heard: Instant::now(),
        busy: None,
        stall: None,
        oldest_unwritten: None,
    };
    async move {
        let reason = session.serve().await;
        session.busy = None; // a request still waiting is abandoned (a join withdrawn)
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
    /// A request waiting on something slow, and the ones read behind it. Boxed: idle sessions,
    /// which are most of them, carry one pointer.
    busy: Option<Box<Busy>>,
    /// Armed while output waits for a socket that takes nothing: since when, and the
    /// slow-client deadline. Boxed, as tokio timers are large and most sessions never stall.
    stall: Option<(Instant, Pin<Box<Sleep>>)>,
    /// Publish time of the oldest room frame queued and not yet written (fan-out latency).
    oldest_unwritten: Option<Instant>,
}

struct Busy {
    pending: Pending,
    waiting: VecDeque<Message>,
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
            self.arm_stall_timer();
            let queued = self.socket.queued_bytes();
            let read = queued < 2 * budget
                && self
                    .busy
                    .as_ref()
                    .is_none_or(|b| b.waiting.len() < MAX_WAITING_REQUESTS);
            let take_feeds = queued < budget && self.rooms.has_feeds();
            let step = tokio::select! {
                _ = &mut shutdown => return self.shutdown_close().await,
                event = self.socket.next_event(read) => self.on_event(event).await,
                Some(item) = self.rooms.next(), if take_feeds => self.deliver_batch(item).await,
                completed = waiting_request(&mut self.busy) => {
                    self.on_completed(completed);
                    self.write_now()
                }
                clock = &mut ping => {
                    ping.set(PingClock::tick(clock));
                    self.on_ping_tick(ping_every)
                }
                () = stalled(&mut self.stall) => Err(self.slow_client()),
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
            Event::Drained => {
                self.on_drained();
                return Ok(());
            }
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
            request @ (Message::Text(_) | Message::Binary(_)) => match &mut self.busy {
                // Behind a waiting request: answered in order, once it is done.
                Some(busy) => busy.waiting.push_back(request),
                None => self.on_request(request),
            },
        }
        self.write_now()
    }

    /// Answers one request; a slow one makes the session busy until it completes.
    fn on_request(&mut self, request: Message) {
        let pending = match request {
            Message::Text(text) => self.handle_text(&text),
            _ => {
                self.app.metrics.received_invalid.increment(1);
                self.send_error(ProtocolError::new(
                    ErrorCode::BinaryUnsupported,
                    "binary frames are not supported; send JSON text frames",
                ));
                None
            }
        };
        if let Some(pending) = pending {
            self.busy = Some(Box::new(Busy {
                pending,
                waiting: VecDeque::new(),
            }));
        }
    }

    /// Applies a completed request, then answers the ones waiting behind it until one waits.
    fn on_completed(&mut self, completed: Completed) {
        let mut waiting = self.busy.take().map(|b| b.waiting).unwrap_or_default();
        self.complete(completed);
        while let Some(request) = waiting.pop_front() {
            self.on_request(request);
            if let Some(busy) = &mut self.busy {
                busy.waiting = waiting;
                return;
            }
        }
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
        let mut delivered = 0usize;
        let mut taken = 0usize;
        let mut next = Some(first);
        while let Some(item) = next {
            let to_write = self.rooms.frames_for(item, &self.app.metrics);
            if let Some(at) = to_write.published_at {
                self.oldest_unwritten = Some(self.oldest_unwritten.map_or(at, |t| t.min(at)));
            }
            for frame in to_write.frames.into_iter().flatten() {
                self.socket.queue(frame);
                delivered += 1;
            }
            taken += 1;
            if taken >= max_batch || self.socket.queued_bytes() >= budget {
                break;
            }
            next = self.rooms.ready_now().await;
        }
        self.app.metrics.deliveries.increment(delivered as u64);
        self.write_now()
    }

    /// Writes what the socket takes now; the rest goes out as the connection becomes writable.
    fn write_now(&mut self) -> Result<(), CloseReason> {
        match self.socket.try_flush() {
            Ok(true) => {
                self.on_drained();
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(_) => Err(CloseReason::Reset),
        }
    }

    /// Everything queued is written: sample the fan-out latency of its oldest room frame.
    fn on_drained(&mut self) {
        if let Some(oldest) = self.oldest_unwritten.take() {
            self.app
                .metrics
                .fanout_latency
                .record(oldest.elapsed().as_secs_f64());
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
fn waiting_request(busy: &mut Option<Box<Busy>>) -> impl Future<Output = Completed> + '_ {
    std::future::poll_fn(move |cx| match busy {
        Some(busy) => busy.pending.as_mut().poll(cx),
        None => Poll::Pending,
    })
}

/// Completes when the slow-client deadline passes; never while none is armed.
fn stalled(stall: &mut Option<(Instant, Pin<Box<Sleep>>)>) -> impl Future<Output = ()> + '_ {
    std::future::poll_fn(move |cx| match stall {
        Some((_, deadline)) => deadline.as_mut().poll(cx),
        None => Poll::Pending,
    })
}
