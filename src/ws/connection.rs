//! One upgraded WebSocket connection over a raw TCP stream, driven full duplex.
//!
//! [`WsConnection::next_event`] is the one driver: it writes queued output whenever the socket
//! can take it and reads whenever input is ready, so a client whose socket is full still has its
//! messages, pongs and close frames read, and a client that writes before it reads never
//! deadlocks with the server. Frames wait in an [`Outbox`] by reference and go out in as few
//! system calls as the socket allows (a lone frame is one `write`, several one `writev`).
//! Incoming bytes go through tungstenite's [`WebSocketContext`], reading straight from the socket;
//! the control replies it produces (pong, close) join the same outbox, in order.

use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::task::Poll;
use std::time::{Duration, Instant};

use metrics::Histogram;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::{
    CloseFrame, Role, WebSocketConfig, WebSocketContext,
};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::outbox::Outbox;
use super::Frame;

/// What [`WsConnection::next_event`] saw.
#[derive(Debug)]
pub enum Event {
    /// A message from the client (control replies it needs are already queued).
    Message(Message),
    /// A write emptied the outbox.
    Drained,
    /// The client's side of the connection ended.
    Closed,
    /// Reading failed: a protocol violation, a frame too big, bad UTF-8, a reset.
    ReadFailed(WsError),
    /// Writing failed (or waiting to write did): the connection is gone.
    WriteFailed(io::Error),
}

/// The server end of an open WebSocket connection.
pub struct WsConnection {
    stream: TcpStream,
    /// Tungstenite's protocol state, used for reading and for control frames.
    context: WebSocketContext,
    /// Whether tungstenite may hold unread frames (or the HTTP parser left bytes behind).
    may_have_buffered: bool,
    outbox: Outbox,
    /// Since when the socket has refused output that is waiting (`None` while writes progress).
    stalled_since: Option<Instant>,
    /// Where the latency of room frames is recorded as they are written, if anywhere.
    fanout_latency: Option<Histogram>,
}

impl WsConnection {
    /// Wraps an upgraded stream; `pre_read` is what the HTTP parser read past the request.
    pub fn new(stream: TcpStream, pre_read: &[u8], config: WebSocketConfig) -> Self {
        let context = if pre_read.is_empty() {
            WebSocketContext::new(Role::Server, Some(config))
        } else {
            WebSocketContext::from_partially_read(pre_read.to_vec(), Role::Server, Some(config))
        };
        WsConnection {
            stream,
            context,
            may_have_buffered: true,
            outbox: Outbox::default(),
            stalled_since: None,
            fanout_latency: None,
        }
    }

    /// Records, for every write that completes a room frame, the time since the oldest such
    /// frame in it was published.
    pub fn record_fanout_latency(&mut self, histogram: Histogram) {
        self.fanout_latency = Some(histogram);
    }

    /// Writes queued output whenever the socket takes it and, if `read`, reads the client's next
    /// message; returns with the first thing worth telling (see [`Event`]). Pending forever when
    /// there is neither anything to write nor permission to read.
    ///
    /// Cancel-safe: partial frames stay in tungstenite's buffer, unwritten output in the outbox.
    pub async fn next_event(&mut self, read: bool) -> Event {
        loop {
            if !self.outbox.is_empty() {
                match self.try_flush() {
                    Ok(true) => return Event::Drained,
                    Ok(false) => {}
                    Err(e) => return Event::WriteFailed(e),
                }
            }
            if read && self.may_have_buffered {
                // `try_read` does not count against tokio's cooperative budget: without this, a
                // client that keeps the socket busy (a ping flood) would never let the task yield.
                tokio::task::coop::consume_budget().await;
                if let Some(event) = self.read_message() {
                    return event;
                }
            }
            let write = !self.outbox.is_empty();
            let ready = poll_fn(|cx| {
                let mut ready = false;
                if write {
                    match self.stream.poll_write_ready(cx) {
                        Poll::Ready(Ok(())) => ready = true,
                        Poll::Ready(Err(e)) => return Poll::Ready(Some(Event::WriteFailed(e))),
                        Poll::Pending => {}
                    }
                }
                if read {
                    match self.stream.poll_read_ready(cx) {
                        Poll::Ready(Ok(())) => {
                            self.may_have_buffered = true;
                            ready = true;
                        }
                        Poll::Ready(Err(e)) => {
                            return Poll::Ready(Some(Event::ReadFailed(WsError::Io(e))))
                        }
                        Poll::Pending => {}
                    }
                }
                if ready {
                    Poll::Ready(None)
                } else {
                    Poll::Pending
                }
            })
            .await;
            if let Some(failed) = ready {
                return failed;
            }
        }
    }

