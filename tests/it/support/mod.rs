//! The test fixture: a real server on 127.0.0.1:0 with a temp SQLite file ([`TestServer`], built
//! with [`TestServer::builder`]), the real binary as a child process ([`ServerProcess`]), a real
//! WebSocket client that awaits the frame it expects under a timeout — never a sleep — and raw
//! helpers for what a well-behaved client would not do.

mod client;
mod fs;
pub mod postgres;
mod process;
mod raw;
mod server;
pub mod tokens;
pub mod upgrade;

use std::time::Duration;

pub use client::TestClient;
pub use fs::Tmpfs;
pub use process::ServerProcess;
pub use raw::{http_client_from, lock_sqlite, raw_exchange, raw_upgrade};
pub use server::TestServer;

/// For the real binary in tests that flood on purpose (far past any person's rate): turns the
/// request rate limits off.
pub const NO_RATE_LIMITS: (&str, &str) = ("RATE_LIMITS", "off");

/// How long a test waits for an expected event before failing.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Says that a test skipped and why, on the real stderr: the test harness captures `println!`
/// of passing tests, and a skip must be visible.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
}

/// The ids of a JSON array of messages (a `history` frame's or a REST page's `messages`).
pub fn ids(messages: &serde_json::Value) -> Vec<u64> {
    messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
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
