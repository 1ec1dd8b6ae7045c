//! Out of file descriptors at accept: the real binary under a low `ulimit -n` keeps serving its
//! clients, refuses new ones cleanly, logs a few lines rather than a flood, counts the refusals
//! and accepts again once descriptors free up.

use std::time::Duration;

use tokio_tungstenite::connect_async;

use crate::support::{metric_value, ServerProcess, TestClient, TIMEOUT};

/// Descriptors the server may have: enough to start (stdio, runtime, SQLite, listener, spare)
/// with a few dozen left for clients.
const FD_LIMIT: u32 = 64;

/// Whether a WebSocket connects; a refused one is closed by the server right after the TCP
/// handshake, so the upgrade fails (within the timeout, never a hang).
async fn try_connect(url: &str) -> Option<TestClient> {
    match tokio::time::timeout(TIMEOUT, connect_async(url)).await {
        Ok(Ok((ws, _))) => Some(TestClient { ws }),
        Ok(Err(_)) => None,
        Err(_) => panic!("a connection attempt hung instead of being refused"),
    }
}

#[tokio::test]
async fn at_the_descriptor_limit_new_clients_are_refused_and_existing_ones_served() {
    let dir = tempfile::tempdir().unwrap();
    // No connection limit from admission: it would keep WebSockets well below the descriptor
    // limit (which is what it is for), and this test is about what happens at that limit.
    let server = ServerProcess::spawn_with_fd_limit(
        &dir.path().join("chat.db"),
        FD_LIMIT,
        &[("MAX_CONNECTIONS", "0")],
    )
    .await;
    let mut clients = Vec::new();
    let mut refused = 0;
    for i in 0..FD_LIMIT * 2 {
        match try_connect(&server.ws_url(&format!("u{i}"))).await {
            Some(client) => clients.push(client),
            None => {
                refused += 1;
                if refused == 20 {
                    break;
                }
            }
        }
    }
    assert!(
        refused == 20,
        "never reached the limit with {} clients",
        clients.len()
    );
    assert!(
        clients.len() > 10,
        "only {} clients before the limit",
        clients.len()
    );

    // Existing clients are served as before.
    let (first, rest) = clients.split_at_mut(1);
    first[0].join("r").await;
    rest[0].join("r").await;
    first[0].chat("r", "still here").await;
    assert_eq!(rest[0].recv_type("chat").await["text"], "still here");

    // Free some descriptors: new clients get in again.
    clients.truncate(clients.len() - 5);
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let newcomer = loop {
        if let Some(client) = try_connect(&server.ws_url("newcomer")).await {
            break client;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never accepted again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // polling interval, not a sync point
    };
    drop(newcomer);
    let body = tokio::time::timeout(TIMEOUT, async {
        loop {
            if let Ok(response) = reqwest::get(server.url("/metrics")).await {
                break response.text().await.unwrap();
            }
        }
    })
    .await
    .expect("metrics answer once descriptors are free");
    let counted = metric_value(&body, "chatterbox_fd_limit_refusals_total").unwrap();
    assert!(counted >= f64::from(refused), "{counted} refusals counted");

    let about_it: Vec<String> = server
        .log()
        .into_iter()
        .filter(|line| line.contains("file descriptors") || line.contains("accepting connections"))
        .collect();
    assert!(
        !about_it.is_empty() && about_it.len() <= 3,
        "a few log lines, not one per refusal: {about_it:#?}"
    );
}
