//! History in PostgreSQL (`DATABASE_URL=postgres://…`), and the store contract both backends keep
//! (checked against each): the same behaviour as the embedded SQLite store — ids continue across restarts, joins, resumes and REST pages read what was stored, each
//! within its byte budget, retention keeps ids taken — and a second node on the same database is
//! refused while there is no shared sequencer. Each test gets a database of its own; without
//! `DATABASE_URL` they print SKIP.

use std::sync::Arc;

use chatterbox::protocol::ChatRecord;
use chatterbox::store::{Store, StoreOptions};
use serde_json::json;

use crate::support::postgres::{connect, fresh_database};
use crate::support::{ids, TestServer};

async fn server_on(url: &str, configure: impl FnOnce(&mut chatterbox::Config)) -> TestServer {
    let url = url.to_string();
    TestServer::builder()
        .config(|c| {
            c.store.database_url = Some(url);
            configure(c);
        })
        .start()
        .await
}

/// 4,000 quotes: 8,000 bytes as JSON, so a few dozen overrun one frame.
fn escaped_text(i: usize) -> String {
    format!("{i:04}{}", "\"".repeat(3996))
}

#[tokio::test]
async fn history_in_postgres_survives_restarts_and_ids_continue() {
    let Some(url) = fresh_database("history_restarts").await else {
        return;
    };
    let server = server_on(&url, |c| c.history.max_history = 5).await;
    let mut alice = server.connect("alice").await;
    alice.join("r").await;
    for i in 1..=8 {
        alice.chat("r", &format!("m{i}")).await;
        assert_eq!(alice.recv_type("chat").await["id"], i);
    }
    drop(alice);
    server.shutdown().await;

    let mut db = connect(&url).await;
    let stored: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, text FROM messages WHERE room = 'r' ORDER BY id")
            .fetch_all(&mut db)
            .await
            .unwrap();
    let expected: Vec<(i64, String)> = (1..=8).map(|i| (i, format!("m{i}"))).collect();
    assert_eq!(stored, expected, "every message once, in PostgreSQL");

    let server = server_on(&url, |c| {
        c.history.max_history = 5;
        c.history.resume_max_messages = 100;
    })
    .await;
    let mut carol = server.connect("carol").await;
    carol.send(json!({"type":"join","room":"r"})).await;
    let history = carol.recv_type("history").await;
    assert_eq!(
        ids(&history["messages"]),
        vec![4, 5, 6, 7, 8],
        "from the store"
    );
    assert_eq!(history["messages"][4]["text"], "m8");
    carol.chat("r", "after restart").await;
    assert_eq!(carol.recv_type("chat").await["id"], 9, "ids continue");

    let mut dave = server.connect("dave").await;
    dave.send(json!({"type":"join","room":"r","since":2})).await;
    let history = dave.recv_type("history").await;
    assert_eq!(history["recovered"], true);
    assert_eq!(ids(&history["messages"]), (3..=9).collect::<Vec<_>>());

    let (status, page) = server
        .get_json("/api/rooms/r/messages?before=4&limit=10")
        .await;
    assert_eq!(status, 200);
    assert_eq!(ids(&page["messages"]), vec![1, 2, 3]);
    server.shutdown().await;
}

