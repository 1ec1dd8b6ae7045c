//! Bad input gets a clear error and leaves the connection usable.

use serde_json::json;

use crate::support::{TestClient, TestServer};

#[tokio::test]
async fn every_bad_message_gets_an_error_frame_and_the_connection_stays_usable() {
    let server = TestServer::start_with(|c| {
        c.limits.max_text_chars = 10;
        c.limits.max_room_name_chars = 8;
    })
    .await;
    let mut alice = server.connect("alice").await;
    alice.join("ok").await;
    let long_room = "r".repeat(9);
    let cases = [
        ("{not json".to_string(), "invalid_json"),
        ("[1,2,3]".to_string(), "not_object"),
        ("\"just a string\"".to_string(), "not_object"),
        (
            json!({"type":"dance","room":"ok"}).to_string(),
            "unknown_type",
        ),
        (json!({"room":"ok"}).to_string(), "unknown_type"),
        (json!({"type":"join"}).to_string(), "missing_room"),
        (json!({"type":"join","room":""}).to_string(), "invalid_room"),
        (
            json!({"type":"join","room":"a\u{1}b"}).to_string(),
            "invalid_room",
        ),
        (
            json!({"type":"join","room":long_room}).to_string(),
            "invalid_room",
        ),
        (
            json!({"type":"chat","room":"ok","text":""}).to_string(),
            "empty_text",
        ),
        (
            json!({"type":"chat","room":"ok","text":"   "}).to_string(),
            "empty_text",
        ),
        (json!({"type":"chat","room":"ok"}).to_string(), "empty_text"),
        (
            json!({"type":"chat","room":"ok","text":"x".repeat(11)}).to_string(),
            "text_too_long",
        ),
        (
            json!({"type":"chat","room":"other","text":"hi"}).to_string(),
            "not_member",
        ),
        (
            json!({"type":"leave","room":"other"}).to_string(),
            "not_member",
        ),
        (json!({"type":"join","room":5}).to_string(), "invalid_json"),
    ];
    for (raw, code) in cases {
        alice.send_text(&raw).await;
        let frame = alice.recv().await;
        assert_eq!(frame["type"], "error", "for {raw}: {frame}");
        assert_eq!(frame["code"], code, "for {raw}: {frame}");
        assert!(!frame["message"].as_str().unwrap().is_empty());
    }
    // Errors about a named room say which room.
    alice.send(json!({"type":"join","room":long_room})).await;
    assert_eq!(alice.recv().await["room"], long_room);
    // Still usable, and none of the bad input was broadcast.
    alice.chat("ok", "fine").await;
    let chat = alice.recv().await;
    assert_eq!(
        (chat["type"].as_str(), chat["id"].as_u64()),
        (Some("chat"), Some(1))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn forged_leaves_are_refused_and_not_broadcast() {
    let server = TestServer::start().await;
    let mut victim = server.connect("victim").await;
    victim.join("r").await;
    let mut forger = server.connect("forger").await;
    forger.send(json!({"type":"leave","room":"r"})).await;
    assert_eq!(forger.recv().await["code"], "not_member");
    victim.chat("r", "after").await;
    assert_eq!(
        victim.recv().await["type"],
        "chat",
        "no leave reached the room"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn binary_frames_get_an_error() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    use futures_util::SinkExt;
    alice
        .ws
        .send(tokio_tungstenite::tungstenite::Message::binary(vec![
            1, 2, 3,
        ]))
        .await
        .unwrap();
    assert_eq!(alice.recv().await["code"], "binary_unsupported");
    alice.join("r").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_join_past_max_rooms_is_refused_and_not_a_membership() {
    let server = TestServer::start_with(|c| c.limits.max_rooms = 2).await;
    let mut alice = server.connect("alice").await;
    alice.join("a").await;
    alice.join("b").await;
    alice.send(json!({"type":"join","room":"c"})).await;
    let error = alice.recv().await;
    assert_eq!(
        (error["code"].as_str(), error["room"].as_str()),
        (Some("too_many_rooms"), Some("c"))
    );
    alice.chat("c", "hi").await;
    assert_eq!(alice.recv().await["code"], "not_member");
    let (status, _) = server.get_json("/api/rooms/c").await;
    assert_eq!(status, 404);
    // Existing rooms stay joinable by others.
    let mut bob = server.connect("bob").await;
    bob.join("a").await;
    server.shutdown().await;
}

/// One client address cannot take every room slot, however many connections it opens: the rooms
/// it creates are capped, while others still create rooms and it still joins theirs.
#[tokio::test]
async fn one_address_cannot_exhaust_the_rooms() {
    let server = TestServer::start_with(|c| {
        c.limits.max_rooms = 10;
        c.limits.max_rooms_created_per_ip = 3;
    })
    .await;
    let squatter = [127, 0, 0, 1].into();
    let mut first = TestClient::connect_from(&server.ws_url("squat1"), squatter).await;
    let mut second = TestClient::connect_from(&server.ws_url("squat2"), squatter).await;
    first.join("s1").await;
    first.join("s2").await;
    second.join("s3").await;
    second.send(json!({"type":"join","room":"s4"})).await;
    let error = second.recv().await;
    assert_eq!(error["code"], "too_many_rooms", "{error}");
    assert!(error["message"].as_str().unwrap().contains("your address"));

    let other = [127, 0, 0, 2].into();
    let mut bystander = TestClient::connect_from(&server.ws_url("bystander"), other).await;
    bystander.join("mine").await;
    second.join("mine").await; // joining is not creating
                               // A room that goes gives its slot back (requests on one connection are handled in order).
    first.send(json!({"type":"leave","room":"s1"})).await;
    first.join("s5").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_connection_has_a_room_limit() {
    let server = TestServer::start_with(|c| c.limits.max_rooms_per_connection = 2).await;
    let mut alice = server.connect("alice").await;
    alice.join("a").await;
    alice.join("b").await;
    alice.send(json!({"type":"join","room":"c"})).await;
    assert_eq!(alice.recv().await["code"], "too_many_joined");
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_frames_close_with_1009_and_a_reason() {
    let server = TestServer::start_with(|c| c.limits.max_frame_bytes = 1024).await;
    let mut alice = server.connect("alice").await;
    alice.join("r").await;
    let huge = json!({"type":"chat","room":"r","text":"x".repeat(2000)}).to_string();
    alice.send_text(&huge).await;
    let (code, reason) = alice.expect_close().await;
    assert_eq!(code, 1009);
    assert!(reason.contains("too big"), "{reason}");
    // The server keeps serving.
    let mut bob = server.connect("bob").await;
    bob.join("r").await;
    server.shutdown().await;
}

/// Names that could pose as someone else are refused: invisible and bidi characters, edge
/// spaces, fillers, mixed-script look-alikes. Names in one script are fine, and are normalised
/// (NFKC), so a decomposed or fullwidth spelling becomes the plain one.
#[tokio::test]
async fn deceptive_names_are_refused_and_names_are_normalised() {
    let server = TestServer::start().await;
    let deceptive = [
        "alice\u{200B}",
        "\u{202E}evil",
        " alice",
        "alice ",
        "\u{3164}",
        "\u{0430}lice",                                      // Cyrillic а, then Latin
        "a\u{0300}\u{0301}\u{0302}\u{0303}\u{0304}\u{0306}", // a stack of six marks
    ];
    for name in deceptive {
        let url = format!("{}?user={}", server.url("/ws"), urlencode(name));
        let response = upgrade_request(&url).await;
        assert_eq!(response.status().as_u16(), 400, "{name:?}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().starts_with("user name"),
            "{body}"
        );
    }
    let mut maria = server.connect(&urlencode("Мария")).await;
    assert_eq!(maria.join("r").await["users"], json!(["Мария"]));
    let mut jose = server.connect(&urlencode("Jose\u{0301}")).await; // NFD
    assert_eq!(jose.join("r").await["users"], json!(["José", "Мария"]));
    let mut wide = server.connect(&urlencode("ａｌｉｃｅ")).await;
    assert_eq!(
        wide.join("r").await["users"],
        json!(["José", "alice", "Мария"])
    );
    for room in ["r\u{200B}", "\u{202E}r", "pay\u{0440}al"] {
        maria.send(json!({"type":"join","room":room})).await;
        let error = maria.recv_type("error").await;
        assert_eq!(error["code"], "invalid_room", "{room:?}: {error}");
        assert!(error["message"].as_str().unwrap().starts_with("room name"));
    }
    server.shutdown().await;
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

async fn upgrade_request(url: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn bad_user_names_are_refused_before_the_upgrade() {
    let server = TestServer::start().await;
    let long = "u".repeat(33);
    for query in ["", "?user=", "?user=a%01b", &format!("?user={long}")] {
        let response = reqwest::Client::new()
            .get(server.url(&format!("/ws{query}")))
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "query {query:?}");
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("json"));
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("user"), "{body}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn requests_that_are_not_websocket_upgrades_get_a_clear_status() {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();
    let upgrade = |request: reqwest::RequestBuilder, skip: &str| {
        [
            ("Connection", "keep-alive, Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]
        .into_iter()
        .filter(|(name, _)| *name != skip)
        .fold(request, |request, (name, value)| {
            request.header(name, value)
        })
    };
    let url = server.url("/ws?user=alice");
    let cases = [
        (upgrade(client.get(&url), "Upgrade"), 400, "Upgrade header"),
        (
            upgrade(client.get(&url), "Connection"),
            400,
            "Connection header",
        ),
        (upgrade(client.get(&url), "Sec-WebSocket-Key"), 400, "Key"),
        (
            upgrade(client.get(&url), "Sec-WebSocket-Version"),
            426,
            "version",
        ),
        (
            upgrade(client.get(&url), "Sec-WebSocket-Version").header("Sec-WebSocket-Version", "8"),
            426,
            "version",
        ),
    ];
    for (request, status, says) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{says}");
        if status == 426 {
            assert_eq!(response.headers()["sec-websocket-version"], "13");
        }
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains(says), "{body}");
    }
    // None of that hurt the server: a real client still connects.
    let mut alice = server.connect("alice").await;
    alice.join("r").await;
    server.shutdown().await;
}
