//! Input hygiene: duplicate JSON keys are refused, chat texts that could hurt other people's
//! screens are refused with `invalid_text`, and texts are bounded by their encoded size.

use serde_json::json;

use crate::support::TestServer;

/// `{"type":"chat","type":"join"}` and friends: one decoder reading the last key and a filter
/// reading the first would disagree, so the server refuses them all.
#[tokio::test]
async fn duplicate_keys_are_invalid_json() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    alice.join("r").await;
    let mut bob = server.connect("bob").await;
    bob.join("r").await;
    alice.recv_type("join").await;
    for raw in [
        r#"{"type":"chat","room":"r","text":"hi","type":"join"}"#,
        r#"{"type":"join","room":"other","ty\u0070e":"chat"}"#,
        r#"{"type":"chat","room":"r","text":"a","text":"b"}"#,
        r#"{"type":"chat","room":"r","text":"hi","meta":{"k":1,"k":2}}"#,
    ] {
        alice.send_text(raw).await;
        let error = alice.recv_type("error").await;
        assert_eq!(error["code"], "invalid_json", "{raw}");
        assert!(error["message"].as_str().unwrap().contains("duplicate key"));
    }
    // None of it joined a room or was broadcast: bob's next frame is alice's next chat.
    alice.chat("r", "fine").await;
    let chat = bob.recv().await;
    assert_eq!(
        (chat["type"].as_str(), chat["id"].as_u64()),
        (Some("chat"), Some(1))
    );
    let (_, rooms) = server.get_json("/api/rooms").await;
    assert_eq!(rooms, json!([{"name":"r","user_count":2}]));
    server.shutdown().await;
}

/// Terminal escapes, NUL, bidi overrides and Zalgo stacks are refused with `invalid_text` and a
/// reason; newlines, tabs, emoji, right-to-left text and up to MAX_COMBINING_MARKS marks pass,
/// and the text is published in NFC.
#[tokio::test]
async fn chat_texts_that_could_hurt_other_screens_are_refused() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    alice.join("r").await;
    let zalgo = format!("h{}i", "\u{0301}".repeat(9));
    for (text, why) in [
        ("\u{1b}[2J\u{1b}[31mwelcome", "control"),
        ("nul\0byte", "control"),
        ("carriage\rreturn", "control"),
        ("c1\u{9b}31m", "control"),
        ("file\u{202E}gnp.exe", "bidirectional"),
        ("isolate\u{2066}x", "bidirectional"),
        (zalgo.as_str(), "combining"),
    ] {
        alice.chat("r", text).await;
        let error = alice.recv().await;
        assert_eq!(error["code"], "invalid_text", "{text:?}: {error}");
        assert_eq!(error["room"], "r");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(why), "{text:?}: {message}");
    }
    let eight = format!("q{}", "\u{0301}".repeat(8));
    for (sent, published) in [
        ("two\nlines\tand a tab", "two\nlines\tand a tab"),
        ("שלום \u{200F}עולם 👩‍💻", "שלום \u{200F}עולם 👩‍💻"),
        ("Jose\u{0301}", "José"),
        (eight.as_str(), eight.as_str()),
    ] {
        alice.chat("r", sent).await;
        let chat = alice.recv().await;
        assert_eq!(chat["type"], "chat", "{sent:?}: {chat}");
        assert_eq!(chat["text"], published);
    }
    server.shutdown().await;
}

/// A text within MAX_TEXT_CHARS can still be refused for its size as JSON, where every quote
/// costs two bytes.
#[tokio::test]
async fn texts_are_bounded_by_their_encoded_size() {
    let server = TestServer::start_with(|c| c.limits.max_text_bytes = 100).await;
    let mut alice = server.connect("alice").await;
    alice.join("r").await;
    alice.chat("r", &"\"".repeat(60)).await; // 60 characters, 120 bytes as JSON
    let error = alice.recv().await;
    assert_eq!(error["code"], "text_too_long");
    assert!(error["message"].as_str().unwrap().contains("100 bytes"));
    alice.chat("r", &"x".repeat(100)).await;
    assert_eq!(alice.recv().await["type"], "chat");
    server.shutdown().await;
}
