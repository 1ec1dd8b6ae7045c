//! The real `chatterbox` binary as a child process.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The real `chatterbox` binary as a child process, for tests about process death, signals and
/// process limits. Its log lines are kept ([`ServerProcess::log`]).
pub struct ServerProcess {
    pub addr: SocketAddr,
    child: tokio::process::Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Starts the binary on `port` (0 = any) with `DB_PATH=db_path`; waits for its listen line.
    pub async fn spawn(db_path: &std::path::Path, port: u16, extra_env: &[(&str, &str)]) -> Self {
        let command = tokio::process::Command::new(env!("CARGO_BIN_EXE_chatterbox"));
        Self::spawn_command(command, db_path, port, extra_env).await
    }

    /// Like [`ServerProcess::spawn`], with at most `max_fds` open file descriptors
    /// (`ulimit -n`, soft and hard).
    pub async fn spawn_with_fd_limit(
        db_path: &std::path::Path,
        max_fds: u32,
        extra_env: &[(&str, &str)],
    ) -> Self {
        let mut command = tokio::process::Command::new("sh");
        command.args([
            "-c",
            &format!("ulimit -n {max_fds} && exec \"$0\""),
            env!("CARGO_BIN_EXE_chatterbox"),
        ]);
        Self::spawn_command(command, db_path, 0, extra_env).await
    }

    async fn spawn_command(
        mut command: tokio::process::Command,
        db_path: &std::path::Path,
        port: u16,
        extra_env: &[(&str, &str)],
    ) -> Self {
        use tokio::io::{AsyncBufReadExt, BufReader};
        command
            .env("PORT", port.to_string())
            .env("BIND_ADDR", "127.0.0.1")
            .env("DB_PATH", db_path)
            .env("RUST_LOG", "info")
            // CI exports these for the tests that want them; a default server uses neither.
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            // Every test client comes from 127.0.0.1: no per-address limits unless a test asks.
            .env("MAX_CONNECTIONS_PER_IP", "0")
            .env("MAX_CONNECTS_PER_IP_PER_SECOND", "0")
            .envs(extra_env.iter().copied())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("spawn chatterbox");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read stderr") {
                log.lock().unwrap().push(line.clone());
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
        let kept = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                kept.lock().unwrap().push(line);
            }
        });
        ServerProcess { addr, child, log }
    }

    pub fn ws_url(&self, user: &str) -> String {
        format!("ws://{}/ws?user={user}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The process id, e.g. to read its memory use from `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Every line the server has logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
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
