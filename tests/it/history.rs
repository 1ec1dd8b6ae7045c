//! Persistent history: ids, history on join, resume, paging, retention and durability.

use std::collections::BTreeSet;

use chatterbox::config::Switch;
use serde_json::json;

use crate::support::{
    ids, lock_sqlite, send_and_confirm, wait_for_metric, ServerProcess, TestClient, TestServer,
    NO_RATE_LIMITS,
};

async fn get_json(url: &str) -> serde_json::Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn joiners_get_history_and_ids_continue_after_a_restart() {
    let server = TestServer::start_with(|c| c.history.max_history = 5).await;
    let mut alice = server.connect("alice").await;
    alice.join("r").await;
    for i in 1..=8 {
        alice.chat("r", &format!("m{i}")).await;
        assert_eq!(alice.recv_type("chat").await["id"], i);
    }
    let mut bob = server.connect("bob").await;
    bob.send(json!({"type":"join","room":"r"})).await;
    let history = bob.recv().await;
    assert_eq!(history["type"], "history");
    assert_eq!(
        ids(&history["messages"]),
        vec![4, 5, 6, 7, 8],
        "latest MAX_HISTORY, oldest first"
    );
    assert_eq!(history["messages"][4]["text"], "m8");
    assert!(
        history.get("recovered").is_none(),
        "plain joins carry no recovered flag"
    );
    assert_eq!(bob.recv().await["type"], "presence");
    drop((alice, bob));

    let (db, dir) = server.shutdown_keep_db().await;
    let server = TestServer::builder()
        .db(db)
        .config(|c| c.history.max_history = 5)
        .start()
        .await;
    let mut carol = server.connect("carol").await;
    carol.send(json!({"type":"join","room":"r"})).await;
    let history = carol.recv().await;
    assert_eq!(
        ids(&history["messages"]),
        vec![4, 5, 6, 7, 8],
        "served from the store after restart"
    );
    carol.recv_type("presence").await;
    carol.chat("r", "after restart").await;
    assert_eq!(carol.recv_type("chat").await["id"], 9, "ids continue");
    server.shutdown().await;
    drop(dir);
}

#[tokio::test]
async fn a_join_without_history_gets_only_presence() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    alice.send(json!({"type":"join","room":"empty"})).await;
    assert_eq!(alice.recv().await["type"], "presence");
    server.shutdown().await;
}

