//! The long-lived components of a running server, shared by every request and session.

use std::future::Future;
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
    /// Every live session, so shutdown can wait for them (an upgraded connection outlives the
    /// HTTP connection it came from, so serving HTTP does not wait for it).
    pub sessions: TaskTracker,
    pub started: Instant,
}

impl App {
    /// Completes once the server begins shutting down (at once if it already has). It owns its
    /// receiver, so a `select!` loop can keep one pinned beside `&mut` state for its whole life.
    pub fn shutting_down(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut shutdown = self.shutdown.clone();
        async move {
            // An error means the sender is gone: the server is past shutting down.
            let _ = shutdown.wait_for(|stopping| *stopping).await;
        }
    }
}

pub type AppState = Arc<App>;
