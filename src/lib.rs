//! chatterbox: a real-time WebSocket chat server.
//!
//! # Layout
//! Data flows connection → session → room registry → room (broadcast) → history writer → store,
//! with the HTTP API and metrics beside the chain. One module owns each step:
//!
//! - [`net`]: accepts TCP connections and serves HTTP/1.1 on them, tagging each request with its
//!   peer address.
//! - [`api`]: the router — `/ws`, the REST API, `/health`, `/metrics`, the browser client.
//! - [`admission`]: what happens before an upgrade: who may connect, as whom, from where.
//! - [`ws`]: the WebSocket handshake, the full-duplex connection, frames encoded once.
//! - [`protocol`]: client messages, server frames, error codes, name rules.
//! - [`session`]: one task per connection: requests, delivery and lag, closing.
//! - [`ratelimit`]: how often a connection may chat, join and leave (token buckets).
//! - [`ping`]: the server-wide ping clock, in phases so pings go out in waves.
//! - [`rooms`]: the lock-sharded registry (join tickets, memberships), each room's broadcast
//!   channel delivering in id order, and its ring of recent messages.
//! - [`presence`]: who is in a room, per user, and what to announce.
//! - [`bus`]: how a published message gets its id and reaches every room that delivers it.
//! - [`history`]: the async batch writer, the commit watermark, the reader, retention.
//! - [`store`]: durable history behind one type; the backend (SQLite file, PostgreSQL) is chosen by
//!   URL scheme.
//! - [`readiness`]: whether to send this server new clients (draining, store and writer health).
//! - [`telemetry`]: Prometheus metric names, descriptions, buckets and the recorder.
//! - [`config`]: every setting, as CLI flag and environment variable, one group per concern.
//! - [`server`]: builds the components, serves, and shuts down gracefully.
//! - [`app`]: the shared state handed to handlers and sessions.

pub mod admission;
pub mod api;
pub mod app;
pub mod bus;
pub mod config;
pub mod history;
pub mod net;
pub mod ping;
pub mod presence;
pub mod protocol;
pub mod ratelimit;
pub mod readiness;
pub mod rooms;
pub mod server;
pub mod session;
pub mod store;
pub mod telemetry;
pub mod ws;

pub use config::Config;
pub use server::{Listeners, Server, ServerError};
