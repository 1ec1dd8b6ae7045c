//! The long-lived components of a running server, shared by every request and session.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::history::HistoryWriter;
use crate::ping::PingClock;
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
    /// Sessions ping their clients when their phase of this clock ticks.
    pub ping_clock: PingClock,
    /// Every live session, so shutdown can wait for them (axum does not track upgraded
    /// connections).
    pub sessions: TaskTracker,
    pub started: Instant,
}

pub type AppState = Arc<App>;
