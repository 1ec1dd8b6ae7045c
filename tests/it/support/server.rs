//! A real server in the test process, on 127.0.0.1 port 0, with a temp SQLite file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::TestClient;

/// Logs to the test's output when RUST_LOG is set (e.g. `RUST_LOG=chatterbox=debug`).
fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    /// Where `/metrics` is served when the builder asked for a listener of its own.
    pub metrics_addr: Option<SocketAddr>,
    pub db_path: PathBuf,
    /// The running server's components (e.g. `app.history.is_healthy()`).
    pub app: Arc<chatterbox::app::App>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), chatterbox::ServerError>>>,
    /// Keeps the temp dir (and its SQLite file) alive while the server runs.
    _dir: Option<tempfile::TempDir>,
}

/// How to start a [`TestServer`]: its settings, its database file, its listeners.
pub struct TestServerBuilder {
    config: chatterbox::Config,
    db_path: Option<PathBuf>,
    metrics_listener: bool,
    bind_from_config: bool,
}

impl TestServerBuilder {
    /// Changes settings (the defaults otherwise, whatever the environment says).
    pub fn config(mut self, configure: impl FnOnce(&mut chatterbox::Config)) -> Self {
        configure(&mut self.config);
        self
    }

    /// Uses the SQLite file at `path` (kept by the caller) instead of a fresh temp file.
    pub fn db(mut self, path: PathBuf) -> Self {
        self.db_path = Some(path);
        self
    }

    /// Serves `/metrics` on a listener of its own ([`TestServer::metrics_addr`]).
    pub fn metrics_listener(mut self) -> Self {
        self.metrics_listener = true;
        self
    }

    /// Binds what the settings say (`Listeners::bind`: BIND_ADDR, PORT, METRICS_BIND_ADDR,
    /// METRICS_PORT) instead of 127.0.0.1 port 0.
    pub fn bind_from_config(mut self) -> Self {
        self.bind_from_config = true;
        self
    }

    pub async fn start(self) -> TestServer {
        init_tracing();
        let (db_path, dir) = match self.db_path {
            Some(path) => (path, None),
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                (dir.path().join("chat.db"), Some(dir))
            }
        };
        let mut config = self.config;
        config.store.db_path = db_path.clone();
        let (http, metrics) = if self.bind_from_config {
            let listeners = chatterbox::Listeners::bind(&config.net)
                .await
                .expect("bind");
            (listeners.http, listeners.metrics)
        } else {
            let metrics = match self.metrics_listener {
                true => Some(TcpListener::bind("127.0.0.1:0").await.expect("bind")),
                false => None,
            };
            (
                TcpListener::bind("127.0.0.1:0").await.expect("bind"),
                metrics,
            )
        };
        let addr = http.local_addr().unwrap();
        let metrics_addr = metrics.as_ref().map(|l| l.local_addr().unwrap());
        let server = chatterbox::Server::build(config)
            .await
            .expect("server builds");
        let app = server.app().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let listeners = chatterbox::Listeners { http, metrics };
        let task = tokio::spawn(server.run(listeners, async move {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            metrics_addr,
            db_path,
            app,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }
}

impl TestServer {
    /// A builder starting from the default settings, with no store URL from the environment and
    /// no per-address connection limits (every test client comes from 127.0.0.1; the tests of
    /// those limits turn them on).
    pub fn builder() -> TestServerBuilder {
        let mut config = chatterbox::Config::default();
        config.store.database_url = None;
        config.admission.max_connections_per_ip = 0;
        config.admission.max_connects_per_ip_per_second = 0;
        TestServerBuilder {
            config,
            db_path: None,
            metrics_listener: false,
            bind_from_config: false,
        }
    }

    pub async fn start() -> TestServer {
        Self::builder().start().await
    }

    pub async fn start_with(configure: impl FnOnce(&mut chatterbox::Config)) -> TestServer {
        Self::builder().config(configure).start().await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self, user: &str) -> String {
        format!("ws://{}/ws?user={user}", self.addr)
    }

    pub async fn connect(&self, user: &str) -> TestClient {
        TestClient::connect(&self.ws_url(user)).await
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = reqwest::get(self.url(path)).await.expect("http request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("json body"))
    }

    /// Graceful shutdown, as on SIGTERM; waits until the server has drained.
    pub async fn shutdown(mut self) {
        self.stop_and_wait().await;
    }

    /// Stops the server and returns its temp dir, so a new server can reopen the same file.
    pub async fn shutdown_keep_db(mut self) -> (PathBuf, Option<tempfile::TempDir>) {
        self.stop_and_wait().await;
        (self.db_path.clone(), self._dir.take())
    }

    async fn stop_and_wait(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .expect("server stops within its grace period")
                .expect("server task")
                .expect("server ran without error");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
