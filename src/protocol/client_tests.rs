use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

fn code(text: &str) -> ErrorCode {
    parse_client_message(text).unwrap_err().code
}

#[test]
fn classifies_bad_input() {
    assert_eq!(code("{nope"), ErrorCode::InvalidJson);
    assert_eq!(code(r#"{"type":"join"} trailing"#), ErrorCode::InvalidJson);
    assert_eq!(code("[1,2]"), ErrorCode::NotAnObject);
    assert_eq!(code("[1,2"), ErrorCode::InvalidJson, "not JSON first");
    assert_eq!(code("\"just a string\""), ErrorCode::NotAnObject);
    assert_eq!(code(r#"{"type":"dance"}"#), ErrorCode::UnknownType);
    assert_eq!(code(r#"{"type":5,"room":"x"}"#), ErrorCode::UnknownType);
    assert_eq!(code(r#"{"room":"x"}"#), ErrorCode::UnknownType);
    assert_eq!(code(r#"{"type":"dance","room":5}"#), ErrorCode::UnknownType);
    assert_eq!(code(r#"{"type":"join","room":5}"#), ErrorCode::InvalidJson);
    assert_eq!(
        code(r#"{"type":"join","since":-1}"#),
        ErrorCode::InvalidJson
    );
    assert_eq!(
        code(r#"{"type":"join","since":1.5}"#),
        ErrorCode::InvalidJson
    );
    assert_eq!(code(r#"{"type":"chat","text":[]}"#), ErrorCode::InvalidJson);
    assert_eq!(
        parse_client_message(r#"{"type":"join","room":"a","since":3}"#).unwrap(),
        ClientMessage::Join {
            room: Some("a".into()),
            since: Some(3)
        }
    );
    // Fields a message does not use are not checked, as before.
    assert!(parse_client_message(r#"{"type":"join","room":"a","text":5,"x":[{}]}"#).is_ok());
    assert_eq!(
        parse_client_message(r#"{"type":"chat","room":null}"#).unwrap(),
        ClientMessage::Chat {
            room: None,
            text: None
        }
    );
}

#[test]
fn duplicate_keys_are_invalid_json_at_any_depth() {
    for text in [
        r#"{"type":"chat","type":"join"}"#,
        r#"{"type":"chat","ty\u0070e":"join","room":"r"}"#,
        r#"{"type":"chat","room":"a","room":"b","text":"t"}"#,
        r#"{"type":"join","room":"a","since":1,"since":2}"#,
        r#"{"type":"chat","room":"a","x":1,"x":2}"#,
        r#"{"type":"chat","room":"a","x":{"k":1,"k":2}}"#,
        r#"{"type":"chat","room":{"k":1,"\u006b":2}}"#,
        r#"{"type":"chat","room":"a","x":[[{"k":1,"k":2}]]}"#,
        r#"[{"k":1,"k":2}]"#,
    ] {
        let error = parse_client_message(text).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidJson, "{text}");
        assert!(error.message.contains("duplicate key"), "{text}: {error:?}");
    }
    // The same key in sibling objects is fine.
    assert!(parse_client_message(r#"{"type":"join","room":"a","x":[{"k":1},{"k":2}]}"#).is_ok());
}

#[test]
fn strings_borrow_from_the_frame_unless_escaped() {
    let ClientMessage::Chat { room, text } =
        parse_client_message(r#"{"type":"chat","room":"general","text":"a\nb"}"#).unwrap()
    else {
        panic!("a chat");
    };
    assert!(matches!(room, Some(Cow::Borrowed("general"))));
    assert!(matches!(text, Some(Cow::Owned(t)) if t == "a\nb"));
}

#[test]
fn errors_repeat_only_the_start_of_a_client_string() {
    let long = "k".repeat(10_000);
    for text in [
        format!(r#"{{"{long}":1,"{long}":2}}"#),
        format!(r#"{{"type":"{long}"}}"#),
    ] {
        let error = parse_client_message(&text).unwrap_err();
        assert!(error.message.len() < 200, "{}", error.message);
    }
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let deep = format!(
        r#"{{"type":"join","x":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(code(&deep), ErrorCode::InvalidJson);
}

/// The decoder that preceded this one (a `serde_json::Value` first, then serde's tagged enum):
/// the reference for every input without duplicate keys.
fn reference(text: &str) -> Result<Value, ErrorCode> {
    #[derive(serde::Deserialize)]
    #[serde(tag = "type", rename_all = "lowercase")]
    enum Old {
        Join {
            room: Option<String>,
            since: Option<u64>,
        },
        Chat {
            room: Option<String>,
            text: Option<String>,
        },
        Leave {
            room: Option<String>,
        },
        Refresh {
            token: Option<String>,
        },
    }
    let value: Value = serde_json::from_str(text).map_err(|_| ErrorCode::InvalidJson)?;
    let object = value.as_object().ok_or(ErrorCode::NotAnObject)?;
    match object.get("type").and_then(|t| t.as_str()) {
        Some("join" | "chat" | "leave" | "refresh") => {}
        _ => return Err(ErrorCode::UnknownType),
    }
    let old: Old = serde_json::from_value(value).map_err(|_| ErrorCode::InvalidJson)?;
    Ok(match old {
        Old::Join { room, since } => json!({"type":"join","room":room,"since":since}),
        Old::Chat { room, text } => json!({"type":"chat","room":room,"text":text}),
        Old::Leave { room } => json!({"type":"leave","room":room}),
        Old::Refresh { token } => json!({"type":"refresh","token":token}),
    })
}

fn normalised(message: &ClientMessage<'_>) -> Value {
    match message {
        ClientMessage::Join { room, since } => json!({"type":"join","room":room,"since":since}),
        ClientMessage::Chat { room, text } => json!({"type":"chat","room":room,"text":text}),
        ClientMessage::Leave { room } => json!({"type":"leave","room":room}),
        ClientMessage::Refresh { token } => json!({"type":"refresh","token":token}),
    }
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{0,8}",
        any::<String>(),
        prop::collection::vec(
            prop::sample::select(vec![
                '"', '\\', '\n', '\0', '\u{1F}', 'é', '👩', '\u{202E}', 'x'
            ]),
            0..12
        )
        .prop_map(|cs| cs.into_iter().collect()),
    ]
}

fn optional_text() -> impl Strategy<Value = Option<Cow<'static, str>>> {
    prop::option::of(any_text().prop_map(Cow::Owned))
}

fn client_message() -> impl Strategy<Value = ClientMessage<'static>> {
    prop_oneof![
        (optional_text(), prop::option::of(any::<u64>()))
            .prop_map(|(room, since)| ClientMessage::Join { room, since }),
        (optional_text(), optional_text())
            .prop_map(|(room, text)| ClientMessage::Chat { room, text }),
        optional_text().prop_map(|room| ClientMessage::Leave { room }),
        optional_text().prop_map(|token| ClientMessage::Refresh { token }),
    ]
}

/// A JSON value of any shape, for fields whose type a message may get wrong.
fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop::sample::select(vec!["join", "chat", "leave", "dance", ""]).prop_map(Value::from),
        any_text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,3}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `\uXXXX`-escapes every character of a JSON string literal's content (keys included).
fn escape_fully(s: &str) -> String {
    let mut out = String::from("\"");
    for unit in s.encode_utf16() {
        out.push_str(&format!("\\u{unit:04x}"));
    }
    out.push('"');
    out
}

proptest! {
    /// Encode (serde, in any key order, keys escaped or not, with unknown fields) → decode gives
    /// the message back.
    #[test]
    fn encode_decode_round_trips(
        message in client_message(),
        extra in prop::collection::btree_map("[a-z]{4,6}", any_value(), 0..3),
        reverse in any::<bool>(),
        escape_keys in any::<bool>(),
    ) {
        let canonical = serde_json::to_string(&message).unwrap();
        prop_assert_eq!(parse_client_message(&canonical).unwrap(), message.clone());

        let Value::Object(fields) = serde_json::to_value(&message).unwrap() else {
            unreachable!("messages are objects");
        };
        let mut fields: Vec<(String, Value)> = fields.into_iter().collect();
        fields.extend(extra.into_iter().filter(|(k, _)| !["type","room","text","since"].contains(&k.as_str())));
        if reverse {
            fields.reverse();
        }
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| {
                let key = if escape_keys { escape_fully(k) } else { serde_json::to_string(k).unwrap() };
                format!("{key}:{v}")
            })
            .collect();
        let text = format!("{{{}}}", body.join(","));
        prop_assert_eq!(parse_client_message(&text).unwrap(), message);
    }

    /// On any object without duplicate keys, the strict decoder agrees with the one before it:
    /// the same message, or the same error code.
    #[test]
    fn agrees_with_the_previous_decoder(
        fields in prop::collection::btree_map(
            prop::sample::select(vec!["type", "room", "text", "since", "user", "id"]),
            any_value(),
            0..5,
        ),
    ) {
        let object: serde_json::Map<String, Value> =
            fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let text = Value::Object(object).to_string();
        let ours = parse_client_message(&text).map(|m| normalised(&m)).map_err(|e| e.code);
        prop_assert_eq!(ours, reference(&text), "{}", text);
    }

    /// Any two copies of a key in one object are refused, wherever the object is.
    #[test]
    fn any_duplicate_is_refused(
        key in prop::sample::select(vec!["type", "room", "text", "since", "zz"]),
        first in any_value(),
        second in any_value(),
        nested in any::<bool>(),
    ) {
        let pair = format!("{}:{first},{}:{second}", escape_fully(key), serde_json::to_string(key).unwrap());
        let text = if nested {
            format!(r#"{{"type":"chat","room":"r","x":[{{{pair}}}]}}"#)
        } else {
            format!("{{{pair}}}")
        };
        prop_assert_eq!(code(&text), ErrorCode::InvalidJson, "{}", text);
    }

    /// Arbitrary input never panics, and whatever decodes re-encodes to an equal message.
    #[test]
    fn arbitrary_input_decodes_or_is_refused(text in any::<String>()) {
        if let Ok(message) = parse_client_message(&text) {
            let again = serde_json::to_string(&message).unwrap();
            prop_assert_eq!(parse_client_message(&again).unwrap(), message);
        }
    }
}
