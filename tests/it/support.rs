//! The test fixture: a real server on 127.0.0.1:0 with a temp SQLite file, and a real WebSocket
//! client that awaits the frame it expects under a timeout — never a sleep.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for an expected event before failing.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Says that a test skipped and why, on the real stderr: the test harness captures `println!`
/// of passing tests, and a skip must be visible.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
}

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
    pub db_path: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), chatterbox::ServerError>>>,
    /// Keeps the temp dir (and its SQLite file) alive while the server runs.
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut chatterbox::Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let db_path = dir.path().join("chat.db");
        let mut server = Self::start_on(db_path, 0, configure).await;
        server._dir = Some(dir);
        server
    }

    /// Starts a server on `port` (0 = any) using the SQLite file at `db_path`.
    pub async fn start_on(
        db_path: PathBuf,
        port: u16,
        configure: impl FnOnce(&mut chatterbox::Config),
    ) -> TestServer {
        init_tracing();
        let mut config = chatterbox::Config {
            db_path: db_path.clone(),
            port,
            ..chatterbox::Config::default()
        };
        configure(&mut config);
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let server = chatterbox::Server::build(config)
            .await
            .expect("server builds");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(listener, async move {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            db_path,
            stop: Some(stop),
            task: Some(task),
            _dir: None,
        }
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

pub struct TestClient {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl TestClient {
    pub async fn connect(url: &str) -> TestClient {
        let (ws, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect timed out")
            .expect("websocket connects");
        TestClient { ws }
    }

    pub async fn send(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_text(&mut self, raw: &str) {
        self.ws
            .send(Message::text(raw.to_string()))
            .await
            .expect("send");
    }

    /// The next text frame, parsed; panics after [`TIMEOUT`].
    pub async fn recv(&mut self) -> Value {
        self.recv_within(TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("no frame within {TIMEOUT:?}"))
    }

    /// The next text frame, or `None` if none arrives within `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            match next {
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(&text).expect("server sends JSON"))
                }
                Some(Ok(Message::Close(frame))) => panic!("connection closed: {frame:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("websocket error: {e}"),
                None => panic!("connection ended"),
            }
        }
    }

    /// Skips frames until one of type `ty` arrives.
    pub async fn recv_type(&mut self, ty: &str) -> Value {
        loop {
            let frame = self.recv().await;
            if frame["type"] == ty {
                return frame;
            }
        }
    }

    /// Joins `room` and returns the presence frame that completes the join.
    pub async fn join(&mut self, room: &str) -> Value {
        self.send(json!({"type": "join", "room": room})).await;
        self.recv_type("presence").await
    }

    pub async fn chat(&mut self, room: &str, text: &str) {
        self.send(json!({"type": "chat", "room": room, "text": text}))
            .await;
    }

    /// Waits for the server to close the connection; returns the close frame's code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("connection not closed within {TIMEOUT:?}"),
                Ok(Some(Ok(Message::Close(Some(frame))))) => {
                    return (u16::from(frame.code), frame.reason.to_string())
                }
                Ok(Some(Ok(Message::Close(None)))) => return (1005, String::new()),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => panic!("expected a close frame, got error {e}"),
                Ok(None) => panic!("expected a close frame, stream ended"),
            }
        }
    }
}

/// The real `chatterbox` binary as a child process, for tests about process death and signals.
pub struct ServerProcess {
    pub addr: SocketAddr,
    child: tokio::process::Child,
}

impl ServerProcess {
    /// Starts the binary on `port` (0 = any) with `DB_PATH=db_path`; waits for its listen line.
    pub async fn spawn(db_path: &std::path::Path, port: u16, extra_env: &[(&str, &str)]) -> Self {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_chatterbox"));
        command
            .env("PORT", port.to_string())
            .env("BIND_ADDR", "127.0.0.1")
            .env("DB_PATH", db_path)
            .env("RUST_LOG", "info")
            .envs(extra_env.iter().copied())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("spawn chatterbox");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read stderr") {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap();
                    return addr.parse::<SocketAddr>().expect("listen address");
                }
            }
            panic!("server exited before listening");
        })
        .await
        .expect("server starts listening");
        // Keep draining stderr so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        ServerProcess { addr, child }
    }

    pub fn ws_url(&self, user: &str) -> String {
        format!("ws://{}/ws?user={user}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a signal (e.g. "TERM", "KILL") and waits for the process to exit.
    pub async fn signal_and_wait(mut self, signal: &str) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), pid])
            .status()
            .expect("kill");
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("server exits after the signal")
            .expect("wait")
    }
}

/// Sends `count` chats to `room` from a fresh client and waits until each is echoed back.
pub async fn send_and_confirm(url: &str, room: &str, count: usize) -> Vec<u64> {
    let mut client = TestClient::connect(url).await;
    client.join(room).await;
    for i in 0..count {
        client.chat(room, &format!("m{i}")).await;
    }
    let mut ids = Vec::with_capacity(count);
    while ids.len() < count {
        let chat = client.recv_type("chat").await;
        ids.push(chat["id"].as_u64().unwrap());
    }
    ids
}

/// Polls a metric on `/metrics` until `ready(value)` holds; panics after 10 s.
pub async fn wait_for_metric(metrics_url: &str, name: &str, ready: impl Fn(f64) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let body = reqwest::get(metrics_url)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value = metric_value(&body, name);
        if value.is_some_and(&ready) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "metric {name} never got ready (last: {value:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // polling interval, not a sync point
    }
}

/// The value of an unlabelled sample in a Prometheus exposition.
pub fn metric_value(exposition: &str, name: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let value = rest.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}
