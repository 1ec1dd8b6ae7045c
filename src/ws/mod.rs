//! The server side of WebSocket, shaped for fan-out.
//!
//! Reading uses tungstenite's protocol state machine (masking, fragmentation, control frames,
//! UTF-8 and size limits). Writing does not: a server frame is never masked, so its bytes — header
//! and payload — are the same for every subscriber. A [`Frame`] is encoded once, and each
//! connection writes the shared bytes straight from it (one `write`, or one `writev` for a batch):
//! no per-subscriber copy and no per-connection write buffer that keeps the size of the largest
//! frame it ever sent (tungstenite's does, which costs idle connections kilobytes).
//!
//! - [`frame`]: an encoded, shared text frame and its header.
//! - [`upgrade`]: the HTTP/1.1 handshake, as an axum extractor, handing over the raw TCP stream.
//! - [`connection`]: one upgraded connection, driven full duplex by `next_event`.
//! - `outbox`: what a connection has queued to write, with pongs coalesced.

pub mod connection;
pub mod frame;
mod outbox;
pub mod upgrade;

pub use connection::{Event, WsConnection};
pub use frame::{Frame, FrameHeader};
pub use upgrade::WsUpgrade;
