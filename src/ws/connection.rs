//! One upgraded WebSocket connection over a raw TCP stream.
//!
//! Frames to send wait in an outbox of shared [`Frame`]s and go out as few system calls as the
//! socket allows: a lone frame is one plain `write`, several are one `writev`. The outbox is the only write-side state: it holds
//! references, not copies, and gives its memory back once drained. Incoming bytes go through
//! tungstenite's [`WebSocketContext`], which reads straight from the socket when it is readable;
//! the control replies it produces (pong, close) are queued in the same outbox, in order.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice, Read, Write};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::{
    CloseFrame, Role, WebSocketConfig, WebSocketContext,
};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::protocol::Frame;

/// Frames handed to one `writev`, well under `IOV_MAX` (1024).
const MAX_SLICES_PER_WRITE: usize = 64;

/// Outbox slots kept after a drain; a burst that needed more gives the rest back.
const OUTBOX_SLOTS_KEPT: usize = 16;

/// Something waiting to be written.
#[derive(Debug)]
enum Outgoing {
    /// A server frame, shared with every other subscriber that has it queued.
    Frame(Frame),
    /// Bytes of a control frame (ping, pong, close) framed by tungstenite.
    Control(Box<[u8]>),
}

impl Outgoing {
    fn bytes(&self) -> &[u8] {
        match self {
            Outgoing::Frame(frame) => frame.wire(),
            Outgoing::Control(bytes) => bytes,
        }
    }
}

