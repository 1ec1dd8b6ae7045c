//! Store faults while the server runs: the database file or its directory removed, the disk
//! full, the filesystem read-only. Chat goes on from memory, the writer reports itself unhealthy
//! and retries, and once the fault clears every message accepted meanwhile is stored.
//!
//! The disk-full test mounts a small tmpfs of its own and the read-only test uses `chattr +i`;
//! both need root (as in CI) and print SKIP and pass where they are refused.

use std::path::Path;
use std::time::Duration;

use chatterbox::config::Switch;

use crate::support::{skip, TestClient, TestServer, Tmpfs, TIMEOUT};

/// The texts stored for `room` in the database at `db` (none if there is no database there).
async fn stored_texts(db: &Path, room: &str) -> Vec<String> {
    use sqlx::Connection;
    if !db.exists() {
        return Vec::new();
    }
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db);
    let Ok(mut connection) = sqlx::SqliteConnection::connect_with(&options).await else {
        return Vec::new();
    };
    sqlx::query_scalar("SELECT text FROM messages WHERE room = ? ORDER BY id")
        .bind(room)
        .fetch_all(&mut connection)
        .await
        .unwrap_or_default()
}

/// Polls until the database at `db` holds `expected` (in order, possibly after others) for
/// `room`; panics after 20 s.
async fn wait_stored(db: &Path, room: &str, expected: &[String]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let stored = stored_texts(db, room).await;
        if stored.ends_with(expected) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never stored; have {} rows, last {:?}",
            stored.len(),
            stored.last()
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // polling interval
    }
}

async fn wait_health(server: &TestServer, healthy: bool) {
    let mut health = server.app.history.health();
    tokio::time::timeout(TIMEOUT, health.wait_for(|h| *h == healthy))
        .await
        .unwrap_or_else(|_| panic!("the writer never became healthy={healthy}"))
        .unwrap();
    assert_eq!(server.app.history.is_healthy(), healthy);
    // Readiness follows: a load balancer sends no new clients while writes fail.
    let (status, _) = server.get_json("/health/ready").await;
    if healthy {
        // The store probe is cached for a second: ready again within a few.
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        let mut status = status;
        while status != 200 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await; // polling interval
            status = server.get_json("/health/ready").await.0;
        }
        assert_eq!(status, 200, "ready once writes succeed");
    } else {
        assert_eq!(status, 503, "not ready while writes fail");
    }
}

/// Sends `texts` and waits until each is echoed: accepted and delivered live.
async fn chat_live(client: &mut TestClient, room: &str, texts: &[String]) {
    for text in texts {
        client.chat(room, text).await;
    }
    for text in texts {
        assert_eq!(client.recv_type("chat").await["text"], *text);
    }
}

fn texts(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// `rm chat.db*` under a running server: SQLite would go on committing into the deleted file.
/// The writer notices the path no longer names its file, reopens it (a new database) and writes
/// everything accepted since.
#[tokio::test]
async fn a_removed_database_file_is_recreated_and_later_messages_are_written_there() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let server = TestServer::builder().db(db.clone()).start().await;
    let mut alice = server.connect("alice").await;
    alice.join("r").await;
    let before = texts("before", 3);
    chat_live(&mut alice, "r", &before).await;
    wait_stored(&db, "r", &before).await;

    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let after = texts("after", 5);
    chat_live(&mut alice, "r", &after).await;
    wait_stored(&db, "r", &after).await;
    // A joiner still gets the room's history (from memory), and ids go on.
    alice.chat("r", "next").await;
    assert_eq!(alice.recv_type("chat").await["id"], 9);
    assert!(server.app.history.is_healthy());
    server.shutdown().await;
}

/// The database's whole directory removed: writes fail (the writer is unhealthy) while chat goes
/// on; once the directory is back, the database is recreated with every message accepted during
/// the outage.
#[tokio::test]
async fn a_removed_directory_stops_writes_until_it_is_back_and_nothing_accepted_is_lost() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    let db = dir.join("chat.db");
    let server = TestServer::builder().db(db.clone()).start().await;
    let mut alice = server.connect("alice").await;
    alice.join("r").await;
    chat_live(&mut alice, "r", &texts("before", 2)).await;
    wait_stored(&db, "r", &texts("before", 2)).await;

    std::fs::remove_dir_all(&dir).unwrap();
    let during = texts("during", 10);
    chat_live(&mut alice, "r", &during).await;
    wait_health(&server, false).await;

    std::fs::create_dir(&dir).unwrap();
    wait_health(&server, true).await;
    wait_stored(&db, "r", &during).await;
    server.shutdown().await;
}

/// A full disk: SQLite's writes fail (SQLITE_FULL) and are retried while chat goes on; once
/// space is freed, everything accepted meanwhile is stored.
#[tokio::test]
async fn a_full_disk_delays_writes_and_loses_nothing() {
    let Some(fs) = Tmpfs::mount(8 << 20) else {
        return skip("a_full_disk", "cannot mount a tmpfs here (needs root)");
    };
    let db = fs.path().join("chat.db");
    // Enough data to outgrow what the WAL already holds: a WAL that was reset is rewritten in
    // place, which needs no new space.
    let server = TestServer::builder()
        .db(db.clone())
        .config(|c| c.rate.rate_limits = Switch::Off)
        .start()
        .await;
    let mut alice = server.connect("alice").await;
    alice.join("r").await;
    chat_live(&mut alice, "r", &texts("before", 2)).await;
    wait_stored(&db, "r", &texts("before", 2)).await;

    let filler = fs.fill();
    let long = "x".repeat(3990);
    let during: Vec<String> = (0..100).map(|i| format!("{i:03} {long}")).collect();
    chat_live(&mut alice, "r", &during).await;
    wait_health(&server, false).await;

    std::fs::remove_file(filler).unwrap();
    wait_health(&server, true).await;
    wait_stored(&db, "r", &during).await;
    server.shutdown().await;
}

/// The database made read-only under the server: root ignores file modes, so the files are
/// made immutable (`chattr +i`), which refuses writes even through descriptors already open.
/// Writes fail and are retried; once the files are writable again they resume, nothing lost.
#[tokio::test]
async fn a_read_only_database_delays_writes_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let server = TestServer::builder().db(db.clone()).start().await;
    let mut alice = server.connect("alice").await;
    alice.join("r").await;
    chat_live(&mut alice, "r", &texts("before", 2)).await;
    wait_stored(&db, "r", &texts("before", 2)).await;

    let files = [db.clone(), db.with_extension("db-wal")];
    if !files.iter().all(|f| chattr(f, "+i")) {
        files.iter().for_each(|f| {
            chattr(f, "-i");
        });
        return skip("a_read_only_database", "chattr +i is not supported here");
    }
    let during = texts("during", 10);
    chat_live(&mut alice, "r", &during).await;
    wait_health(&server, false).await;

    for file in &files {
        assert!(chattr(file, "-i"));
    }
    wait_health(&server, true).await;
    wait_stored(&db, "r", &during).await;
    server.shutdown().await;
}

fn chattr(file: &Path, flag: &str) -> bool {
    std::process::Command::new("chattr")
        .arg(flag)
        .arg(file)
        .output()
        .is_ok_and(|o| o.status.success())
}
