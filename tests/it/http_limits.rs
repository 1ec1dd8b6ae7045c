//! What one HTTP connection may cost: request head size (431), the time to send a head, and the
//! time a response may wait for a client that does not read.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{metric_value, raw_exchange, ServerProcess, TestServer, TIMEOUT};

/// A request whose head is `header_bytes` long (roughly), complete or `finished: false`.
fn request_with_header(header_bytes: usize, finished: bool) -> Vec<u8> {
    let mut request =
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Padding: ".to_vec();
    request.resize(header_bytes, b'a');
    if finished {
        request.extend_from_slice(b"\r\n\r\n");
    }
    request
}

#[tokio::test]
async fn request_heads_over_max_request_header_bytes_get_431() {
    let server = TestServer::start().await;
    let fits = raw_exchange(server.addr, &request_with_header(12 * 1024, true)).await;
    assert!(fits.starts_with("HTTP/1.1 200"), "{fits}");
    let too_large = raw_exchange(server.addr, &request_with_header(17 * 1024, true)).await;
    assert!(
        too_large.starts_with("HTTP/1.1 431"),
        "a 17 KiB head gets 431 Request Header Fields Too Large: {too_large:?}"
    );
    server.shutdown().await;
}

/// Resident memory of process `pid`, from `/proc`.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Before the cap, 300 half-sent requests with 400 kB heads held 107 MB for 30 s (issue 13). Now
/// the server stops reading at MAX_REQUEST_HEADER_BYTES and closes each connection at once.
#[tokio::test]
async fn half_sent_400_kb_heads_are_cut_off_without_growing_memory() {
    const CLIENTS: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::spawn(&dir.path().join("chat.db"), 0, &[]).await;
    let before = rss_bytes(server.pid());
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let addr = server.addr;
        clients.push(tokio::spawn(async move {
            let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let head = request_with_header(400_000, false);
            // Fails part-way once the server has closed; without the cap it would succeed and
            // the server would wait 30 s for the rest of the head.
            let _ = tcp.write_all(&head).await;
            let mut rest = Vec::new();
            let closed = tokio::time::timeout(TIMEOUT, tcp.read_to_end(&mut rest)).await;
            assert!(
                closed.is_ok(),
                "the server kept a 400 kB half-sent head open"
            );
            tcp
        }));
    }
    let mut open = Vec::new();
    for client in clients {
        open.push(client.await.unwrap());
    }
    let grown = rss_bytes(server.pid()).saturating_sub(before);
    assert!(
        grown < 32 * 1024 * 1024,
        "{CLIENTS} oversized heads grew the server by {} MiB",
        grown / (1024 * 1024)
    );
    let health = reqwest::get(server.url("/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    drop(open);
}

#[tokio::test]
async fn a_head_not_sent_within_header_read_timeout_closes_the_connection() {
    let server = TestServer::start_with(|c| c.net.header_read_timeout_seconds = 0.5).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(TIMEOUT, tcp.read_to_end(&mut rest))
        .await
        .expect("closed within the configured timeout, not hyper's 30 s")
        .ok();
    assert!(started.elapsed() >= Duration::from_millis(400));
    server.shutdown().await;
}

/// Before the write timeout, 40 unread 12 MB pages held 534 MB for as long as the clients kept
/// their sockets open (issue 13).
#[tokio::test]
async fn a_response_the_client_does_not_read_is_dropped_after_http_write_timeout() {
    let server = TestServer::start_with(|c| {
        c.net.http_write_timeout_seconds = 1.0;
        c.history.max_page_bytes = 8 * 1024 * 1024;
        c.rate.rate_limits = chatterbox::config::Switch::Off;
    })
    .await;
    let mut writer = server.connect("writer").await;
    writer.join("big").await;
    let text = "x".repeat(4000);
    for _ in 0..300 {
        writer.chat("big", &text).await;
    }
    for _ in 0..300 {
        writer.recv_type("chat").await;
    }
    let page = "GET /api/rooms/big/messages?limit=300 HTTP/1.1\r\nHost: x\r\n\r\n";
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(server.addr).await.unwrap();
    let timeouts_before = write_timeouts(&server).await;
    let started = Instant::now();
    // About 10 MB of responses asked for; none of it read.
    tcp.write_all(page.repeat(8).as_bytes()).await.unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while write_timeouts(&server).await <= timeouts_before {
        assert!(
            Instant::now() < deadline,
            "the unread response was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // polling interval, not a sync point
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "dropped after {elapsed:?}"
    );
    let mut got = Vec::new();
    let _ = tokio::time::timeout(TIMEOUT, tcp.read_to_end(&mut got))
        .await
        .expect("the connection is closed");
    assert!(
        got.len() < 8 * 1_000_000,
        "read {} bytes: the responses were not dropped",
        got.len()
    );
    drop(writer);
    server.shutdown().await;
}

async fn write_timeouts(server: &TestServer) -> f64 {
    let body = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metric_value(&body, "chatterbox_http_write_timeouts_total").unwrap_or(0.0)
}
