//! Token mode inside a connection: refresh while a request waits, a narrower refresh, and tokens
//! valid for longer than a timer can be set. Each of these was a bug found in review.

use std::time::Duration;

use chatterbox::admission::{TokenMinter, TokenRequest};
use serde_json::json;

use crate::support::tokens::{token, SECRET};
use crate::support::{lock_sqlite, TestClient, TestServer};

fn mint(request: &TokenRequest) -> String {
    TokenMinter::hs256(SECRET).unwrap().mint(request).unwrap()
}

fn token_for_rooms(user: &str, rooms: &[&str]) -> String {
    let mut request = TokenRequest::new(user, Duration::from_secs(3600));
    request.rooms = Some(rooms.iter().map(|r| r.to_string()).collect());
    mint(&request)
}

fn url(server: &TestServer, token: &str) -> String {
    format!("ws://{}/ws?token={token}", server.addr)
}

/// A refresh that narrows the token's rooms leaves the rooms it no longer allows, saying so
/// with `forbidden`: nothing more is received from them and nothing can be sent into them.
#[tokio::test]
async fn a_narrower_refresh_leaves_the_rooms_it_no_longer_allows() {
    let server = TestServer::start_with(|c| c.auth.auth_secret = Some(SECRET.into())).await;
    let mut eve = TestClient::connect(&url(&server, &token("eve", Duration::from_secs(60)))).await;
    eve.join("secret").await;
    eve.join("lobby").await;
    eve.send(json!({"type":"refresh","token": token_for_rooms("eve", &["lobby"])}))
        .await;
    eve.recv_type("refreshed").await;
    let error = eve.recv_type("error").await;
    assert_eq!(
        (error["code"].as_str(), error["room"].as_str()),
        (Some("forbidden"), Some("secret"))
    );

    let mut boss =
        TestClient::connect(&url(&server, &token("boss", Duration::from_secs(60)))).await;
    boss.join("secret").await;
    boss.join("lobby").await;
    boss.chat("secret", "confidential").await;
    boss.chat("lobby", "hello all").await;
    let chat = eve.recv_type("chat").await;
    assert_eq!(
        (chat["room"].as_str(), chat["text"].as_str()),
        (Some("lobby"), Some("hello all"))
    );
    eve.chat("secret", "still here?").await;
    let error = eve.recv_type("error").await;
    assert_eq!(error["code"], "not_member");
    server.shutdown().await;
}

/// A refresh sent before the token expired, but read while a chat waited for the history writer
/// (the store locked), is applied when the token runs out: no 4001, and the connection goes on.
#[tokio::test]
async fn a_refresh_waiting_behind_a_slow_request_is_applied_in_time() {
    let server = TestServer::start_with(|c| {
        c.auth.auth_secret = Some(SECRET.into());
        c.auth.auth_leeway_seconds = 0;
        c.history.history_batch_size = 1;
        c.history.history_queue_capacity = 2;
        c.store.sqlite_busy_timeout_ms = 20;
        c.history.store_wait_seconds = 60.0;
    })
    .await;
    let mut alice =
        TestClient::connect(&url(&server, &token("alice", Duration::from_secs(2)))).await;
    alice.join("r").await;
    let lock = lock_sqlite(&server.db_path).await;
    for i in 0..6 {
        alice.chat("r", &format!("m{i}")).await;
    }
    alice
        .send(json!({"type":"refresh","token": token("alice", Duration::from_secs(3600))}))
        .await;
    // Answered when the first token runs out, ahead of the chats still waiting.
    // (The chats the writer's queue took before it filled come first.)
    let mut chats = 0;
    let refreshed = loop {
        let frame = alice.recv().await;
        match frame["type"].as_str() {
            Some("refreshed") => break frame,
            Some("chat") => chats += 1,
            _ => panic!("unexpected {frame}"),
        }
    };
    assert!(
        refreshed["expires_at"].as_u64().unwrap() > chatterbox::admission::token::unix_now() + 3000
    );
    lock.release().await;
    while chats < 6 {
        alice.recv_type("chat").await;
        chats += 1;
    }
    alice.join("after").await; // still connected past the first token's expiry
    server.shutdown().await;
}

/// Tokens valid (nearly) forever: the connection works and a refresh to one works (the expiry
/// timer overflowed `Instant` and panicked the session, leaving `connections_open` up for good).
#[tokio::test]
async fn tokens_that_expire_far_in_the_future_work() {
    let server = TestServer::start_with(|c| c.auth.auth_secret = Some(SECRET.into())).await;
    let forever = |user: &str| {
        let mut request = TokenRequest::new(user, Duration::ZERO);
        request.exp = u64::MAX;
        mint(&request)
    };
    let mut carol = TestClient::connect(&url(&server, &forever("carol"))).await;
    carol.join("r").await;
    let mut dave =
        TestClient::connect(&url(&server, &token("dave", Duration::from_secs(60)))).await;
    dave.join("r").await;
    dave.send(json!({"type":"refresh","token": forever("dave")}))
        .await;
    dave.recv_type("refreshed").await;
    dave.chat("r", "still fine").await;
    assert_eq!(carol.recv_type("chat").await["text"], "still fine");
    drop((carol, dave));
    server.shutdown().await;
}
