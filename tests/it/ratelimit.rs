//! Per-connection rate limits: a chat bucket and a join/leave bucket, `rate_limited` with
//! `retry_after_ms`, a 1008 close for a client that keeps going, `RATE_LIMITS=off`, and a
//! flooded room that stays fair to its other members.

use std::collections::BTreeSet;
use std::time::Duration;

use chatterbox::config::Switch;
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{TestClient, TestServer, TIMEOUT};

fn rate_limited(frame: &Value) -> u64 {
    assert_eq!(frame["type"], "error", "{frame}");
    assert_eq!(frame["code"], "rate_limited", "{frame}");
    frame["retry_after_ms"].as_u64().expect("retry_after_ms")
}

/// Past the burst, chats (and invalid frames, which count too) are refused with a wait that
/// works; nothing refused reaches the room or the store, and the join bucket is separate.
#[tokio::test]
async fn chats_past_the_burst_are_refused_with_a_retry_time_and_never_published() {
    let server = TestServer::start_with(|c| {
        c.rate.chat_rate_per_second = 2.0;
        c.rate.chat_burst = 5;
        c.rate.rate_limit_max_refusals = 0; // never close, for this test
    })
    .await;
    let mut alice = server.connect("alice").await;
    alice.join("r").await;
    let mut bob = server.connect("bob").await;
    bob.join("r").await;
    alice.recv_type("join").await;

    alice.send_text("{not json").await; // counts against the chat bucket
    assert_eq!(alice.recv().await["code"], "invalid_json");
    for i in 1..=4 {
        alice.chat("r", &format!("m{i}")).await;
        assert_eq!(alice.recv().await["id"], i);
    }
    for _ in 0..3 {
        alice.chat("r", "too fast").await;
        let wait = rate_limited(&alice.recv().await);
        assert!(
            (1..=500).contains(&wait),
            "one token is 500 ms away: {wait}"
        );
    }
    // Joins and leaves draw from their own bucket.
    alice.join("other").await;

    // Waiting as told is enough (the wait is what is under test here, not a synchronisation).
    alice.chat("r", "now").await;
    let wait = rate_limited(&alice.recv().await);
    tokio::time::sleep(Duration::from_millis(wait)).await;
    alice.chat("r", "after waiting").await;
    let chat = alice.recv().await;
    assert_eq!(
        (chat["id"].as_u64(), chat["text"].as_str()),
        (Some(5), Some("after waiting"))
    );

    // Bob saw exactly the accepted chats; the store holds exactly them.
    let mut seen = Vec::new();
    while seen.len() < 5 {
        seen.push(bob.recv_type("chat").await["text"].clone());
    }
    assert_eq!(seen, ["m1", "m2", "m3", "m4", "after waiting"]);
    let (_, page) = server.get_json("/api/rooms/r/messages?limit=100").await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 5);
    server.shutdown().await;
}

/// The join/leave bucket refuses a client that hops rooms faster than its rate, and a refused
/// join joins nothing.
#[tokio::test]
async fn joins_and_leaves_past_their_burst_are_refused() {
    let server = TestServer::start_with(|c| {
        c.rate.join_rate_per_second = 0.01;
        c.rate.join_burst = 3;
    })
    .await;
    let mut alice = server.connect("alice").await;
    alice.join("a").await;
    alice.send(json!({"type":"leave","room":"a"})).await;
    alice.join("b").await;
    alice.send(json!({"type":"join","room":"c"})).await;
    let wait = rate_limited(&alice.recv().await);
    assert!(wait > 90_000, "a token every 100 s: {wait}");
    let (_, rooms) = server.get_json("/api/rooms").await;
    assert_eq!(rooms, json!([{"name":"b","user_count":1}]));
    alice.chat("b", "chat is its own bucket").await;
    assert_eq!(alice.recv().await["type"], "chat");
    server.shutdown().await;
}

