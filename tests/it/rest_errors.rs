//! Every REST error is JSON `{"error": ...}` with a fitting status, in our own words; room names
//! in paths follow the WebSocket's name rules.

use chatterbox::protocol::names::{normalize_name, NameKind};
use serde_json::Value;

use crate::support::TestServer;

/// Status, content type and body of a request, checking the body is a JSON error.
async fn error_of(request: reqwest::RequestBuilder) -> (u16, String) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    assert_eq!(
        headers["content-type"], "application/json",
        "status {status}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let body: Value = response.json().await.expect("a JSON body");
    let message = body["error"].as_str().expect("an error field").to_string();
    (status, message)
}

fn room_rule(raw: &str) -> String {
    let max = chatterbox::Config::default().limits.max_room_name_chars;
    normalize_name(NameKind::Room, raw, max)
        .unwrap_err()
        .to_string()
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_get_json_errors() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    for path in ["/api/nope", "/no-such-file.js", "/api/rooms/a/b/c"] {
        let (status, message) = error_of(http.get(server.url(path))).await;
        assert_eq!((status, message.as_str()), (404, "no such path"), "{path}");
    }
    for (method, path) in [
        (reqwest::Method::POST, "/api/rooms"),
        (reqwest::Method::DELETE, "/api/rooms/general"),
        (reqwest::Method::PUT, "/health"),
        (reqwest::Method::POST, "/ws"),
    ] {
        let (status, message) = error_of(http.request(method.clone(), server.url(path))).await;
        assert_eq!(status, 405, "{method} {path}");
        assert_eq!(message, "method not allowed");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn bad_query_strings_get_a_fixed_message_naming_the_parameter() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let cases = [
        (
            "?limit=abc",
            "query parameter `limit` must be a whole number from 1 to 500",
        ),
        (
            "?limit=0",
            "query parameter `limit` must be a whole number from 1 to 500",
        ),
        (
            "?limit=-3",
            "query parameter `limit` must be a whole number from 1 to 500",
        ),
        (
            "?before=x1",
            "query parameter `before` must be a message id (a whole number)",
        ),
        (
            "?before=99999999999999999999999",
            "query parameter `before` must be a message id (a whole number)",
        ),
        (
            "?limit=5&limit=6",
            "query parameter `limit` is given more than once",
        ),
    ];
    for (query, expected) in cases {
        let url = server.url(&format!("/api/rooms/general/messages{query}"));
        let (status, message) = error_of(http.get(url)).await;
        assert_eq!((status, message.as_str()), (400, expected), "{query}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn room_names_in_paths_follow_the_websocket_rules() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let long = "a".repeat(10_000);
    let cases = [
        ("%00".to_string(), room_rule("\0")),
        ("a%E2%80%AEb".to_string(), room_rule("a\u{202E}b")),
        (String::new(), room_rule("")),
        (long.clone(), room_rule(&long)),
    ];
    for (encoded, expected) in &cases {
        for suffix in ["", "/messages"] {
            let url = server.url(&format!("/api/rooms/{encoded}{suffix}"));
            let (status, message) = error_of(http.get(url)).await;
            assert_eq!(status, 400, "{encoded:.20}{suffix}");
            assert_eq!(&message, expected, "{encoded:.20}{suffix}");
        }
    }
    // Not UTF-8 once decoded: a fixed sentence, not the decoder's.
    for path in ["/api/rooms/%FF", "/api/rooms/%C3%28/messages"] {
        let (status, message) = error_of(http.get(server.url(path))).await;
        assert_eq!(status, 400, "{path}");
        assert_eq!(
            message,
            "the room name in the path is not valid percent-encoded UTF-8"
        );
    }
    server.shutdown().await;
}

/// A name is looked up as the WebSocket would store it: `ｇｅｎｅｒａｌ` (full-width) is `general`.
#[tokio::test]
async fn normalised_room_names_find_the_normalised_room() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    alice.join("general").await;
    alice.chat("general", "hello").await;
    alice.recv_type("chat").await;
    let full_width = "%EF%BD%87%EF%BD%85%EF%BD%8E%EF%BD%85%EF%BD%92%EF%BD%81%EF%BD%8C";
    let (status, room) = server.get_json(&format!("/api/rooms/{full_width}")).await;
    assert_eq!(status, 200);
    assert_eq!(room["name"], "general");
    assert_eq!(room["users"], serde_json::json!(["alice"]));
    let (status, page) = server
        .get_json(&format!("/api/rooms/{full_width}/messages"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["room"], "general");
    assert_eq!(page["messages"][0]["text"], "hello");
    server.shutdown().await;
}