    /// One message from what is buffered or readable now; `None` if nothing complete is there.
    fn read_message(&mut self) -> Option<Event> {
        let mut io = SocketIo {
            stream: &self.stream,
            outbox: &mut self.outbox,
        };
        match self.context.read(&mut io) {
            Ok(message) => {
                // Move any reply tungstenite queued for this message into the outbox now.
                let _ = self.context.flush(&mut io);
                Some(Event::Message(message))
            }
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                self.may_have_buffered = false;
                None
            }
            Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Some(Event::Closed),
            Err(e) => Some(Event::ReadFailed(e)),
        }
    }

    /// Queues a frame; it goes out with the next [`try_flush`](Self::try_flush) or while
    /// [`next_event`](Self::next_event) runs.
    pub fn queue(&mut self, frame: Frame) {
        self.outbox.push_frame(frame);
    }

    /// Queues a frame a room published, whose fan-out latency is sampled once it is written.
    pub fn queue_room_frame(&mut self, frame: Frame) {
        self.outbox.push_room_frame(frame);
    }

    /// Queues a ping.
    pub fn queue_ping(&mut self) {
        self.queue_control(|context, io| context.write(io, Message::Ping(Default::default())));
    }

    /// Queues a close frame; the connection accepts no more messages after it.
    pub fn queue_close(&mut self, frame: CloseFrame) {
        self.queue_control(|context, io| context.close(io, Some(frame)));
    }

    fn queue_control(
        &mut self,
        write: impl FnOnce(&mut WebSocketContext, &mut SocketIo<'_>) -> Result<(), WsError>,
    ) {
        let mut io = SocketIo {
            stream: &self.stream,
            outbox: &mut self.outbox,
        };
        // Errors only mean the connection is already closing; there is nothing left to tell.
        if write(&mut self.context, &mut io).is_ok() {
            let _ = self.context.flush(&mut io);
        }
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.outbox.bytes()
    }

    /// Since when queued output has waited for a socket that takes nothing (`None` while writes
    /// make progress or nothing waits).
    pub fn stalled_since(&self) -> Option<Instant> {
        self.stalled_since
    }

    /// Writes what the socket takes now, without waiting; `true` once nothing is left queued.
    pub fn try_flush(&mut self) -> io::Result<bool> {
        while !self.outbox.is_empty() {
            match self.outbox.write_to(&self.stream) {
                Ok(room_frame_published_at) => {
                    self.stalled_since = None;
                    if let (Some(at), Some(histogram)) =
                        (room_frame_published_at, &self.fanout_latency)
                    {
                        histogram.record(at.elapsed().as_secs_f64());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.stalled_since.get_or_insert_with(Instant::now);
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
        }
        self.stalled_since = None;
        Ok(true)
    }

    /// Writes everything queued, waiting for the socket as needed (used while closing; the
    /// session's loop uses [`next_event`](Self::next_event) instead).
    pub async fn flush(&mut self) -> io::Result<()> {
        while !self.try_flush()? {
            poll_fn(|cx| self.stream.poll_write_ready(cx)).await?;
        }
        Ok(())
    }

    /// Ends a connection the server closed, after its close frame is written: stops writing (FIN)
    /// and discards input until the client closes its side too, for at most `within`. Closing a
    /// socket with unread input makes Linux send a reset, which can destroy the close frame before
    /// the client reads it (say, a 1009 after a frame too big to read).
    pub async fn linger(&mut self, within: Duration) {
        let _ = tokio::time::timeout(within, async {
            if self.stream.shutdown().await.is_err() {
                return;
            }
            loop {
                // Scoped so the buffer is never part of the future's state across an await.
                let read = {
                    let mut discard = [0u8; 512];
                    self.stream.try_read(&mut discard)
                };
                match read {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if poll_fn(|cx| self.stream.poll_read_ready(cx)).await.is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        })
        .await;
    }
}

/// What tungstenite reads from and writes to: the socket for reading (never blocking), the outbox
/// for writing, so control frames queue behind the frames already waiting.
struct SocketIo<'a> {
    stream: &'a TcpStream,
    outbox: &'a mut Outbox,
}

impl Read for SocketIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.try_read(buf)
    }
}

impl Write for SocketIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outbox.push_control(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