/// History plus live must have no gap and no duplicate even while the room is busy.
#[tokio::test]
async fn joining_during_a_flood_is_gap_free_and_duplicate_free() {
    let server = TestServer::start_with(|c| {
        // Floods on purpose, far past any person's rate: limits would refuse it.
        c.rate.rate_limits = Switch::Off;
        c.history.max_history = 50;
        c.history.history_ring_size = 64;
    })
    .await;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let url = server.ws_url("flooder");
    // The flooder publishes as fast as it can until told to stop, reading its echoes so the
    // server keeps reading it; it returns the last id it saw.
    let flood = tokio::spawn(async move {
        let mut client = TestClient::connect(&url).await;
        client.join("busy").await;
        let (mut sent, mut last_seen) = (0u64, 0u64);
        while !*stopped.borrow_and_update() {
            client.chat("busy", &format!("m{sent}")).await;
            sent += 1;
            if sent % 8 == 0 {
                while last_seen + 8 < sent {
                    last_seen = client.recv_type("chat").await["id"].as_u64().unwrap();
                }
            }
        }
        while last_seen < sent {
            last_seen = client.recv_type("chat").await["id"].as_u64().unwrap();
        }
        last_seen
    });
    // Join once the flood is under way: after someone has seen id 200.
    let mut observer = server.connect("observer").await;
    observer.join("busy").await;
    while observer.recv_type("chat").await["id"].as_u64().unwrap() < 200 {}

    let mut joiner = server.connect("joiner").await;
    joiner.send(json!({"type":"join","room":"busy"})).await;
    let (mut seen, mut live) = (Vec::new(), 0);
    while live < 500 {
        let frame = joiner.recv().await;
        match frame["type"].as_str().unwrap() {
            "history" => seen.extend(ids(&frame["messages"])),
            "chat" => {
                seen.push(frame["id"].as_u64().unwrap());
                live += 1;
            }
            "gap" => panic!("unexpected gap: {frame}"),
            _ => {}
        }
    }
    stop.send(true).unwrap();
    let total = flood.await.unwrap();
    while seen.last() != Some(&total) {
        seen.push(joiner.recv_type("chat").await["id"].as_u64().unwrap());
    }
    let first = seen[0];
    assert!(first > 1, "history started mid-flood, at {first}");
    let expected: Vec<u64> = (first..=total).collect();
    assert_eq!(
        seen, expected,
        "history + live is contiguous, no duplicates"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn resume_returns_exactly_what_was_missed_or_says_it_cannot() {
    let server = TestServer::start_with(|c| {
        // Floods on purpose, far past any person's rate: limits would refuse it.
        c.rate.rate_limits = Switch::Off;
        c.history.max_history = 5;
        c.history.history_ring_size = 20;
        c.history.resume_max_messages = 100;
    })
    .await;
    let url = server.ws_url("writer");
    send_and_confirm(&url, "r", 10).await;

    // Short gap: served from the in-memory ring.
    let mut reader = server.connect("reader").await;
    reader
        .send(json!({"type":"join","room":"r","since":7}))
        .await;
    let history = reader.recv_type("history").await;
    assert_eq!(history["recovered"], true);
    assert_eq!(ids(&history["messages"]), vec![8, 9, 10]);
    reader.send(json!({"type":"leave","room":"r"})).await;

    // Nothing missed.
    reader
        .send(json!({"type":"join","room":"r","since":10}))
        .await;
    let history = reader.recv_type("history").await;
    assert_eq!(
        (
            history["recovered"].as_bool(),
            history["messages"].as_array().unwrap().len()
        ),
        (Some(true), 0)
    );
    reader.send(json!({"type":"leave","room":"r"})).await;

    // Longer than the ring but within RESUME_MAX_MESSAGES: read from the store.
    send_and_confirm(&url, "r", 50).await;
    reader
        .send(json!({"type":"join","room":"r","since":10}))
        .await;
    let history = reader.recv_type("history").await;
    assert_eq!(history["recovered"], true);
    assert_eq!(ids(&history["messages"]), (11..=60).collect::<Vec<_>>());
    reader.send(json!({"type":"leave","room":"r"})).await;

    // Too large a gap: the latest MAX_HISTORY, flagged.
    send_and_confirm(&url, "r", 100).await;
    reader
        .send(json!({"type":"join","room":"r","since":3}))
        .await;
    let history = reader.recv_type("history").await;
    assert_eq!(history["recovered"], false);
    assert_eq!(ids(&history["messages"]), (156..=160).collect::<Vec<_>>());
    reader.recv_type("presence").await;

    // A resume while already a member is answered too (joining twice is harmless).
    reader
        .send(json!({"type":"join","room":"r","since":158}))
        .await;
    let history = reader.recv().await;
    assert_eq!(
        (history["type"].as_str(), history["recovered"].as_bool()),
        (Some("history"), Some(true))
    );
    assert_eq!(ids(&history["messages"]), vec![159, 160]);
    assert_eq!(reader.recv().await["type"], "presence");
    server.shutdown().await;
}

#[tokio::test]
async fn rest_pages_backwards_through_history_of_empty_rooms_too() {
    let server = TestServer::start().await;
    send_and_confirm(&server.ws_url("alice"), "archive", 25).await;
    // The writer has left: the room has no live members but its history is there.
    let (status, page) = server
        .get_json("/api/rooms/archive/messages?limit=10")
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["room"], "archive");
    assert_eq!(ids(&page["messages"]), (16..=25).collect::<Vec<_>>());
    let (_, page) = server
        .get_json("/api/rooms/archive/messages?before=16&limit=10")
        .await;
    assert_eq!(ids(&page["messages"]), (6..=15).collect::<Vec<_>>());
    let (_, page) = server
        .get_json("/api/rooms/archive/messages?before=6&limit=10")
        .await;
    assert_eq!(ids(&page["messages"]), (1..=5).collect::<Vec<_>>());
    let (_, page) = server.get_json("/api/rooms/unknown/messages").await;
    assert_eq!(page["messages"], json!([]));
    let (_, page) = server
        .get_json("/api/rooms/archive/messages?before=18446744073709551615&limit=2")
        .await;
    assert_eq!(
        ids(&page["messages"]),
        vec![24, 25],
        "a huge `before` means the newest"
    );
    for bad in ["?limit=0", "?limit=100000", "?before=abc"] {
        let (status, body) = server
            .get_json(&format!("/api/rooms/archive/messages{bad}"))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].is_string());
    }
    server.shutdown().await;
}