/// The server end of an open WebSocket connection.
pub struct WsConnection {
    stream: TcpStream,
    /// Tungstenite's protocol state, used for reading and for control frames.
    context: WebSocketContext,
    /// Whether tungstenite may hold unread frames (or the HTTP parser left bytes behind).
    may_have_buffered: bool,
    outbox: Outbox,
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
        }
    }

    /// The next message from the client; `None` once the connection is closed.
    ///
    /// Cancel-safe: partial frames stay in tungstenite's buffer. Control replies it queues (a pong,
    /// the answer to a close) are in the outbox afterwards; call [`flush`](Self::flush).
    pub async fn recv(&mut self) -> Option<Result<Message, WsError>> {
        loop {
            // Readiness first: asking tungstenite to read when nothing is buffered or readable
            // would cost a buffer fill per wake-up, and the session wakes for every frame it sends.
            if self.may_have_buffered {
                // `try_read` does not count against tokio's cooperative budget: without this, a
                // client that keeps the socket busy (a ping flood) would never let the task yield
                // and would hold a worker thread.
                tokio::task::coop::consume_budget().await;
            } else if let Err(e) = poll_fn(|cx| self.stream.poll_read_ready(cx)).await {
                return Some(Err(WsError::Io(e)));
            }
            let mut io = SocketIo {
                stream: &self.stream,
                outbox: &mut self.outbox,
            };
            match self.context.read(&mut io) {
                Ok(message) => {
                    // Move any reply tungstenite queued for this message into the outbox now.
                    let _ = self.context.flush(&mut io);
                    // One read may have brought several frames.
                    self.may_have_buffered = true;
                    return Some(Ok(message));
                }
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.may_have_buffered = false;
                }
                Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => return None,
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Queues a frame; nothing is written before [`flush`](Self::flush).
    pub fn queue(&mut self, frame: Frame) {
        self.outbox.push(Outgoing::Frame(frame));
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

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.outbox.bytes
    }

    /// Writes what the socket takes now, without waiting; `true` once nothing is left queued.
    pub fn try_flush(&mut self) -> io::Result<bool> {
        while !self.outbox.is_empty() {
            match self.outbox.write_to(&self.stream) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Writes everything queued, as few system calls as the socket allows.
    ///
    /// Cancel-safe: what was written is removed from the outbox, the rest stays queued.
    pub async fn flush(&mut self) -> io::Result<()> {
        loop {
            match self.outbox.write_to(&self.stream) {
                Ok(()) if self.outbox.is_empty() => return Ok(()),
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    poll_fn(|cx| self.stream.poll_write_ready(cx)).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Frames waiting to be written, oldest first.
#[derive(Debug, Default)]
struct Outbox {
    queue: VecDeque<Outgoing>,
    /// Bytes of the front item already written.
    front_written: usize,
    /// Bytes queued, not counting `front_written`.
    bytes: usize,
}

impl Outbox {
    fn push(&mut self, item: Outgoing) {
        self.bytes += item.bytes().len();
        self.queue.push_back(item);
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// One vectored write of as much as fits in [`MAX_SLICES_PER_WRITE`] buffers.
    fn write_to(&mut self, stream: &TcpStream) -> io::Result<()> {
        if self.queue.is_empty() {
            return Ok(());
        }
        let written = if self.queue.len() == 1 {
            // One frame: a plain write, cheaper in the kernel than a vectored one.
            stream.try_write(&self.queue[0].bytes()[self.front_written..])?
        } else {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES_PER_WRITE];
            let count = self.queue.len().min(MAX_SLICES_PER_WRITE);
            for (slice, item) in slices.iter_mut().zip(&self.queue) {
                *slice = IoSlice::new(item.bytes());
            }
            // Only the front item can be partly written.
            slices[0] = IoSlice::new(&self.queue[0].bytes()[self.front_written..]);
            stream.try_write_vectored(&slices[..count])?
        };
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        self.consume(written);
        Ok(())
    }

    /// Drops what a write took from the front.
    fn consume(&mut self, mut written: usize) {
        self.bytes -= written;
        while let Some(front) = self.queue.front() {
            let left = front.bytes().len() - self.front_written;
            if written < left {
                self.front_written += written;
                return;
            }
            written -= left;
            self.front_written = 0;
            self.queue.pop_front();
        }
        self.queue.shrink_to(OUTBOX_SLOTS_KEPT);
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
        if !buf.is_empty() {
            self.outbox.push(Outgoing::Control(buf.into()));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ChatRecord, Frame};
    use futures_util::{SinkExt, StreamExt};
    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::WebSocketStream;

    /// A server connection and a tungstenite client over real loopback TCP.
    async fn pair() -> (WsConnection, WebSocketStream<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let server = WsConnection::new(accepted.unwrap().0, &[], WebSocketConfig::default());
        let client = WebSocketStream::from_raw_socket(client.unwrap(), Role::Client, None).await;
        (server, client)
    }

    fn chat(id: u64, text: &str) -> Frame {
        ChatRecord::new("r".into(), id, "u".into(), text.into(), 0).frame
    }

    /// More than the socket buffers hold, so writes are partial and resume mid-frame; the client
    /// must still read every frame, whole and in order.
    #[tokio::test]
    async fn partial_writes_resume_exactly_where_they_stopped() {
        let (mut server, mut client) = pair().await;
        let text = "x".repeat(3000);
        let frames = 2000u64;
        for id in 1..=frames {
            server.queue(chat(id, &text));
        }
        let reader = tokio::spawn(async move {
            let mut ids = Vec::new();
            while ids.len() < frames as usize {
                let message = client.next().await.unwrap().unwrap();
                let value: serde_json::Value =
                    serde_json::from_str(message.to_text().unwrap()).unwrap();
                assert_eq!(value["text"].as_str().unwrap().len(), 3000);
                ids.push(value["id"].as_u64().unwrap());
            }
            ids
        });
        server.flush().await.unwrap();
        assert_eq!(server.queued_bytes(), 0);
        let ids = reader.await.unwrap();
        assert_eq!(ids, (1..=frames).collect::<Vec<_>>());
    }

    /// A client that keeps the socket busy must not keep the task from yielding: on this
    /// single-threaded runtime, the test itself only gets to run again if the reading task yields.
    #[tokio::test]
    async fn a_flooding_client_cannot_hold_the_thread() {
        let (mut server, client) = pair().await;
        let mut raw = client.into_inner().into_std().unwrap();
        raw.set_nonblocking(false).unwrap();
        // Masked, empty pings, as fast as a blocking thread can write them.
        std::thread::spawn(move || {
            let pings = [0x89u8, 0x80, 1, 2, 3, 4].repeat(10_000);
            while std::io::Write::write_all(&mut raw, &pings).is_ok() {}
        });
        let (done, watchdog) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if watchdog
                .recv_timeout(std::time::Duration::from_secs(20))
                .is_err()
            {
                eprintln!("the reading task never yielded to the runtime");
                std::process::exit(1);
            }
        });
        let reader = tokio::spawn(async move {
            let mut pings = 0u64;
            while let Some(Ok(_)) = server.recv().await {
                pings += 1;
                if pings % 4096 == 0 {
                    // Keep the queued pongs from piling up; the flooder never reads them.
                    server.outbox = Outbox::default();
                }
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        done.send(()).unwrap();
        assert!(!reader.is_finished(), "the flood is still being read");
        reader.abort();
    }

    /// After the server's close frame, lingering sends FIN (the client reads the close, then the
    /// end of the stream), reads past input the server never processed, and ends as soon as the
    /// client closes its side — long before its own limit.
    #[tokio::test]
    async fn linger_shuts_writing_drains_input_and_ends_when_the_client_closes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut server, client) = pair().await;
        let mut raw = client.into_inner();
        // Unread input, as after a frame too big to read.
        raw.write_all(&[0u8; 64 * 1024]).await.unwrap();
        server.queue_close(CloseFrame {
            code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Size,
            reason: "too big".into(),
        });
        server.flush().await.unwrap();
        let linger = tokio::spawn(async move { server.linger(Duration::from_secs(600)).await });
        let mut received = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut received))
            .await
            .expect("the server's side ends (FIN)")
            .unwrap();
        assert_eq!(
            &received[..2],
            &[0x88, 2 + 7],
            "a close frame with code and reason"
        );
        assert_eq!(&received[2..4], &1009u16.to_be_bytes());
        drop(raw);
        tokio::time::timeout(Duration::from_secs(10), linger)
            .await
            .expect("linger ends when the client closes")
            .unwrap();
    }

    /// A ping is answered with a pong carrying its payload, queued behind frames already waiting.
    #[tokio::test]
    async fn pings_are_answered_in_order() {
        let (mut server, mut client) = pair().await;
        client
            .send(Message::Ping(b"hi".to_vec().into()))
            .await
            .unwrap();
        server.queue(chat(1, "before the pong"));
        let received = server.recv().await.unwrap().unwrap();
        assert!(matches!(received, Message::Ping(_)));
        server.flush().await.unwrap();
        let first = client.next().await.unwrap().unwrap();
        assert!(first.to_text().unwrap().contains("before the pong"));
        let second = client.next().await.unwrap().unwrap();
        assert_eq!(second, Message::Pong(b"hi".to_vec().into()));
    }
}
