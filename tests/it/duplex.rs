//! The connection is full duplex: a client's requests are read while its output waits, and a
//! request that waits on something slow does not stop the connection.

use std::time::Duration;

use chatterbox::config::Switch;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{lock_sqlite, TestClient, TestServer, TIMEOUT};

/// 4,000-character texts: 6,000 of them are 24 MB of echoes, far more than the socket buffers of
/// a client with a small receive buffer hold (the server's send buffer grows to 4 MB here).
const TEXT_CHARS: usize = 4000;
const MESSAGES: usize = 6000;

/// A publisher that never reads floods a room while a reader reads: the server keeps reading the
/// publisher (half duplex stopped once its socket filled), so the reader gets every message in
/// order; then the publisher's close is read too, and its leave announced at once — long before
/// its send timeout.
#[tokio::test]
async fn a_publisher_that_never_reads_is_still_read_and_its_close_is_seen() {
    let server = TestServer::start_with(|c| {
        // Floods on purpose, far past any person's rate: limits would refuse it.
        c.rate.rate_limits = Switch::Off;
        c.connection.send_timeout_seconds = 300.0;
        // The reader must never lag (and get a gap) on a busy machine: it checks every id.
        c.rooms.room_channel_capacity = 16 * 1024;
    })
    .await;
    let mut reader = server.connect("reader").await;
    reader.join("r").await;
    let mut publisher = TestClient::connect_small_buffer(&server.ws_url("publisher")).await;
    publisher.join("r").await;
    assert_eq!(reader.recv_type("join").await["user"], "publisher");

    let text = "x".repeat(TEXT_CHARS - 8);
    let flood = tokio::spawn(async move {
        for i in 0..MESSAGES {
            let chat = json!({"type":"chat","room":"r","text":format!("{i:07} {text}")});
            publisher
                .ws
                .send(Message::text(chat.to_string()))
                .await
                .expect("the server keeps reading the publisher");
        }
        publisher.ws.send(Message::Close(None)).await.unwrap();
        publisher // kept open (and unread) until the test ends
    });
    for i in 0..MESSAGES {
        let chat = reader.recv_type("chat").await;
        assert_eq!(chat["id"], i as u64 + 1);
        assert!(chat["text"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{i:07} ")));
    }
    let publisher = tokio::time::timeout(TIMEOUT, flood).await.unwrap().unwrap();
    let leave = reader.recv_type("leave").await;
    assert_eq!(leave["user"], "publisher");
    drop(publisher);
    server.shutdown().await;
}

/// A member that never reads, in a room others flood, is dropped once its socket has taken
/// nothing for SEND_TIMEOUT_SECONDS, and its leave is announced; the room never waits for it.
/// (A regression test: the old half-duplex session did this too.)
#[tokio::test]
async fn a_member_whose_socket_takes_nothing_is_dropped_after_the_send_timeout() {
    let server = TestServer::start_with(|c| {
        // Floods on purpose, far past any person's rate: limits would refuse it.
        c.rate.rate_limits = Switch::Off;
        c.connection.send_timeout_seconds = 1.0;
    })
    .await;
    let mut stalled = TestClient::connect_small_buffer(&server.ws_url("stalled")).await;
    stalled.join("r").await;
    let mut publisher = server.connect("publisher").await;
    publisher.join("r").await;
    let text = "y".repeat(TEXT_CHARS);
    // 12 MB of frames: more than the stalled member's socket buffers hold.
    let mut echoes = 0u64;
    let mut left = false;
    for _ in 1..=3000u64 {
        publisher.chat("r", &text).await;
        loop {
            let frame = publisher.recv().await;
            match frame["type"].as_str().unwrap() {
                "chat" => {
                    echoes += 1;
                    assert_eq!(frame["id"], echoes, "the room never waits for it");
                    break;
                }
                "leave" => {
                    assert_eq!(frame["user"], "stalled");
                    left = true;
                }
                _ => {}
            }
        }
    }
    while !left {
        left = publisher.recv_type("leave").await["user"] == "stalled";
    }
    drop(stalled);
    server.shutdown().await;
}

/// While a chat waits for room in the history writer's queue (the store is locked), the
/// connection still answers pings; once the store is back, every chat goes out in order.
#[tokio::test]
async fn a_request_waiting_for_the_writer_does_not_stop_the_connection() {
    let server = TestServer::start_with(|c| {
        // The writer takes one message, then retries it against the locked store: the queue of
        // two fills at once and later chats wait for it.
        c.history.history_batch_size = 1;
        c.history.history_queue_capacity = 2;
        c.store.sqlite_busy_timeout_ms = 20;
        c.history.store_wait_seconds = 60.0;
    })
    .await;
    let mut alice = server.connect("alice").await;
    alice.join("r").await;
    let lock = lock_sqlite(&server.db_path).await;
    for i in 0..10 {
        alice.chat("r", &format!("m{i}")).await;
    }
    // Some chats went out before the queue filled; the rest wait behind the first that waits.
    let mut delivered: Vec<String> = ping_pong(&mut alice)
        .await
        .iter()
        .map(|chat| chat["text"].as_str().unwrap().to_string())
        .collect();
    assert!(
        delivered.len() < 10,
        "some chats are still waiting: {delivered:?}"
    );

    lock.release().await;
    while delivered.len() < 10 {
        delivered.push(
            alice.recv_type("chat").await["text"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let expected: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    assert_eq!(delivered, expected, "in the order they were sent");
    server.shutdown().await;
}

/// Requests read while one waits are answered in order after it: a leave sent behind a waiting
/// chat is not applied before that chat is published.
#[tokio::test]
async fn requests_behind_a_waiting_one_keep_their_order() {
    let server = TestServer::start_with(|c| {
        c.history.history_batch_size = 1;
        c.history.history_queue_capacity = 1;
        c.store.sqlite_busy_timeout_ms = 20;
        c.history.store_wait_seconds = 60.0;
    })
    .await;
    let mut watcher = server.connect("watcher").await;
    watcher.join("r").await;
    let mut alice = server.connect("alice").await;
    alice.join("r").await;
    watcher.recv_type("join").await;
    let lock = lock_sqlite(&server.db_path).await;
    for i in 0..5 {
        alice.chat("r", &format!("m{i}")).await;
    }
    alice.send(json!({"type":"leave","room":"r"})).await;
    // The pong proves the server has read the leave (frames are read in order) before the
    // store comes back: the leave must still not overtake the chats.
    ping_pong(&mut alice).await;
    lock.release().await;
    let mut seen = Vec::new();
    loop {
        let frame = watcher.recv().await;
        match frame["type"].as_str().unwrap() {
            "chat" => seen.push(frame["text"].as_str().unwrap().to_string()),
            "leave" => break,
            _ => {}
        }
    }
    assert_eq!(seen, ["m0", "m1", "m2", "m3", "m4"]);
    server.shutdown().await;
}

/// Sends a ping and waits (well under the writer's wait) for its pong; returns the text frames
/// that came before it.
async fn ping_pong(client: &mut TestClient) -> Vec<serde_json::Value> {
    client
        .ws
        .send(Message::Ping(b"still there?".to_vec().into()))
        .await
        .unwrap();
    let mut before = Vec::new();
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match client.ws.next().await.unwrap().unwrap() {
                Message::Pong(payload) => return payload,
                Message::Text(text) => before.push(serde_json::from_str(&text).unwrap()),
                _ => {}
            }
        }
    })
    .await
    .expect("a ping is answered while a request waits for the writer");
    assert_eq!(&pong[..], b"still there?");
    before
}

/// A resume from a room the client is already in that must read the store waits for the
/// writer; live frames published meanwhile come after its history, not before.
#[tokio::test]
async fn a_resume_waiting_on_the_store_keeps_live_frames_behind_its_history() {
    let server = TestServer::start_with(|c| {
        // Floods on purpose, far past any person's rate: limits would refuse it.
        c.rate.rate_limits = Switch::Off;
        c.history.max_history = 5;
        c.history.history_ring_size = 10;
        c.history.history_flush_interval_ms = 1000;
    })
    .await;
    let mut member = server.connect("member").await;
    member.join("r").await;
    let mut writer = server.connect("writer").await;
    writer.join("r").await;
    for i in 1..=30u64 {
        writer.chat("r", &format!("m{i}")).await;
        assert_eq!(member.recv_type("chat").await["id"], i);
    }
    // Ids 2..=20 are past the ring and not committed yet: the resume waits for the writer.
    member
        .send(json!({"type":"join","room":"r","since":1}))
        .await;
    assert!(
        ping_pong(&mut member).await.is_empty(),
        "nothing before the pong"
    );
    for i in 31..=35 {
        writer.chat("r", &format!("m{i}")).await;
    }
    let history = member.recv_type("history").await;
    assert_eq!(history["recovered"], true);
    let ids: Vec<u64> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (2..=30).collect::<Vec<_>>());
    let mut live = Vec::new();
    while live.len() < 5 {
        let frame = member.recv().await;
        assert_ne!(frame["type"], "history");
        if frame["type"] == "chat" {
            live.push(frame["id"].as_u64().unwrap());
        }
    }
    assert_eq!(
        live,
        vec![31, 32, 33, 34, 35],
        "after the history, each once"
    );
    server.shutdown().await;
}

/// A member whose socket is full is still read: its `leave`, sent after a flood it never read,
/// is handled at once — long before its send timeout would drop it.
#[tokio::test]
async fn a_member_with_a_full_socket_is_still_read() {
    let server = TestServer::start_with(|c| {
        c.connection.send_timeout_seconds = 300.0;
        c.rate.rate_limits = chatterbox::config::Switch::Off; // the publisher floods on purpose
    })
    .await;
    let mut stalled = TestClient::connect_small_buffer(&server.ws_url("stalled")).await;
    stalled.join("r").await;
    let mut publisher = server.connect("publisher").await;
    publisher.join("r").await;
    let text = "y".repeat(TEXT_CHARS);
    for i in 1..=3000u64 {
        publisher.chat("r", &text).await;
        assert_eq!(publisher.recv_type("chat").await["id"], i);
    }
    stalled.send(json!({"type":"leave","room":"r"})).await;
    let leave = publisher.recv_type("leave").await;
    assert_eq!(leave["user"], "stalled");
    drop(stalled);
    server.shutdown().await;
}
