//! Every frame the server sends is bounded (MAX_SERVER_FRAME_BYTES), whatever a small request
//! asks for, and the history writer's queue is bounded in bytes (HISTORY_QUEUE_BYTES).

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{lock_sqlite, TestClient, TestServer, TIMEOUT};

/// 4,000 quotes: 4,000 characters, 8,000 bytes as JSON — the kind of text that made one
/// `history` frame tens of megabytes.
fn escaped_text(i: usize) -> String {
    format!("{i:04}{}", "\"".repeat(3996))
}

/// The next text frame of type `ty`, with its size on the wire (payload bytes).
async fn recv_sized(client: &mut TestClient, ty: &str) -> (usize, Value) {
    tokio::time::timeout(TIMEOUT, async {
        loop {
            match client.ws.next().await.unwrap().unwrap() {
                Message::Text(text) => {
                    let value: Value = serde_json::from_str(&text).unwrap();
                    if value["type"] == ty {
                        return (text.len(), value);
                    }
                }
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {ty} frame within {TIMEOUT:?}"))
}

fn ids(frame: &Value) -> Vec<u64> {
    frame["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}

/// A join and a 43-byte resume into a room of long, escape-heavy messages each get one
/// `history` frame under 64 KiB: the newest messages that fit, marked `truncated` with `before`,
/// and the rest is a REST page away.
#[tokio::test]
async fn history_replies_are_cut_to_the_frame_budget_and_say_where_to_page() {
    // One REST page for the rest (their byte budget is another test's business).
    let server = TestServer::start_with(|c| c.history.max_page_bytes = 1 << 20).await;
    let max = chatterbox::Config::default().limits.max_server_frame_bytes;
    let mut alice = server.connect("alice").await;
    alice.join("r").await;
    const MESSAGES: usize = 30; // within the chat burst; 240 kB of frames
    for i in 0..MESSAGES {
        alice.chat("r", &escaped_text(i)).await;
        alice.recv_type("chat").await;
    }

    let mut bob = server.connect("bob").await;
    bob.send(json!({"type":"join","room":"r"})).await;
    let (size, history) = recv_sized(&mut bob, "history").await;
    assert!(size <= max, "a plain join's history is {size} bytes");
    let kept = ids(&history);
    assert!(!kept.is_empty() && kept.len() < MESSAGES, "{kept:?}");
    assert_eq!(
        *kept.last().unwrap(),
        MESSAGES as u64,
        "the newest are kept"
    );
    assert_eq!(history["truncated"], true);
    assert_eq!(history["before"], kept[0]);
    assert!(history.get("recovered").is_none());

    // The 43-byte request from the issue: a resume from the very start.
    let resume = r#"{"type":"join","room":"r","since":0}"#;
    let mut carol = server.connect("carol").await;
    carol.send_text(resume).await;
    let (size, history) = recv_sized(&mut carol, "history").await;
    assert!(size <= max, "a resume's history is {size} bytes");
    assert_eq!(history["recovered"], true, "nothing was pruned");
    assert_eq!(history["truncated"], true);
    let before = history["before"].as_u64().unwrap();
    assert_eq!(before, ids(&history)[0]);

    // What was left out is one REST page away, and joins the frame's messages without a gap.
    let (status, page) = server
        .get_json(&format!("/api/rooms/r/messages?before={before}&limit=500"))
        .await;
    assert_eq!(status, 200);
    let mut all = ids(&page);
    all.extend(ids(&history));
    assert_eq!(all, (1..=MESSAGES as u64).collect::<Vec<_>>());
    server.shutdown().await;
}

/// A short history is sent whole, with neither marker: old clients see what they always saw.
#[tokio::test]
async fn a_history_that_fits_is_not_marked() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    alice.join("r").await;
    alice.chat("r", "hello").await;
    alice.recv_type("chat").await;
    let mut bob = server.connect("bob").await;
    bob.send(json!({"type":"join","room":"r"})).await;
    let history = bob.recv_type("history").await;
    assert_eq!(
        history,
        json!({"type":"history","room":"r","messages":[history["messages"][0].clone()]})
    );
    server.shutdown().await;
}

/// A room with more users than a presence frame can list: the frame lists the first that fit
/// and says how many there are.
#[tokio::test]
async fn presence_is_cut_to_the_frame_budget() {
    const USERS: usize = 20;
    let server = TestServer::start_with(|c| {
        c.limits.max_text_bytes = 100;
        c.limits.max_server_frame_bytes = 1024;
    })
    .await;
    let mut clients = Vec::new();
    for i in 0..USERS {
        // 32 characters, 64 bytes in JSON: twenty of them are more than 1 KiB.
        let name = format!("{i:02}{}", "%C3%BC".repeat(30));
        let mut client = server.connect(&name).await;
        client.send(json!({"type":"join","room":"crowd"})).await;
        let (size, presence) = recv_sized(&mut client, "presence").await;
        assert!(size <= 1024, "presence of {} users is {size} bytes", i + 1);
        clients.push((client, presence));
    }
    let (_, last) = clients.last().unwrap();
    assert_eq!(last["truncated"], true);
    assert_eq!(last["count"], USERS);
    let listed = last["users"].as_array().unwrap();
    assert!(!listed.is_empty() && listed.len() < USERS);
    assert!(listed[0].as_str().unwrap().starts_with("00"), "sorted");
    let (_, first) = &clients[0];
    assert!(first.get("truncated").is_none(), "one user fits");
    server.shutdown().await;
}

/// With the store locked, long texts fill HISTORY_QUEUE_BYTES long before the queue's message
/// capacity: later chats wait (the connection stays usable), and all go out once the store is
/// back.
#[tokio::test]
async fn the_writer_queue_is_bounded_in_bytes() {
    let server = TestServer::start_with(|c| {
        c.history.history_batch_size = 1;
        c.history.history_queue_bytes = 64 * 1024; // about 7 messages of 4,000 characters
        c.store.sqlite_busy_timeout_ms = 20;
        c.history.store_wait_seconds = 60.0;
    })
    .await;
    let mut alice = server.connect("alice").await;
    alice.join("r").await;
    let lock = lock_sqlite(&server.db_path).await;
    const CHATS: u64 = 20;
    let text = "x".repeat(4000);
    for _ in 0..CHATS {
        alice.chat("r", &text).await;
    }
    // Answered in order: this error comes only once every chat before it has been published.
    alice.send(json!({"type":"leave","room":"elsewhere"})).await;
    // The pong is queued as the ping is read, after the request above: if that request had been
    // answered, its error would be ahead of the pong.
    alice
        .ws
        .send(Message::Ping(b"?".to_vec().into()))
        .await
        .unwrap();
    let mut echoed = 0u64;
    tokio::time::timeout(TIMEOUT, async {
        loop {
            match alice.ws.next().await.unwrap().unwrap() {
                Message::Pong(_) => return,
                Message::Text(text) => {
                    assert!(!text.contains("error"), "answered early: {text}");
                    echoed += 1;
                }
                _ => {}
            }
        }
    })
    .await
    .expect("pong while chats wait for the writer");
    assert!(
        echoed <= 9,
        "{echoed} of {CHATS} accepted: the byte budget holds about 7"
    );
    lock.release().await;
    // The error is queued as the leave is answered, the echoes come through the room's feed:
    // either may arrive first.
    let mut answered = false;
    while echoed < CHATS || !answered {
        let frame = alice.recv().await;
        if frame["type"] == "error" {
            assert_eq!(frame["code"], "not_member");
            answered = true;
        } else if frame["type"] == "chat" {
            echoed += 1;
            assert_eq!(frame["id"], echoed, "in order, none lost");
        }
    }
    server.shutdown().await;
}