#[tokio::test]
async fn retention_caps_messages_per_room() {
    let server = TestServer::start_with(|c| {
        c.history.history_max_per_room = 10;
        c.history.retention_interval_seconds = 1;
    })
    .await;
    // Keeps the room live, so its in-memory ring is what a joiner's history comes from.
    let mut keeper = server.connect("keeper").await;
    keeper.join("r").await;
    send_and_confirm(&server.ws_url("alice"), "r", 30).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, page) = server.get_json("/api/rooms/r/messages?limit=100").await;
        let stored = ids(&page["messages"]);
        if stored == (21..=30).collect::<Vec<_>>() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never pruned: {stored:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await; // polling interval
    }
    // The live room's memory was pruned too: a joiner sees only what the store kept.
    let mut bob = server.connect("bob").await;
    bob.send(json!({"type":"join","room":"r"})).await;
    let history = bob.recv_type("history").await;
    assert_eq!(ids(&history["messages"]), (21..=30).collect::<Vec<_>>());
    // Ids keep increasing after pruning.
    let ids = send_and_confirm(&server.ws_url("alice"), "r", 1).await;
    assert_eq!(ids, vec![31]);
    server.shutdown().await;
}

/// SIGTERM flushes everything accepted before exit.
#[tokio::test]
async fn sigterm_flushes_every_accepted_message() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let env = [("HISTORY_FLUSH_INTERVAL_MS", "1000"), NO_RATE_LIMITS];
    let server = ServerProcess::spawn(&db, 0, &env).await;
    let accepted = send_and_confirm(&server.ws_url("alice"), "r", 500).await;
    let status = server.signal_and_wait("TERM").await;
    assert!(status.success(), "exit status {status}");

    let server = ServerProcess::spawn(&db, 0, &[]).await;
    let page = get_json(&server.url("/api/rooms/r/messages?limit=500")).await;
    assert_eq!(ids(&page["messages"]), accepted);
    server.signal_and_wait("TERM").await;
}

/// After `kill -9`, what the writer had committed is all served after a restart; only messages
/// still waiting for their flush (at most one flush interval's worth) can be lost.
#[tokio::test]
async fn kill_9_loses_at_most_the_unflushed_tail() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let server = ServerProcess::spawn(&db, 0, &[NO_RATE_LIMITS]).await;
    let accepted = send_and_confirm(&server.ws_url("alice"), "r", 300).await;
    wait_for_metric(
        &server.url("/metrics"),
        "chatterbox_history_rows_written_total",
        |v| v >= 300.0,
    )
    .await;
    // A tail accepted just before the kill may or may not have been flushed.
    let tail = send_and_confirm(&server.ws_url("alice"), "r", 20).await;
    server.signal_and_wait("KILL").await;

    let server = ServerProcess::spawn(&db, 0, &[]).await;
    let page = get_json(&server.url("/api/rooms/r/messages?limit=500")).await;
    let stored: BTreeSet<u64> = ids(&page["messages"]).into_iter().collect();
    assert!(
        accepted.iter().all(|id| stored.contains(id)),
        "every flushed message survives"
    );
    assert!(stored
        .iter()
        .all(|id| accepted.contains(id) || tail.contains(id)));
    // Ids continue after the last stored one.
    let next = send_and_confirm(&server.ws_url("bob"), "r", 1).await;
    assert_eq!(next[0], stored.iter().max().unwrap() + 1);
    server.signal_and_wait("TERM").await;
}

/// While the database is locked by another process, writes fail and are retried; live chat keeps
/// flowing, and once the lock is gone every message is stored.
#[tokio::test]
async fn write_failures_are_retried_while_chat_keeps_flowing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let env = [("SQLITE_BUSY_TIMEOUT_MS", "20"), NO_RATE_LIMITS];
    let server = ServerProcess::spawn(&db, 0, &env).await;
    // A member keeps the room alive: re-creating a room waits for the writer to commit what it
    // had queued (so ids are never reused), which an outage delays.
    let mut member = TestClient::connect(&server.ws_url("member")).await;
    member.join("r").await;
    member.chat("r", "before").await;
    member.recv_type("chat").await;

    let lock = lock_sqlite(&db).await;

    // Live chat is unaffected: every message is delivered while none can be stored.
    for i in 0..50 {
        member.chat("r", &format!("during {i}")).await;
    }
    for id in 2..=51 {
        assert_eq!(member.recv_type("chat").await["id"], id);
    }
    let metrics = server.url("/metrics");
    wait_for_metric(&metrics, "chatterbox_history_write_errors_total", |v| {
        v >= 1.0
    })
    .await;

    lock.release().await;
    wait_for_metric(&metrics, "chatterbox_history_rows_written_total", |v| {
        v >= 51.0
    })
    .await;
    drop(member);
    assert!(server.signal_and_wait("TERM").await.success());

    let server = ServerProcess::spawn(&db, 0, &[]).await;
    let page = get_json(&server.url("/api/rooms/r/messages?limit=100")).await;
    assert_eq!(ids(&page["messages"]), (1..=51).collect::<Vec<_>>());
    server.signal_and_wait("TERM").await;
}

