//! `/health/live` and `/health/ready`: ready answers 503 while draining or while the store does
//! not answer; `/health` stays as it was.

use std::time::Duration;

use crate::support::{lock_sqlite, TestServer, TIMEOUT};

/// Polls `path` until it answers `status`; panics after [`TIMEOUT`].
async fn wait_for_status(url: &str, status: u16) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let response = reqwest::get(url).await.unwrap();
        if response.status().as_u16() == status {
            assert_eq!(response.headers()["content-type"], "application/json");
            return response.json().await.unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} never answered {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // polling interval, not a sync point
    }
}

#[tokio::test]
async fn live_and_ready_answer_200_and_health_is_unchanged() {
    let server = TestServer::start().await;
    assert_eq!(server.get_json("/health/live").await.0, 200);
    let (status, ready) = server.get_json("/health/ready").await;
    assert_eq!((status, ready["status"].as_str()), (200, Some("ready")));
    let (status, health) = server.get_json("/health").await;
    assert_eq!(status, 200);
    let mut keys: Vec<&String> = health.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["rooms", "status", "uptime_seconds", "version"]);
    server.shutdown().await;
}

#[tokio::test]
async fn ready_answers_503_while_the_store_cannot_take_a_write() {
    let server = TestServer::start().await;
    let ready = server.url("/health/ready");
    wait_for_status(&ready, 200).await;
    let lock = lock_sqlite(&server.db_path).await;
    let body = wait_for_status(&ready, 503).await;
    assert!(body["error"].as_str().unwrap().contains("store"), "{body}");
    let (status, _) = server.get_json("/health/live").await;
    assert_eq!(status, 200, "alive all the same");
    lock.release().await;
    wait_for_status(&ready, 200).await;
    server.shutdown().await;
}

#[tokio::test]
async fn ready_answers_503_while_draining_and_the_rest_is_served_meanwhile() {
    let server = TestServer::start_with(|c| c.net.shutdown_delay_seconds = 2.0).await;
    let (ready, live, rooms) = (
        server.url("/health/ready"),
        server.url("/health/live"),
        server.url("/api/rooms"),
    );
    wait_for_status(&ready, 200).await;
    let stopping = tokio::spawn(server.shutdown());
    let body = wait_for_status(&ready, 503).await;
    assert_eq!(body["error"], "server is shutting down");
    assert_eq!(reqwest::get(&live).await.unwrap().status(), 200);
    assert_eq!(reqwest::get(&rooms).await.unwrap().status(), 200);
    tokio::time::timeout(Duration::from_secs(15), stopping)
        .await
        .expect("shutdown completes after the delay")
        .unwrap();
}
