//! The TCP stream an HTTP connection is served on, with a deadline for output the client does not
//! take.
//!
//! hyper has no write timeout: a client that requests a large response and never reads would keep
//! it in server memory for as long as it keeps the socket open. This stream gives each burst of
//! output a deadline instead: when the socket first stops taking data, the client has
//! `write_timeout` to take everything hyper has queued (hyper flushes once its queue is empty,
//! which ends the burst). A client that reads a trickle cannot stretch it, unlike a timeout that
//! restarts on every bit of progress. On expiry the socket is reset (`SO_LINGER` 0), so the kernel
//! drops the unsent data too, and hyper ends the connection with the error.
//!
//! tower-http's timeout layers bound the handler, not the time the response spends in the socket,
//! so they cannot do this.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// A served connection's socket; see the module docs.
pub struct HttpStream {
    tcp: TcpStream,
    write_timeout: Duration,
    /// Armed while output waits for the client; boxed once and reset, as most connections never
    /// block at all.
    deadline: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl HttpStream {
    pub fn new(tcp: TcpStream, write_timeout: Duration) -> Self {
        HttpStream {
            tcp,
            write_timeout,
            deadline: None,
            armed: false,
        }
    }

    /// The plain socket, e.g. for a WebSocket that takes the connection over.
    pub fn into_tcp(self) -> TcpStream {
        self.tcp
    }

    /// Called when the socket took nothing: starts the deadline if it is not running, and fails
    /// once it has passed.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let when = Instant::now() + self.write_timeout;
        let deadline = match &mut self.deadline {
            Some(deadline) if self.armed => deadline,
            Some(deadline) => {
                deadline.as_mut().reset(when);
                deadline
            }
            None => self
                .deadline
                .insert(Box::pin(tokio::time::sleep_until(when))),
        };
        self.armed = true;
        ready!(deadline.as_mut().poll(cx));
        self.armed = false;
        // Reset rather than close gracefully: the unsent response would otherwise stay in the
        // kernel until it gave up on the peer.
        if let Err(error) = self.tcp.set_zero_linger() {
            tracing::debug!(%error, "could not set SO_LINGER on a stalled connection");
        }
        metrics::counter!("chatterbox_http_write_timeouts_total").increment(1);
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client did not take the response within HTTP_WRITE_TIMEOUT_SECONDS",
        ))
    }
}

impl AsyncRead for HttpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for HttpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.tcp).poll_write(cx, buf) {
            Poll::Pending => this.poll_deadline(cx).map(Err),
            done => done,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.poll_deadline(cx).map(Err),
            done => done,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    /// hyper flushes once it has written everything it queued: the burst is over.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = ready!(Pin::new(&mut this.tcp).poll_flush(cx));
        this.armed = false;
        Poll::Ready(flushed)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}
