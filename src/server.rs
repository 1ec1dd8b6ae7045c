//! Building and running a server: open the store, start the history writer, serve until told to
//! stop, then drain.
//!
//! The caller binds the listeners and decides when to stop (a future), so tests bind port 0 and
//! stop deterministically. Shutdown order: report not ready (and keep serving for
//! SHUTDOWN_DELAY_SECONDS, so load balancers move new clients away first) → stop accepting → tell
//! every session (each sends close 1001 and leaves its rooms) → wait for sessions → drain the
//! history writer → return. Each wait is bounded by the configured grace period.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::admission::{Admission, TokenSetupError};
use crate::api;
use crate::app::App;
use crate::bus::{local::LocalBus, Bus};
use crate::config::{Config, ConfigError, NetConfig};
use crate::history::{
    self, HistoryReader, HistoryWriter, RetentionPolicy, WriterSettings, WriterTask,
};
use crate::net::{self, HttpLimits};
use crate::ping::{PingClock, PingTicker};
use crate::ratelimit::RateLimits;
use crate::readiness::Readiness;
use crate::rooms::{RegistrySettings, RingLimits, RoomRegistry, RoomSettings};
use crate::store::{PostgresOptions, SqliteOptions, Store, StoreError, StoreOptions};
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
    #[error("cannot start token mode: {0}")]
    Token(#[from] TokenSetupError),
    #[error("history writer did not drain within {0:?}: the latest messages may be lost")]
    HistoryNotDrained(Duration),
}

/// Where the server listens: the main HTTP port and, optionally, a separate one for `/metrics`.
pub struct Listeners {
    pub http: TcpListener,
    /// When set, `/metrics` is served here and not on `http`.
    pub metrics: Option<TcpListener>,
}

impl Listeners {
    /// Binds what `net` asks for: BIND_ADDR with PORT, and METRICS_BIND_ADDR (default
    /// BIND_ADDR) with METRICS_PORT when that is not 0.
    pub async fn bind(net: &NetConfig) -> std::io::Result<Listeners> {
        let http = TcpListener::bind((net.bind_addr, net.port)).await?;
        let metrics = match net.metrics_listen_addr() {
            None => None,
            Some(addr) => Some(TcpListener::bind(addr).await?),
        };
        Ok(Listeners { http, metrics })
    }
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
            sqlite: SqliteOptions {
                busy_timeout: config.store.sqlite_busy_timeout(),
            },
            postgres: PostgresOptions::default(),
        };
        let store = Store::connect(&config.store.url(), &options).await?;
        let admission = Admission::new(&config, &store.server_secret("resume_tickets").await?)?;
        if admission.any_host() && !config.net.bind_addr.is_loopback() {
            tracing::warn!(
                bind_addr = %config.net.bind_addr,
                "ALLOWED_HOSTS is empty: any Host header is accepted on a non-loopback address, \
                 which leaves browsers open to DNS rebinding; set ALLOWED_HOSTS in production"
            );
        }
        let metrics = Metrics::new();
        let history = &config.history;
        let (writer_handle, writer) = HistoryWriter::spawn(
            store.clone(),
            WriterSettings {
                batch_size: history.history_batch_size,
                flush_interval: history.flush_interval(),
                queue_capacity: history.history_queue_capacity,
                queue_bytes: history.history_queue_bytes,
                reserve_timeout: history.store_wait(),
            },
            metrics.clone(),
        );
        let registry = RoomRegistry::new(
            RegistrySettings {
                shards: config.rooms.resolved_shards(),
                max_rooms: config.limits.max_rooms,
                max_rooms_created_per_ip: config.limits.max_rooms_created_per_ip,
                room: RoomSettings {
                    channel_capacity: config.rooms.room_channel_capacity,
                    ring: RingLimits {
                        messages: history.history_ring_size, // validated ≥ MAX_HISTORY
                        bytes: history.history_ring_bytes,
                    },
                    max_frame_bytes: config.limits.max_server_frame_bytes,
                },
            },
            metrics.clone(),
        );
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (ping_clock, ping_ticker) = PingClock::new(config.connection.ping_interval());
        let app = Arc::new(App {
            admission,
            registry,
            bus: Bus::Local(LocalBus),
            rate_limits: RateLimits::new(&config.rate),
            readiness: Readiness::new(store.clone(), writer_handle.clone()),
            history: writer_handle,
            reader: HistoryReader::new(store.clone(), history.store_wait()),
            store,
            metrics,
            shutdown: shutdown_rx,
            ping_clock,
            sessions: TaskTracker::new(),
            started: Instant::now(),
            config,
        });
        Ok(Server {
            app,
            writer,
            shutdown,
            ping_ticker,
        })
    }

    /// Serves on `listeners` until `stop` completes, then shuts down gracefully.
    pub async fn run(
        self,
        listeners: Listeners,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Server {
            app,
            writer,
            shutdown,
            ping_ticker,
        } = self;
        let net_config = &app.config.net;
        let grace = net_config.shutdown_grace();
        let delay = net_config.shutdown_delay();
        let limits = HttpLimits {
            max_header_bytes: net_config.max_request_header_bytes,
            header_read_timeout: net_config.header_read_timeout(),
            write_timeout: net_config.http_write_timeout(),
        };
        let metrics_server = listeners.metrics.map(|listener| {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!("serving /metrics on http://{addr}");
            }
            tokio::spawn(net::serve(
                listener,
                api::metrics_router(),
                limits,
                app.shutting_down(),
                grace,
            ))
        });
        let background = spawn_background(&app, ping_ticker);

        let shutdown_signal = shutdown.clone();
        let readiness = app.readiness.clone();
        let router = api::router(app.clone(), metrics_server.is_none());
        net::serve(
            listeners.http,
            router,
            limits,
            async move {
                stop.await;
                readiness.start_draining();
                if !delay.is_zero() {
                    tracing::info!(
                        ?delay,
                        "shutting down: not ready, serving on until the delay ends"
                    );
                    tokio::time::sleep(delay).await;
                }
                tracing::info!("shutting down: closing connections and flushing history");
                let _ = shutdown_signal.send(true);
            },
            grace,
        )
        .await;
        let _ = shutdown.send(true); // in case serve ended on its own

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

/// The ping clock, metrics upkeep and history retention; all end with the server.
fn spawn_background(app: &Arc<App>, ping_ticker: PingTicker) -> Vec<JoinHandle<()>> {
    let history = &app.config.history;
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
    let policy = RetentionPolicy {
        max_per_room: history.history_max_per_room,
        max_age: history.max_age(),
        interval: history.retention_interval(),
    };
    let live = app.clone();
    tasks.extend(history::spawn_retention(
        app.store.clone(),
        policy,
        move |max_per_room, older_than_ms| {
            for room in live.registry.rooms() {
                room.apply_retention(max_per_room, older_than_ms);
            }
        },
        app.shutdown.clone(),
    ));
    tasks
}