/// A client that keeps sending instead of waiting runs out of refusals and is closed with 1008
/// and a reason.
#[tokio::test]
async fn sustained_abuse_closes_the_connection_with_1008() {
    let server = TestServer::start_with(|c| {
        c.rate.chat_burst = 2;
        c.rate.rate_limit_max_refusals = 5;
    })
    .await;
    let mut flooder = server.connect("flooder").await;
    flooder.join("r").await;
    for _ in 0..20 {
        let chat = json!({"type":"chat","room":"r","text":"spam"}).to_string();
        if flooder.ws.send(Message::text(chat)).await.is_err() {
            break; // closed already
        }
    }
    let mut refused = 0;
    let (code, reason) = loop {
        match tokio::time::timeout(TIMEOUT, futures_util::StreamExt::next(&mut flooder.ws))
            .await
            .expect("closed within the timeout")
        {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                if frame["type"] == "error" {
                    rate_limited(&frame);
                    refused += 1;
                }
            }
            Some(Ok(Message::Close(Some(close)))) => {
                break (u16::from(close.code), close.reason.to_string())
            }
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, 1008);
    assert!(reason.contains("rate limit"), "{reason}");
    assert_eq!(refused, 6, "five refusals are tolerated, the sixth closes");
    server.shutdown().await;
}

/// RATE_LIMITS=off: a trusted client may send as fast as it likes.
#[tokio::test]
async fn rate_limits_off_accepts_everything() {
    let server = TestServer::start_with(|c| c.rate.rate_limits = Switch::Off).await;
    let mut alice = server.connect("alice").await;
    alice.join("r").await;
    for i in 0..200 {
        alice.chat("r", &format!("m{i}")).await;
    }
    for i in 1..=200u64 {
        assert_eq!(alice.recv().await["id"], i);
    }
    server.shutdown().await;
}

/// One member floods a shared room as fast as it can while a bystander is not even reading:
/// with the default limits the flood is held to the chat rate (and its sender closed), so the
/// bystander afterwards reads every message — its own and the others' — with no gap.
#[tokio::test]
async fn a_flooded_room_stays_gap_free_for_its_bystanders() {
    let server = TestServer::start_with(|c| {
        c.rooms.room_channel_capacity = 256;
        c.connection.send_timeout_seconds = 120.0;
    })
    .await;
    let mut bystander = TestClient::connect_small_buffer(&server.ws_url("bystander")).await;
    bystander.join("r").await;
    let mut carol = server.connect("carol").await;
    carol.join("r").await;
    let mut flooder = server.connect("flooder").await;
    flooder.join("r").await;
    bystander.chat("r", "bystander-1").await;

    // 2,000 messages of 4,000 characters: 8 MB, far more than a bystander that does not read
    // can be buffered (without limits it gets a gap frame).
    let flood = tokio::spawn(async move {
        let text = "f".repeat(4000);
        for _ in 0..2000 {
            let chat = json!({"type":"chat","room":"r","text":text}).to_string();
            if flooder.ws.send(Message::text(chat)).await.is_err() {
                break; // closed for abuse
            }
        }
    });
    // Carol chats while the flood runs and after it; the bystander chats after it too.
    for i in 1..=2 {
        carol.chat("r", &format!("carol-{i}")).await;
    }
    tokio::time::timeout(TIMEOUT, flood).await.unwrap().unwrap();
    for i in 3..=5 {
        carol.chat("r", &format!("carol-{i}")).await;
    }
    bystander.chat("r", "bystander-2").await;
    let mut echoes = 0;
    while echoes < 5 {
        let frame = carol.recv_type("chat").await;
        echoes += usize::from(frame["user"] == "carol");
    }

    let expected: BTreeSet<&str> = [
        "bystander-1",
        "bystander-2",
        "carol-1",
        "carol-2",
        "carol-3",
        "carol-4",
        "carol-5",
    ]
    .into();
    let mut seen = BTreeSet::new();
    let mut last_id = 0;
    while !expected.iter().all(|t| seen.contains(*t)) {
        let frame = bystander.recv().await;
        assert_ne!(frame["type"], "gap", "the bystander lost messages: {frame}");
        if frame["type"] == "chat" {
            let id = frame["id"].as_u64().unwrap();
            assert_eq!(id, last_id + 1, "no message skipped");
            last_id = id;
            if frame["user"] != "flooder" {
                seen.insert(frame["text"].as_str().unwrap().to_string());
            }
        }
    }
    let seen: BTreeSet<&str> = seen.iter().map(String::as_str).collect();
    assert_eq!(seen, expected);
    server.shutdown().await;
}
