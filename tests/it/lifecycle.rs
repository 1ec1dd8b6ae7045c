//! Pings, silent peers and graceful shutdown.

use std::time::Duration;

use crate::support::{ServerProcess, TestClient, TestServer};

#[tokio::test]
async fn shutdown_sends_1001_to_every_client() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    alice.join("r").await;
    let mut bob = server.connect("bob").await;
    bob.join("r").await;
    let stopping = tokio::spawn(server.shutdown());
    for client in [&mut alice, &mut bob] {
        let (code, reason) = client.expect_close().await;
        assert_eq!(code, 1001);
        assert!(reason.contains("shutting down"));
    }
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown completes")
        .unwrap();
}

#[tokio::test]
async fn the_binary_exits_zero_on_sigterm_and_closes_clients() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::spawn(&dir.path().join("chat.db"), 0, &[]).await;
    let mut alice = TestClient::connect(&server.ws_url("alice")).await;
    alice.join("r").await;
    let exit = tokio::spawn(server.signal_and_wait("TERM"));
    assert_eq!(alice.expect_close().await.0, 1001);
    assert!(exit.await.unwrap().success());
}

#[tokio::test]
async fn a_peer_silent_for_two_ping_intervals_is_dropped_and_its_leave_sent() {
    let server = TestServer::start_with(|c| c.connection.ping_interval_seconds = 0.2).await;
    let mut watcher = server.connect("watcher").await;
    watcher.join("r").await;
    // The silent client joins, then never reads again, so it never answers pings.
    let mut silent = server.connect("silent").await;
    silent.join("r").await;
    watcher.recv_type("join").await;
    // The watcher keeps reading (its client answers pings), so only the silent one is dropped.
    let leave = watcher.recv_type("leave").await;
    assert_eq!(leave["user"], "silent");
    drop(silent);
    server.shutdown().await;
}

#[tokio::test]
async fn a_bad_setting_exits_nonzero_naming_it() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chatterbox"))
        .env("MAX_ROOMS", "lots")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("max-rooms") || stderr.contains("MAX_ROOMS"),
        "{stderr}"
    );

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chatterbox"))
        .env("ROOM_SHARDS", "3")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("ROOM_SHARDS"));
}

#[tokio::test]
async fn a_client_close_is_answered_with_a_close_frame() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    alice.join("r").await;
    alice.ws.close(None).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), alice.ws.next())
        .await
        .expect("a reply to the close");
    assert!(matches!(reply, Some(Ok(Message::Close(_)))), "{reply:?}");
    server.shutdown().await;
}

/// An HTTP client that sent half a request and went quiet cannot hold up shutdown past the grace
/// period (hyper would otherwise wait for its 30 s header-read timeout).
#[tokio::test]
async fn a_half_sent_request_does_not_hold_up_shutdown() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::spawn(
        &dir.path().join("chat.db"),
        0,
        &[("SHUTDOWN_GRACE_SECONDS", "1")],
    )
    .await;
    let mut half = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    half.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Once a whole request on another connection is answered, the partial one has been read too.
    let health = reqwest::get(server.url("/health")).await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let status = server.signal_and_wait("TERM").await;
    assert!(status.success(), "exit status {status}");
    drop(half);
}
