//! The long-lived components of a running server, shared by every request and session.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::history::HistoryWriter;
use crate::registry::RoomRegistry;
use crate::store::Store;
use crate::telemetry::Metrics;

/// Everything a handler or session needs; shared as `Arc<App>`.
pub struct App {
    pub config: Config,
    pub registry: RoomRegistry,
    pub store: Store,
    pub history: HistoryWriter,
    pub metrics: Metrics,
    /// Turns true when the server begins shutting down; sessions then close with 1001.
    pub shutdown: watch::Receiver<bool>,
    /// Advances every PING_INTERVAL_SECONDS; each session pings its client on every tick. One
    /// clock for all sessions instead of a timer each: nothing to re-arm per frame sent, and no
    /// timer entry per idle connection.
    pub ping_clock: watch::Receiver<u64>,
    /// Every live session, so shutdown can wait for them (axum does not track upgraded
    /// connections).
    pub sessions: TaskTracker,
    pub started: Instant,
}

pub type AppState = Arc<App>;
