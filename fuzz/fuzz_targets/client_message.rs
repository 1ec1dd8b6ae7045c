//! The client-message decoder on arbitrary bytes: it never panics, whatever it accepts encodes
//! and decodes back to the same message, and a chat text it accepts goes through the text rules
//! without panicking, coming out within their limits.

#![no_main]

use std::sync::OnceLock;

use chatterbox::protocol::text::TextRules;
use chatterbox::protocol::{parse_client_message, ClientMessage};
use libfuzzer_sys::fuzz_target;

/// The default rules, built once (the configuration parses the command line).
fn rules() -> &'static TextRules {
    static RULES: OnceLock<TextRules> = OnceLock::new();
    RULES.get_or_init(|| chatterbox::Config::default().limits.text_rules())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(message) = parse_client_message(text) else {
        return;
    };
    let encoded = serde_json::to_string(&message).expect("messages serialise");
    assert_eq!(parse_client_message(&encoded).expect("re-decodes"), message);
    if let ClientMessage::Chat {
        text: Some(text), ..
    } = &message
    {
        let rules = rules();
        if let Ok(clean) = rules.check(text) {
            assert!(clean.chars().count() <= rules.max_chars);
            assert!(!clean.contains(|c: char| c.is_control() && c != '\n' && c != '\t'));
        }
    }
});
