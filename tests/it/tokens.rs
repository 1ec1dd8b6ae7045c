//! Token mode at the door: a valid token is needed and its subject is the name, REST needs one
//! too and shows only its rooms, the rooms claim limits joins, expiry closes with 4001 unless
//! refreshed, and `chatterbox token` mints what the server accepts.

use std::time::Duration;

use chatterbox::admission::{TokenMinter, TokenRequest};
use serde_json::Value;

use crate::support::tokens::{token, token_server, SECRET};
use crate::support::upgrade::upgrade;
use crate::support::TestServer;

#[tokio::test]
async fn token_mode_needs_a_valid_token_and_the_name_is_its_subject() {
    let server = token_server().await;
    let (status, _, body) = upgrade(&server, "?user=alice", &[]).await.refused();
    assert_eq!(status, 401);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("token is required"),
        "{body}"
    );
    let expired = {
        let mut request = TokenRequest::new("alice", Duration::ZERO);
        request.exp -= 3600;
        TokenMinter::hs256(SECRET).unwrap().mint(&request).unwrap()
    };
    let forged = TokenMinter::hs256("some-other-secret-of-thirty-two-bytes")
        .unwrap()
        .mint(&TokenRequest::new("alice", Duration::from_secs(60)))
        .unwrap();
    for (bad, reason) in [
        (expired.as_str(), "token expired"),
        (forged.as_str(), "signature"),
        ("garbage", "malformed"),
    ] {
        let (status, _, body) = upgrade(&server, &format!("?token={bad}"), &[])
            .await
            .refused();
        assert_eq!(status, 401, "{reason}");
        assert!(body["error"].as_str().unwrap().contains(reason), "{body}");
    }
    // ?token=, Authorization: Bearer, and the subprotocol a browser can set; `?user=` is ignored.
    let good = token("alice", Duration::from_secs(60));
    let (mut a, _) = upgrade(&server, &format!("?token={good}&user=mallory"), &[])
        .await
        .connected();
    assert_eq!(a.join("r").await["users"], serde_json::json!(["alice"]));
    let bearer = format!("Bearer {}", token("bob", Duration::from_secs(60)));
    upgrade(&server, "", &[("authorization", &bearer)])
        .await
        .connected();
    let offer = format!(
        "chatterbox, auth.{}",
        token("carol", Duration::from_secs(60))
    );
    let (_, selected) = upgrade(&server, "", &[("sec-websocket-protocol", &offer)])
        .await
        .connected();
    assert_eq!(
        selected.as_deref(),
        Some("chatterbox"),
        "the server selects chatterbox"
    );
    let alone = format!("auth.{good}");
    let (status, ..) = upgrade(&server, "", &[("sec-websocket-protocol", &alone)])
        .await
        .refused();
    assert_eq!(
        status, 400,
        "a token subprotocol needs chatterbox beside it"
    );
    let folded = token("ａｄｍｉｎ", Duration::from_secs(60));
    let (status, _, body) = upgrade(&server, &format!("?token={folded}"), &[])
        .await
        .refused();
    assert_eq!(
        status, 401,
        "a subject is not folded into another user's name"
    );
    assert!(
        body["error"].as_str().unwrap().contains("normal form"),
        "{body}"
    );
    let bad_subject = token("\u{202E}evil", Duration::from_secs(60));
    let (status, _, body) = upgrade(&server, &format!("?token={bad_subject}"), &[])
        .await
        .refused();
    assert_eq!(status, 401);
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("not a valid user name"));
    server.shutdown().await;
}

/// `chatterbox token` prints a token alone on stdout that a server with the same secret accepts.
#[tokio::test]
async fn the_token_command_mints_tokens_the_server_accepts() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_chatterbox"))
        .args([
            "token",
            "--user",
            "dave",
            "--rooms",
            "team-*,lobby",
            "--ttl",
            "10m",
        ])
        .env("AUTH_SECRET", SECRET)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let token = stdout.trim_end();
    assert_eq!(token.lines().count(), 1, "the token alone");
    let server = token_server().await;
    let (mut dave, _) = upgrade(&server, &format!("?token={token}"), &[])
        .await
        .connected();
    assert_eq!(
        dave.join("lobby").await["users"],
        serde_json::json!(["dave"])
    );
    server.shutdown().await;

    let without = tokio::process::Command::new(env!("CARGO_BIN_EXE_chatterbox"))
        .args(["token", "--user", "dave"])
        .env_remove("AUTH_SECRET")
        .output()
        .await
        .unwrap();
    assert_eq!(without.status.code(), Some(2), "no secret: a clear error");
}

