//! The long-lived components of a running server, shared by every request and session.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::admission::Admission;
use crate::bus::Bus;
use crate::config::Config;
use crate::history::{HistoryReader, HistoryWriter};
use crate::ping::PingClock;
use crate::ratelimit::RateLimits;
use crate::readiness::Readiness;
use crate::rooms::RoomRegistry;
use crate::store::Store;
use crate::telemetry::Metrics;

/// Everything a handler or session needs; shared as `Arc<App>`. Components read only their own
/// group of [`Config`].
pub struct App {
    pub config: Config,
    /// Decides who may connect, as whom, before the upgrade.
    pub admission: Admission,
    pub registry: RoomRegistry,
    pub bus: Bus,
    /// Every connection's request rate limits come from here.
    pub rate_limits: RateLimits,
    pub history: HistoryWriter,
    pub reader: HistoryReader,
    pub store: Store,
    pub metrics: Metrics,
    /// What `/health/ready` answers: not while draining or while the store does not answer.
    pub readiness: Readiness,
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

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

pub type AppState = Arc<App>;
