//! History reads go through the history reader: memory first, the store once the writer has
//! committed what is needed. No read makes the writer flush, so REST traffic cannot cut its
//! batching short.

use crate::support::{metric_value, send_and_confirm, ServerProcess, NO_RATE_LIMITS};

async fn get_json(url: &str) -> serde_json::Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

fn ids(page: &serde_json::Value) -> Vec<u64> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}

async fn rows_written(server: &ServerProcess) -> f64 {
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metric_value(&metrics, "chatterbox_history_rows_written_total").unwrap_or(0.0)
}

/// With a writer that batches for a minute, REST pages and resumes are served from memory at
/// once, and the writer has still written nothing: reading did not make it flush.
#[tokio::test]
async fn reads_are_served_without_making_the_writer_flush() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("HISTORY_FLUSH_INTERVAL_MS", "60000")];
    let server = ServerProcess::spawn(&dir.path().join("chat.db"), 0, &env).await;
    let mut member = crate::support::TestClient::connect(&server.ws_url("member")).await;
    member.join("r").await;
    for i in 0..5 {
        member.chat("r", &format!("m{i}")).await;
        member.recv_type("chat").await;
    }
    for _ in 0..20 {
        let page = get_json(&server.url("/api/rooms/r/messages?limit=5")).await;
        assert_eq!(ids(&page), vec![1, 2, 3, 4, 5]);
    }
    let mut resumer = crate::support::TestClient::connect(&server.ws_url("resumer")).await;
    resumer
        .send(serde_json::json!({"type":"join","room":"r","since":2}))
        .await;
    let history = resumer.recv_type("history").await;
    assert_eq!(history["recovered"], true);
    assert_eq!(history["messages"].as_array().unwrap().len(), 3);
    assert_eq!(
        rows_written(&server).await,
        0.0,
        "nothing was flushed early"
    );
    drop((member, resumer));
    // SIGTERM still writes everything.
    assert!(server.signal_and_wait("TERM").await.success());
}

/// A page reaching past the in-memory ring waits for the writer's own commit (a short flush
/// interval here) and then reads the store: complete, in order, no duplicates. (A regression
/// test of how the reader stitches memory and store; the old code read everything from the
/// store after a forced flush, which the next test shows is gone.)
#[tokio::test]
async fn pages_past_the_ring_come_from_the_store_once_committed() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("HISTORY_RING_SIZE", "50"),
        ("HISTORY_FLUSH_INTERVAL_MS", "300"),
        NO_RATE_LIMITS,
    ];
    let server = ServerProcess::spawn(&dir.path().join("chat.db"), 0, &env).await;
    let mut member = crate::support::TestClient::connect(&server.ws_url("member")).await;
    member.join("r").await; // keeps the room live: its newest 50 are in memory
    send_and_confirm(&server.ws_url("writer"), "r", 120).await;
    let page = get_json(&server.url("/api/rooms/r/messages?limit=120")).await;
    assert_eq!(ids(&page), (1..=120).collect::<Vec<_>>());
    let page = get_json(&server.url("/api/rooms/r/messages?before=71&limit=30")).await;
    assert_eq!(
        ids(&page),
        (41..=70).collect::<Vec<_>>(),
        "straddles the ring's edge"
    );
    drop(member);
    assert!(server.signal_and_wait("TERM").await.success());
}

/// A page past the ring needs messages the writer has not committed (it batches for a minute
/// here): the page waits for the writer's own commit, never forces it, and after
/// STORE_WAIT_SECONDS says the store is behind (503). Nothing was written early, and everything
/// is stored once the writer gets to it.
#[tokio::test]
async fn a_page_past_the_ring_waits_for_the_writer_and_never_forces_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let env = [
        ("HISTORY_RING_SIZE", "50"),
        ("HISTORY_FLUSH_INTERVAL_MS", "60000"),
        ("STORE_WAIT_SECONDS", "1"),
        ("RATE_LIMITS", "off"), // 120 messages in a burst
    ];
    let server = ServerProcess::spawn(&db, 0, &env).await;
    let mut member = crate::support::TestClient::connect(&server.ws_url("member")).await;
    member.join("r").await;
    send_and_confirm(&server.ws_url("writer"), "r", 120).await;
    let recent = get_json(&server.url("/api/rooms/r/messages?limit=50")).await;
    assert_eq!(
        ids(&recent),
        (71..=120).collect::<Vec<_>>(),
        "served from memory"
    );
    let response = reqwest::get(server.url("/api/rooms/r/messages?before=71&limit=30"))
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        503,
        "ids 41..=70 are not committed yet"
    );
    assert_eq!(
        rows_written(&server).await,
        0.0,
        "the page did not make the writer flush"
    );
    drop(member);
    assert!(
        server.signal_and_wait("TERM").await.success(),
        "SIGTERM writes everything"
    );
    let server = ServerProcess::spawn(&db, 0, &[]).await;
    let page = get_json(&server.url("/api/rooms/r/messages?before=71&limit=30")).await;
    assert_eq!(ids(&page), (41..=70).collect::<Vec<_>>());
    server.signal_and_wait("TERM").await;
}
