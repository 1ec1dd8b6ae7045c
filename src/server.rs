//! Building and running a server: open the store, start the history writer, serve until told to
//! stop, then drain.
//!
//! The caller binds the listener and decides when to stop (a future), so tests bind port 0 and
//! stop deterministically. Shutdown order: stop accepting → tell every session (each sends close
//! 1001 and leaves its rooms) → wait for sessions → drain the history writer → return. Each wait is
//! bounded by the configured grace period.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::config::{Config, ConfigError};
use crate::history::{self, HistoryWriter, WriterSettings, WriterTask};
use crate::http;
use crate::ping::{PingClock, PingTicker};
use crate::registry::RoomRegistry;
use crate::serve;
use crate::store::{Store, StoreError, StoreOptions};
use crate::telemetry::{self, Metrics};

/// How often histogram samples are folded into buckets.
const METRICS_UPKEEP_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the message store: {0}")]
    Store(#[from] StoreError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("history writer did not drain within {0:?}: the latest messages may be lost")]
    HistoryNotDrained(Duration),
}

/// A server ready to run: store open, writer started.
pub struct Server {
    app: Arc<App>,
    writer: WriterTask,
    shutdown: watch::Sender<bool>,
    ping_ticker: PingTicker,
}

impl Server {
    pub async fn build(config: Config) -> Result<Server, ServerError> {
        config.validate()?;
        let options = StoreOptions {
            busy_timeout: Duration::from_millis(config.sqlite_busy_timeout_ms),
        };
        let store = match &config.database_url {
            Some(url) => Store::connect(url, &options).await?,
            None => Store::open_sqlite(&config.db_path, &options).await?,
        };
        let metrics = Metrics::new();
        let (history, writer) = HistoryWriter::spawn(
            store.clone(),
            WriterSettings {
                batch_size: config.history_batch_size,
                flush_interval: config.history_flush_interval(),
                queue_capacity: config.history_queue_capacity,
                flush_timeout: config.shutdown_grace(),
            },
            metrics.clone(),
        );
        let registry = RoomRegistry::new(
            config.resolved_room_shards(),
            config.max_rooms,
            config.room_channel_capacity,
            config.history_ring_size, // validated ≥ MAX_HISTORY
            metrics.clone(),
        );
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (ping_clock, ping_ticker) = PingClock::new(config.ping_interval());
        let app = Arc::new(App {
            config,
            registry,
            store,
            history,
            metrics,
            shutdown: shutdown_rx,
            ping_clock,
            sessions: TaskTracker::new(),
            started: Instant::now(),
        });
        Ok(Server {
            app,
            writer,
            shutdown,
            ping_ticker,
        })
    }

    /// Serves on `listener` until `stop` completes, then shuts down gracefully.
    pub async fn run(
        self,
        listener: TcpListener,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Server {
            app,
            writer,
            shutdown,
            ping_ticker,
        } = self;
        let config = &app.config;
        let metrics_server = spawn_metrics_listener(config, app.shutting_down()).await?;
        let background = spawn_background(&app, ping_ticker);

        let shutdown_signal = shutdown.clone();
        let router = http::router(app.clone());
        serve::serve(
            listener,
            router,
            async move {
                stop.await;
                tracing::info!("shutting down: closing connections and flushing history");
                let _ = shutdown_signal.send(true);
            },
            config.shutdown_grace(),
        )
        .await;
        let _ = shutdown.send(true); // in case serve ended on its own

        let grace = config.shutdown_grace();
        let deadline = tokio::time::Instant::now() + grace;
        app.sessions.close();
        if tokio::time::timeout_at(deadline, app.sessions.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = app.sessions.len(),
                "sessions did not finish within the grace period"
            );
        }
        // The writer gets a grace period of its own: slow sessions must not eat into the time that
        // makes every accepted message durable.
        let drained = tokio::time::timeout(grace, writer.shutdown()).await.is_ok();
        for task in background.into_iter().chain(metrics_server) {
            task.abort();
        }
        if !drained {
            tracing::error!("history writer did not drain within the grace period");
            return Err(ServerError::HistoryNotDrained(grace));
        }
        tracing::info!("stopped");
        Ok(())
    }

    /// The shared application state (for tests and embedding).
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }
}

/// Serves `/metrics` on its own port when METRICS_PORT is set.
async fn spawn_metrics_listener(
    config: &Config,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<Option<JoinHandle<()>>, ServerError> {
    if config.metrics_port == 0 {
        return Ok(None);
    }
    let listener = TcpListener::bind((config.bind_addr, config.metrics_port)).await?;
    tracing::info!(addr = %listener.local_addr()?, "metrics listening");
    Ok(Some(tokio::spawn(serve::serve(
        listener,
        http::metrics_router(),
        stop,
        config.shutdown_grace(),
    ))))
}

/// The ping clock, metrics upkeep and history retention; all end with the server.
fn spawn_background(app: &Arc<App>, ping_ticker: PingTicker) -> Vec<JoinHandle<()>> {
    let config = &app.config;
    let mut tasks = vec![
        tokio::spawn(ping_ticker.run()),
        tokio::spawn(async {
            let mut ticker = tokio::time::interval(METRICS_UPKEEP_EVERY);
            loop {
                ticker.tick().await;
                telemetry::recorder().run_upkeep();
            }
        }),
    ];
    let max_age = (config.history_max_age_seconds > 0)
        .then(|| Duration::from_secs(config.history_max_age_seconds));
    let live = app.clone();
    tasks.extend(history::spawn_retention(
        app.store.clone(),
        config.history_max_per_room,
        max_age,
        Duration::from_secs(config.retention_interval_seconds),
        move |max_per_room, older_than_ms| {
            for room in live.registry.rooms() {
                room.apply_retention(max_per_room, older_than_ms);
            }
        },
        app.shutdown.clone(),
    ));
    tasks
}
