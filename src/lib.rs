//! chatterbox: a real-time WebSocket chat server.
//!
//! # Layout
//! Data flows connection → session → room registry → room (broadcast) → history writer → store,
//! with the HTTP API and metrics beside the chain. One module owns each step:
//!
//! - [`config`]: every setting, as CLI flag and environment variable, with defaults and checks.
//! - [`protocol`]: client messages, server frames (encoded once, shared by all subscribers),
//!   error codes, name rules.
//! - [`serve`]: accepts TCP connections and serves HTTP/1.1 on them (hyper, graceful shutdown).
//! - [`http`]: routes — WebSocket upgrade, REST API, `/metrics`, the embedded browser client.
//! - [`ws`]: the WebSocket handshake and connection: shared frames written with vectored writes.
//! - [`ping`]: the server-wide ping clock, in phases so pings go out in waves.
//! - [`session`]: one task per connection; batches frames to the socket, handles lag and pings.
//! - [`registry`]: the lock-sharded map of live rooms; creates and removes rooms.
//! - [`room`]: one room's broadcast channel, members, id counter and recent-message ring.
//! - [`history`]: the async batch writer that persists chat messages, and retention.
//! - [`store`]: durable history behind one type; the backend is chosen by URL scheme.
//! - [`telemetry`]: Prometheus metric names, descriptions, buckets and the recorder.
//! - [`server`]: builds the components, serves, and shuts down gracefully.
//! - [`app`]: the shared state handed to handlers and sessions.

pub mod app;
pub mod config;
pub mod history;
pub mod http;
pub mod ping;
pub mod protocol;
pub mod registry;
pub mod room;
pub mod serve;
pub mod server;
pub mod session;
pub mod store;
pub mod telemetry;
pub mod ws;

pub use config::Config;
pub use server::{Server, ServerError};