/// After a restart nothing is in memory: a resume from the start is read from PostgreSQL, cut to
/// one frame's budget by the query itself, and the rest is one REST page away without a gap.
#[tokio::test]
async fn a_resume_read_from_postgres_is_cut_to_the_frame_budget() {
    let Some(url) = fresh_database("resume_budget").await else {
        return;
    };
    const MESSAGES: usize = 30;
    let server = server_on(&url, |_| {}).await;
    let mut alice = server.connect("alice").await;
    alice.join("r").await;
    for i in 0..MESSAGES {
        alice.chat("r", &escaped_text(i)).await;
        alice.recv_type("chat").await;
    }
    drop(alice);
    server.shutdown().await;

    let server = server_on(&url, |c| c.history.max_page_bytes = 1 << 20).await;
    let max = chatterbox::Config::default().limits.max_server_frame_bytes;
    let mut carol = server.connect("carol").await;
    carol
        .send_text(r#"{"type":"join","room":"r","since":0}"#)
        .await;
    let history = carol.recv_type("history").await;
    let size = serde_json::to_string(&history).unwrap().len();
    assert!(size <= max, "the resume's history is {size} bytes");
    assert_eq!(history["recovered"], true);
    assert_eq!(history["truncated"], true);
    let kept = ids(&history["messages"]);
    assert_eq!(
        *kept.last().unwrap(),
        MESSAGES as u64,
        "the newest are kept"
    );
    let before = history["before"].as_u64().unwrap();
    let (_, page) = server
        .get_json(&format!("/api/rooms/r/messages?before={before}&limit=500"))
        .await;
    let mut all = ids(&page["messages"]);
    all.extend(kept);
    assert_eq!(all, (1..=MESSAGES as u64).collect::<Vec<_>>());
    server.shutdown().await;
}

/// Ids are assigned by the node that publishes: two nodes on one database without a shared
/// sequencer would hand out the same ids, so the second is refused, and may start once the
/// first has stopped.
#[tokio::test]
async fn a_second_node_on_the_same_database_is_refused_until_the_first_stops() {
    let Some(url) = fresh_database("second_node").await else {
        return;
    };
    let first = server_on(&url, |_| {}).await;
    let mut config = chatterbox::Config::default();
    config.store.database_url = Some(url.clone());
    let second = chatterbox::Server::build(config.clone()).await;
    let error = second.err().expect("a second node is refused").to_string();
    assert!(error.contains("another chatterbox node"), "{error}");
    first.shutdown().await;
    // The lock goes with the first node's connection (closed as it stops).
    let second = server_on(&url, |_| {}).await;
    second.shutdown().await;
}

fn record(room: &str, id: u64, timestamp_ms: i64) -> Arc<ChatRecord> {
    Arc::new(ChatRecord::new(
        room.into(),
        id,
        "u".into(),
        "t".into(),
        timestamp_ms,
    ))
}

async fn stored_ids(store: &Store, room: &str) -> Vec<u64> {
    let records = store.before(room, None, 1000).await.unwrap();
    records.iter().map(|r| r.id).collect()
}

/// The store's contract, the same for both backends: retried batches are skipped, retention by
/// age and by count, and ids stay taken after rooms are pruned; the server secret is made once.
async fn retention_and_pruning_keep_ids_taken_in(store: Store) {
    store.ping().await.unwrap();
    let batch: Vec<_> = (1..=10)
        .map(|id| record("a", id, id as i64 * 1000))
        .chain((1..=4).map(|id| record("b", id, 1000)))
        .collect();
    store.append(&batch).await.unwrap();
    store.append(&batch).await.unwrap(); // an idempotent retry
    assert_eq!(stored_ids(&store, "a").await, (1..=10).collect::<Vec<_>>());
    assert_eq!(store.prune(0, Some(5_500)).await.unwrap(), 9);
    assert_eq!(stored_ids(&store, "a").await, vec![6, 7, 8, 9, 10]);
    assert!(stored_ids(&store, "b").await.is_empty(), "all of b was old");
    assert_eq!(store.prune(2, None).await.unwrap(), 3);
    assert_eq!(stored_ids(&store, "a").await, vec![9, 10]);
    assert_eq!(store.last_id("a").await.unwrap(), 10, "ids survive pruning");
    assert_eq!(store.last_id("b").await.unwrap(), 4);
    assert_eq!(store.last_id("never").await.unwrap(), 0);
    assert_eq!(
        store.prune_empty_rooms().await.unwrap(),
        1,
        "b has none left"
    );
    assert_eq!(
        store.last_id("b").await.unwrap(),
        4,
        "continues above its old ids"
    );
    assert_eq!(
        store.last_id("never").await.unwrap(),
        4,
        "new rooms start above the floor"
    );
    assert_eq!(store.prune_empty_rooms().await.unwrap(), 0);
    store.append(&[record("b", 5, 9_000)]).await.unwrap();
    assert_eq!(store.last_id("b").await.unwrap(), 5);
    let secret = store.server_secret("resume_tickets").await.unwrap();
    assert_eq!(secret.len(), 32);
    assert_eq!(
        store.server_secret("resume_tickets").await.unwrap(),
        secret,
        "made once"
    );
}

#[tokio::test]
async fn retention_and_pruning_keep_ids_taken() {
    let Some(url) = fresh_database("retention").await else {
        return;
    };
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    retention_and_pruning_keep_ids_taken_in(store).await;
}

#[tokio::test]
async fn retention_and_pruning_keep_ids_taken_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    retention_and_pruning_keep_ids_taken_in(store).await;
}
