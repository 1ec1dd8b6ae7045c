//! Retention bounds the store: rooms left with no messages lose their row in `rooms`, and their
//! ids are never handed out again — not after the row is gone, not after a restart.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::support::TestServer;

/// Whether the store still has a row for `room` (read from the file, as another process would).
async fn has_room_row(db: &Path, room: &str) -> bool {
    use sqlx::Connection;
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .read_only(true);
    let mut connection = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rooms WHERE name = ?")
        .bind(room)
        .fetch_one(&mut connection)
        .await
        .unwrap();
    rows > 0
}

/// Polls until the store has (`true`) or has not a row for `room`; panics after 15 s.
async fn wait_for_row(db: &Path, room: &str, present: bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while has_room_row(db, room).await != present {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{room}: row never {}",
            if present { "written" } else { "pruned" }
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // polling interval
    }
}

fn with_age_retention(c: &mut chatterbox::Config) {
    c.history.history_max_age_seconds = 1;
    c.history.retention_interval_seconds = 1;
}

#[tokio::test]
async fn rooms_left_empty_are_pruned_and_their_ids_are_never_reused() {
    let server = TestServer::start_with(with_age_retention).await;
    let mut alice = server.connect("alice").await;
    alice.join("gone").await;
    for i in 1..=3u64 {
        alice.chat("gone", &format!("m{i}")).await;
        assert_eq!(alice.recv_type("chat").await["id"], i);
    }
    alice.send(json!({"type":"leave","room":"gone"})).await;
    // Stored; then the messages age out, and the room's row goes.
    wait_for_row(&server.db_path, "gone", true).await;
    wait_for_row(&server.db_path, "gone", false).await;
    let (_, page) = server.get_json("/api/rooms/gone/messages").await;
    assert_eq!(page["messages"], json!([]));

    // Recreated, the room continues above its old ids.
    alice.join("gone").await;
    alice.chat("gone", "back").await;
    let back = alice.recv_type("chat").await["id"].as_u64().unwrap();
    assert_eq!(back, 4);
    alice.send(json!({"type":"leave","room":"gone"})).await;
    drop(alice);

    // Still after a restart, once that row is pruned too.
    let (db, dir) = server.shutdown_keep_db().await;
    let server = TestServer::builder()
        .db(db.clone())
        .config(with_age_retention)
        .start()
        .await;
    wait_for_row(&db, "gone", false).await;
    let mut bob = server.connect("bob").await;
    bob.join("gone").await;
    bob.chat("gone", "after restart").await;
    assert!(bob.recv_type("chat").await["id"].as_u64().unwrap() > back);
    server.shutdown().await;
    drop(dir);
}

/// By default the store keeps the newest HISTORY_MAX_PER_ROOM (10,000) messages per room, so
/// disk use per room is bounded; 0 keeps everything.
#[test]
fn the_default_retention_bounds_every_room() {
    let history = chatterbox::Config::default().history;
    assert_eq!(history.history_max_per_room, 10_000);
    assert!(history.history_max_per_room >= 10 * history.resume_max_messages as u64);
}