/// A client resuming from an id the room never had (the store was reset) is told it did not
/// recover, and gets the latest messages.
#[tokio::test]
async fn resume_from_the_future_is_not_recovered() {
    let server = TestServer::start_with(|c| c.history.max_history = 3).await;
    send_and_confirm(&server.ws_url("alice"), "r", 5).await;
    let mut bob = server.connect("bob").await;
    bob.send(json!({"type":"join","room":"r","since":99})).await;
    let history = bob.recv_type("history").await;
    assert_eq!(history["recovered"], false);
    assert_eq!(ids(&history["messages"]), vec![3, 4, 5]);
    server.shutdown().await;
}

/// A client that stopped reading cannot hold up shutdown long enough to lose messages.
#[tokio::test]
async fn sigterm_with_a_stalled_client_still_flushes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    // Timeouts far beyond the wait for the exit below: the stalled session must notice shutdown
    // while blocked in its write, not when the write times out.
    let env = [
        ("SHUTDOWN_GRACE_SECONDS", "600"),
        ("SEND_TIMEOUT_SECONDS", "600"),
        NO_RATE_LIMITS,
    ];
    let server = ServerProcess::spawn(&db, 0, &env).await;
    let mut stalled = TestClient::connect(&server.ws_url("stalled")).await;
    stalled.join("r").await; // ...and never reads again
    let mut writer = TestClient::connect(&server.ws_url("writer")).await;
    writer.join("r").await;
    let text = "y".repeat(3000);
    // ~9 MB: more than the stalled client's socket buffers hold, so its session blocks in a write.
    // The writer reads its echoes as it goes, so only the stalled client falls behind.
    for id in 1..=3000u64 {
        writer.chat("r", &text).await;
        assert_eq!(writer.recv_type("chat").await["id"], id);
    }
    let status = server.signal_and_wait("TERM").await;
    assert!(status.success(), "exit status {status}");
    drop(stalled);

    // 500 messages of 3 kB: past the default MAX_PAGE_BYTES, so the page budget is raised.
    let server = ServerProcess::spawn(&db, 0, &[("MAX_PAGE_BYTES", "4194304")]).await;
    let page = get_json(&server.url("/api/rooms/r/messages?limit=500")).await;
    assert_eq!(ids(&page["messages"]), (2501..=3000).collect::<Vec<_>>());
    server.signal_and_wait("TERM").await;
}

/// Re-creating a room whose last messages the writer has not committed yet waits for them (so
/// ids are never reused and history has no hole); while the store is locked that wait is bounded
/// and the joiner gets a clear error, not a hang. A room with nothing queued is not held up.
#[tokio::test]
async fn a_join_that_needs_a_blocked_store_gets_history_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let env = [
        ("SQLITE_BUSY_TIMEOUT_MS", "20"),
        ("STORE_WAIT_SECONDS", "1"),
    ];
    let server = ServerProcess::spawn(&db, 0, &env).await;
    let mut member = TestClient::connect(&server.ws_url("member")).await;
    member.join("busy").await;

    let lock = lock_sqlite(&db).await;
    member.chat("busy", "queued, not yet stored").await;
    member.recv_type("chat").await;
    member.send(json!({"type":"leave","room":"busy"})).await;

    let mut joiner = TestClient::connect(&server.ws_url("joiner")).await;
    joiner.join("unrelated").await;
    joiner.send(json!({"type":"join","room":"busy"})).await;
    let error = joiner.recv().await;
    assert_eq!(error["code"], "history_unavailable", "{error}");
    assert_eq!(error["room"], "busy");
    assert!(
        !error["message"].as_str().unwrap().contains("database"),
        "{error}"
    );

    // Once the lock is gone, the same join succeeds, with the message and the next id.
    lock.release().await;
    joiner.send(json!({"type":"join","room":"busy"})).await;
    let history = joiner.recv_type("history").await;
    assert_eq!(history["messages"][0]["text"], "queued, not yet stored");
    joiner.recv_type("presence").await;
    joiner.chat("busy", "next").await;
    assert_eq!(joiner.recv_type("chat").await["id"], 2);
    drop((member, joiner));
    assert!(server.signal_and_wait("TERM").await.success());
}
