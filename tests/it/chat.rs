//! Rooms, presence, chat fan-out, leaves, many rooms per client, churn and slow consumers.

use std::time::Duration;

use chatterbox::config::Switch;
use futures_util::StreamExt;
use serde_json::json;

use crate::support::{raw_upgrade, TestClient, TestServer};

#[tokio::test]
async fn join_chat_and_leave_reach_every_member() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let presence = alice.join("general").await;
    assert_eq!(
        presence,
        json!({"type":"presence","room":"general","users":["alice"]})
    );

    let mut bob = server.connect("bob").await;
    let presence = bob.join("general").await;
    assert_eq!(presence["users"], json!(["alice", "bob"]));
    assert_eq!(
        alice.recv().await,
        json!({"type":"join","room":"general","user":"bob"})
    );

    bob.chat("general", "Hello!").await;
    for client in [&mut alice, &mut bob] {
        let chat = client.recv().await;
        assert_eq!(chat["type"], "chat");
        assert_eq!(chat["room"], "general");
        assert_eq!(chat["user"], "bob");
        assert_eq!(chat["text"], "Hello!");
        assert_eq!(chat["id"], 1);
        let ts = chat["timestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.contains('T'), "RFC 3339 UTC: {ts}");
    }

    bob.send(json!({"type":"leave","room":"general"})).await;
    assert_eq!(
        alice.recv().await,
        json!({"type":"leave","room":"general","user":"bob"})
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_can_be_in_three_rooms_at_once() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    for room in ["a", "b", "c"] {
        alice.join(room).await;
        bob.join(room).await;
        assert_eq!(alice.recv_type("join").await["room"], room);
    }
    for room in ["a", "b", "c"] {
        bob.chat(room, &format!("to {room}")).await;
    }
    // Order is kept within a room, not across rooms.
    let mut got = Vec::new();
    for _ in 0..3 {
        let chat = alice.recv_type("chat").await;
        assert_eq!(
            chat["text"],
            format!("to {}", chat["room"].as_str().unwrap())
        );
        got.push(chat["room"].as_str().unwrap().to_string());
    }
    got.sort();
    assert_eq!(got, ["a", "b", "c"]);
    let (_, rooms) = server.get_json("/api/rooms").await;
    assert_eq!(
        rooms,
        json!([{"name":"a","user_count":2},{"name":"b","user_count":2},{"name":"c","user_count":2}])
    );
    server.shutdown().await;
}

#[tokio::test]
async fn presence_is_per_user_not_per_socket() {
    let server = TestServer::start().await;
    let mut watcher = server.connect("watcher").await;
    watcher.join("r").await;

    let mut tab1 = server.connect("alice").await;
    tab1.join("r").await;
    assert_eq!(watcher.recv().await["type"], "join");
    let mut tab2 = server.connect("alice").await;
    let presence = tab2.join("r").await;
    assert_eq!(
        presence["users"],
        json!(["alice", "watcher"]),
        "listed once"
    );

    // Closing one tab announces nothing; closing the last announces the leave — exactly once.
    tab1.ws.close(None).await.unwrap();
    while tab1.ws.next().await.is_some() {} // the server has finished with tab1
    tab2.ws.close(None).await.unwrap();
    assert_eq!(
        watcher.recv_type("leave").await,
        json!({"type":"leave","room":"r","user":"alice"})
    );
    watcher.chat("r", "marker").await;
    let next = watcher.recv().await;
    assert_eq!(
        next["text"], "marker",
        "only one leave for two tabs: {next}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn every_way_of_disconnecting_announces_the_leave() {
    let server = TestServer::start().await;
    let mut watcher = server.connect("watcher").await;
    watcher.join("r").await;

    // A TCP drop without a close frame.
    let mut dropper = server.connect("dropper").await;
    dropper.join("r").await;
    watcher.recv_type("join").await;
    drop(dropper);
    assert_eq!(watcher.recv_type("leave").await["user"], "dropper");

    // A close frame.
    let mut closer = server.connect("closer").await;
    closer.join("r").await;
    watcher.recv_type("join").await;
    closer.ws.close(None).await.unwrap();
    assert_eq!(watcher.recv_type("leave").await["user"], "closer");
    server.shutdown().await;
}

#[tokio::test]
async fn rooms_disappear_when_their_last_member_leaves() {
    // 400 joins and leaves in a row, past the join burst: limits would refuse them.
    let server = TestServer::start_with(|c| c.rate.rate_limits = Switch::Off).await;
    let mut alice = server.connect("alice").await;
    for i in 0..200 {
        let room = format!("room-{i}");
        alice.join(&room).await;
        alice.send(json!({"type":"leave","room":room})).await;
    }
    alice.join("last").await;
    let (_, rooms) = server.get_json("/api/rooms").await;
    assert_eq!(rooms, json!([{"name":"last","user_count":1}]));
    server.shutdown().await;
}

/// The original crashed when many clients joined and vanished at once.
#[tokio::test]
async fn two_hundred_clients_join_and_vanish_at_once() {
    let server = TestServer::start().await;
    let url = server.ws_url("x");
    let mut tasks = Vec::new();
    for i in 0..200 {
        let url = url.replace("user=x", &format!("user=u{i}"));
        tasks.push(tokio::spawn(async move {
            let mut client = TestClient::connect(&url).await;
            client.send(json!({"type":"join","room":"crowd"})).await;
            client
                .send(json!({"type":"chat","room":"crowd","text":"hi"}))
                .await;
            drop(client); // vanish without reading or closing
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Still serving: a new client joins and chats normally.
    let mut carol = server.connect("carol").await;
    carol.join("crowd").await;
    carol.chat("crowd", "still alive").await;
    assert_eq!(carol.recv_type("chat").await["text"], "still alive");
    let (status, health) = server.get_json("/health").await;
    assert_eq!((status, &health["status"]), (200, &json!("ok")));
    server.shutdown().await;
}

/// A client that never reads must not slow anyone else, and is told what it missed when it
/// catches up.
#[tokio::test]
async fn a_client_that_never_reads_does_not_slow_the_room() {
    let server = TestServer::start_with(|c| {
        // Floods on purpose, far past any person's rate: limits would refuse it.
        c.rate.rate_limits = Switch::Off;
        c.rooms.room_channel_capacity = 16;
        c.connection.outbox_budget_bytes = 1024;
    })
    .await;
    let mut stalled = server.connect("stalled").await;
    stalled.join("busy").await;
    let mut reader = server.connect("reader").await;
    reader.join("busy").await;
    let mut writer = server.connect("writer").await;
    writer.join("busy").await;

    let text = "x".repeat(3000);
    let total = 3000u64;
    for i in 1..=total {
        writer.chat("busy", &text).await;
        // The reader sees every message in order, promptly.
        let chat = reader.recv_type("chat").await;
        assert_eq!(chat["id"], i);
        // (The writer reads its echo too: a client that stops reading also stops being read.)
        writer.recv_type("chat").await;
    }
    // The stalled client, once it reads, learns exactly what it missed and resumes live.
    let mut last = 0u64;
    let mut saw_gap = false;
    while last < total {
        let frame = stalled.recv().await;
        match frame["type"].as_str().unwrap() {
            "chat" => {
                let id = frame["id"].as_u64().unwrap();
                assert_eq!(id, last + 1, "ids are contiguous once gaps are counted");
                last = id;
            }
            "gap" => {
                saw_gap = true;
                assert_eq!(frame["from"].as_u64().unwrap(), last + 1);
                assert_eq!(
                    frame["missed"].as_u64().unwrap(),
                    frame["to"].as_u64().unwrap() - last
                );
                last = frame["to"].as_u64().unwrap();
            }
            _ => {}
        }
    }
    assert!(saw_gap, "a stalled client must be told about the gap");
    server.shutdown().await;
}

#[tokio::test]
async fn joining_twice_is_harmless() {
    let server = TestServer::start().await;
    let mut watcher = server.connect("watcher").await;
    watcher.join("r").await;
    let mut alice = server.connect("alice").await;
    alice.join("r").await;
    alice.join("r").await;
    watcher.recv_type("join").await;
    alice.chat("r", "once").await;
    // Exactly one copy arrives, and no second join was announced.
    assert_eq!(watcher.recv().await["text"], "once");
    assert_eq!(alice.recv_type("chat").await["text"], "once");
    assert!(alice
        .recv_within(Duration::from_millis(200))
        .await
        .is_none());
    server.shutdown().await;
}

/// A client may send its first frames right behind the upgrade request, before the 101 arrives;
/// those bytes were read by the HTTP parser and must still reach the session.
#[tokio::test]
async fn frames_sent_with_the_upgrade_request_are_not_lost() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::protocol::Role;

    let server = TestServer::start().await;
    // A masked text frame (mask 0: the payload is unchanged), as a client must send.
    let join = br#"{"type":"join","room":"early"}"#;
    let mut frame = vec![0x81, 0x80 | join.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(join);
    let (tcp, head) = raw_upgrade(server.addr, "/ws?user=eager", "", &frame).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(tcp, Role::Client, None).await;
    let frame = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
        .await
        .expect("the join is answered")
        .unwrap()
        .unwrap();
    let presence: serde_json::Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
    assert_eq!(presence["type"], "presence", "{presence}");
    assert_eq!(presence["users"], serde_json::json!(["eager"]));
    server.shutdown().await;
}
