//! Accepting TCP connections and serving HTTP/1.1 on them, with hyper directly.
//!
//! `axum::serve` wraps every connection in a private type, so an upgraded WebSocket can only be
//! used through layers of dynamic dispatch and buffering. Serving with hyper's HTTP/1 builder
//! hands [`crate::ws`] the plain `TcpStream` back. Every request carries the peer's address
//! (axum's [`ConnectInfo`]), which admission turns into the client's address. Shutdown is graceful
//! as with `axum::serve`: stop accepting, let requests in flight finish, close idle keep-alive
//! connections.
//!
//! What one connection may cost is bounded here: its request head ([`HttpLimits`]), the time it
//! may take to send one, and the time a response may wait for it ([`HttpStream`]). Running out of
//! descriptors is handled by [`DescriptorReserve`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;
use tower_service::Service;

use super::descriptors::{is_out_of_descriptors, DescriptorReserve, ErrorThrottle};
use super::HttpStream;

/// Pause after an accept error that is not about one connection and could not be handled (e.g.
/// out of descriptors with no spare), so a full process does not spin; connections closing
/// meanwhile make room.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// hyper's smallest read buffer limit (it panics below).
const MIN_BUF_BYTES: usize = 8192;

/// What one HTTP connection may cost.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest request head (request line and headers): larger ones get 431. hyper buffers no
    /// more than this (at least 8 KiB, its minimum) per connection while reading one.
    pub max_header_bytes: usize,
    /// Longest a client may take to send a request head; also what closes a connection that
    /// sent half a request, or none, and went quiet.
    pub header_read_timeout: Duration,
    /// Longest output may wait for a client that stopped reading ([`HttpStream`]).
    pub write_timeout: Duration,
}

/// Serves `router` on `listener` until `stop` completes, then waits up to `drain` for open HTTP
/// requests. Upgraded connections are not waited for: they belong to whoever took them over.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    stop: impl Future<Output = ()>,
    drain: Duration,
) {
    let connections = TaskTracker::new();
    let (closing_tx, closing) = watch::channel(false);
    let mut reserve = DescriptorReserve::new();
    let mut errors = ErrorThrottle::default();
    let mut stop = pin!(stop);
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                reserve.accepted();
                connections.spawn(serve_connection(
                    stream,
                    peer,
                    router.clone(),
                    limits,
                    closing.clone(),
                ));
                continue;
            }
            Err(error) if is_about_one_connection(&error) => continue,
            Err(error) if is_out_of_descriptors(&error) => {
                if reserve.refuse_one(&listener) {
                    continue;
                }
            }
            Err(error) => errors.error(&error),
        }
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
        }
    }
    let _ = closing_tx.send(true);
    connections.close();
    if tokio::time::timeout(drain, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = connections.len(),
            "HTTP requests still open after the grace period; not waiting for them"
        );
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: HttpLimits,
    mut closing: watch::Receiver<bool>,
) {
    // Frames are written in whole batches; Nagle's delay would only add latency.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "could not set TCP_NODELAY");
    }
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(MIN_BUF_BYTES))
        .serve_connection(
            TokioIo::new(HttpStream::new(stream, limits.write_timeout)),
            service_fn(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                // Routers are cheap to clone (shared routes) and always ready.
                router.clone().call(request)
            }),
        )
        .with_upgrades();
    let mut connection = pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = closed(&mut closing) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "HTTP connection ended with an error");
    }
}

/// Completes once the server starts closing (or is gone).
async fn closed(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|closing| *closing).await;
}

/// Errors that end one connection attempt, not the listener.
fn is_about_one_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