/// In token mode the REST API needs a token too and shows only the rooms it may join;
/// health stays open.
#[tokio::test]
async fn token_mode_rest_needs_a_token_and_shows_only_its_rooms() {
    let server = token_server().await;
    let (mut open_member, _) = upgrade(
        &server,
        &format!("?token={}", token("ops", Duration::from_secs(60))),
        &[],
    )
    .await
    .connected();
    open_member.join("general").await;
    open_member.join("team-red").await;
    let client = reqwest::Client::new();
    let get = |path: &str, token: Option<String>| {
        let mut request = client.get(server.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(get("/health", None).await.unwrap().status().as_u16(), 200);
    assert_eq!(
        get("/api/rooms", None).await.unwrap().status().as_u16(),
        401
    );
    let limited = {
        let mut request = TokenRequest::new("guest", Duration::from_secs(60));
        request.rooms = Some(vec!["team-*".into()]);
        TokenMinter::hs256(SECRET).unwrap().mint(&request).unwrap()
    };
    let rooms: Value = get("/api/rooms", Some(limited.clone()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        rooms,
        serde_json::json!([{"name":"team-red","user_count":1}])
    );
    for path in ["/api/rooms/general", "/api/rooms/general/messages"] {
        let response = get(path, Some(limited.clone())).await.unwrap();
        assert_eq!(response.status().as_u16(), 403, "{path}");
    }
    let all: Value = get("/api/rooms", Some(token("ops", Duration::from_secs(60))))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        all.as_array().unwrap().len(),
        2,
        "no rooms claim: every room"
    );
    server.shutdown().await;
}

/// A token's `rooms` claim limits which rooms its user may join: others get `forbidden`.
#[tokio::test]
async fn a_rooms_claim_limits_joins() {
    let server = token_server().await;
    let limited = {
        let mut request = TokenRequest::new("guest", Duration::from_secs(60));
        request.rooms = Some(vec!["team-*".into(), "lobby".into()]);
        TokenMinter::hs256(SECRET).unwrap().mint(&request).unwrap()
    };
    let (mut guest, _) = upgrade(&server, &format!("?token={limited}"), &[])
        .await
        .connected();
    guest.join("team-red").await;
    guest.join("lobby").await;
    guest
        .send(serde_json::json!({"type":"join","room":"ceo"}))
        .await;
    let error = guest.recv_type("error").await;
    assert_eq!(
        (error["code"].as_str(), error["room"].as_str()),
        (Some("forbidden"), Some("ceo"))
    );
    guest.chat("ceo", "hi").await;
    assert_eq!(guest.recv_type("error").await["code"], "not_member");
    server.shutdown().await;
}

/// A connection whose token expires is closed with 4001 "token expired" — unless it sends a
/// fresh token for the same user first.
#[tokio::test]
async fn an_expiring_token_closes_the_connection_unless_refreshed() {
    let server = TestServer::start_with(|c| {
        c.auth.auth_secret = Some(SECRET.into());
        c.auth.auth_leeway_seconds = 0;
    })
    .await;
    let short = token("alice", Duration::from_secs(1));
    let (mut expiring, _) = upgrade(&server, &format!("?token={short}"), &[])
        .await
        .connected();
    expiring.join("r").await;
    let (code, reason) = expiring.expect_close().await;
    assert_eq!((code, reason.as_str()), (4001, "token expired"));

    let short = token("bob", Duration::from_secs(1));
    let (mut refreshing, _) = upgrade(&server, &format!("?token={short}"), &[])
        .await
        .connected();
    refreshing
        .send(serde_json::json!({"type":"refresh","token": token("mallory", Duration::from_secs(60))}))
        .await;
    let error = refreshing.recv_type("error").await;
    assert_eq!(
        error["code"], "invalid_token",
        "another user's token: {error}"
    );
    refreshing
        .send(
            serde_json::json!({"type":"refresh","token": token("bob", Duration::from_secs(3600))}),
        )
        .await;
    let refreshed = refreshing.recv_type("refreshed").await;
    assert!(
        refreshed["expires_at"].as_u64().unwrap() > chatterbox::admission::token::unix_now() + 3000
    );
    // Well past the first token's expiry, the connection is still served.
    assert!(
        refreshing
            .recv_within(Duration::from_secs(3))
            .await
            .is_none(),
        "no close"
    );
    refreshing.join("r").await;
    server.shutdown().await;

    let open = TestServer::start().await;
    let mut client = open.connect("carol").await;
    client
        .send(serde_json::json!({"type":"refresh","token":"x"}))
        .await;
    assert_eq!(client.recv_type("error").await["code"], "invalid_token");
    open.shutdown().await;
}
