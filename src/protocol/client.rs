//! What clients send, and the one strict decoder for it.
//!
//! The decoder reads the JSON once, straight into the fields it needs (no `serde_json::Value`
//! tree), borrowing strings from the frame when they have no escapes. It refuses what a lenient
//! parser would quietly resolve: a key that appears twice in one object — at any depth, compared
//! after unescaping, so `"type"` and `"typ\u0065"` are the same key — is `invalid_json`. A
//! lenient parser lets the last one win, so a filter in front of the server that reads the first
//! `"type"` of `{"type":"chat","type":"join"}` would see a different message than the server.
//!
//! Errors keep the original's order: not JSON (or a duplicate key) → `invalid_json`; JSON but not
//! an object → `not_object`; no string `type`, or an unknown one → `unknown_type`; a field the
//! message uses with the wrong type → `invalid_json`. Fields a message does not use, and unknown
//! fields, are ignored (their types are not checked), as before.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::{ErrorCode, ProtocolError};

/// A request from a client, after validation of its JSON shape. Strings borrow from the frame
/// when they can. `Serialize` gives the canonical encoding (tests, fuzzing, tools).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientMessage<'a> {
    Join {
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<Cow<'a, str>>,
        /// Resume: the last chat id this client saw in the room.
        #[serde(skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
    },
    Chat {
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<Cow<'a, str>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<Cow<'a, str>>,
    },
    Leave {
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<Cow<'a, str>>,
    },
    /// Token mode: a fresh token for the same user, before the current one expires.
    Refresh {
        #[serde(skip_serializing_if = "Option::is_none")]
        token: Option<Cow<'a, str>>,
    },
}

/// Parses one text frame from a client, telling apart the ways it can be malformed.
pub fn parse_client_message(text: &str) -> Result<ClientMessage<'_>, ProtocolError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let top = Top::deserialize(&mut deserializer)
        .and_then(|top| deserializer.end().map(|()| top))
        .map_err(|e| ProtocolError::new(ErrorCode::InvalidJson, format!("invalid JSON: {e}")))?;
    let Top::Object(fields) = top else {
        return Err(ProtocolError::new(
            ErrorCode::NotAnObject,
            "message must be a JSON object",
        ));
    };
    let kind = match fields.kind {
        Some(Scalar::Str(kind)) => kind,
        _ => {
            return Err(ProtocolError::new(
                ErrorCode::UnknownType,
                "message needs a string \"type\": join, chat, leave or refresh",
            ))
        }
    };
    match &*kind {
        "join" => Ok(ClientMessage::Join {
            room: string_field("room", fields.room)?,
            since: id_field("since", fields.since)?,
        }),
        "chat" => Ok(ClientMessage::Chat {
            room: string_field("room", fields.room)?,
            text: string_field("text", fields.text)?,
        }),
        "leave" => Ok(ClientMessage::Leave {
            room: string_field("room", fields.room)?,
        }),
        "refresh" => Ok(ClientMessage::Refresh {
            token: string_field("token", fields.token)?,
        }),
        other => Err(ProtocolError::new(
            ErrorCode::UnknownType,
            format!("unknown message type \"{}\"", shown(other)),
        )),
    }
}

fn wrong_type(name: &str, expected: &str, found: &str) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::InvalidJson,
        format!("malformed message: \"{name}\" must be {expected}, not {found}"),
    )
}

fn string_field<'a>(
    name: &str,
    value: Option<Scalar<'a>>,
) -> Result<Option<Cow<'a, str>>, ProtocolError> {
    match value {
        None | Some(Scalar::Null) => Ok(None),
        Some(Scalar::Str(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(name, "a string", other.describe())),
    }
}

fn id_field(name: &str, value: Option<Scalar<'_>>) -> Result<Option<u64>, ProtocolError> {
    match value {
        None | Some(Scalar::Null) => Ok(None),
        Some(Scalar::U64(n)) => Ok(Some(n)),
        Some(other) => Err(wrong_type(name, "a non-negative integer", other.describe())),
    }
}

/// The top-level value: an object's known fields, or anything else (already checked to be JSON).
enum Top<'a> {
    Object(Fields<'a>),
    NotObject,
}

/// The fields any message may use, as found; their types are checked once the type is known.
#[derive(Default)]
struct Fields<'a> {
    kind: Option<Scalar<'a>>,
    room: Option<Scalar<'a>>,
    text: Option<Scalar<'a>>,
    since: Option<Scalar<'a>>,
    token: Option<Scalar<'a>>,
}

/// A field's value, reduced to what the protocol can use.
enum Scalar<'a> {
    Str(Cow<'a, str>),
    U64(u64),
    Null,
    /// Anything else, named for the error message.
    Other(&'static str),
}

impl Scalar<'_> {
    fn describe(&self) -> &'static str {
        match self {
            Scalar::Str(_) => "a string",
            Scalar::U64(_) => "a number",
            Scalar::Null => "null",
            Scalar::Other(what) => what,
        }
    }
}

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
        let mut fields = Fields::default();
        // Unknown keys are rare (well-behaved clients send none): a set only when there are some.
        let mut others: Option<HashSet<Cow<'de, str>>> = None;
        while let Some(Key(key)) = map.next_key()? {
            let slot = match &*key {
                "type" => &mut fields.kind,
                "room" => &mut fields.room,
                "text" => &mut fields.text,
                "since" => &mut fields.since,
                "token" => &mut fields.token,
                _ => {
                    if !others.get_or_insert_with(HashSet::new).insert(key.clone()) {
                        return Err(duplicate(&key));
                    }
                    map.next_value::<Strict>()?;
                    continue;
                }
            };
            if slot.is_some() {
                return Err(duplicate(&key));
            }
            *slot = Some(map.next_value()?);
        }
        Ok(Top::Object(fields))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Top<'de>, A::Error> {
        drain_seq(seq)?;
        Ok(Top::NotObject)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Top<'de>, E> {
        Ok(Top::NotObject)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Top<'de>, E> {
        Ok(Top::NotObject)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Top<'de>, E> {
        Ok(Top::NotObject)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Top<'de>, E> {
        Ok(Top::NotObject)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Top<'de>, E> {
        Ok(Top::NotObject)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Top<'de>, E> {
        Ok(Top::NotObject)
    }
}

fn duplicate<E: de::Error>(key: &str) -> E {
    E::custom(format_args!("duplicate key {:?}", shown(key)))
}

/// What of a client's string an error message repeats: enough to recognise it, never so much
/// that an error frame grows with the request.
fn shown(s: &str) -> String {
    const MAX_CHARS: usize = 32;
    match s.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_string(),
    }
}

/// An object key, borrowed unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(StrVisitor).map(Key)
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s))
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(s)))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Scalar::U64(n))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Other("a negative number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Other("a fractional or out-of-range number"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Other("a boolean"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        drain_seq(seq)?;
        Ok(Scalar::Other("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        drain_map(map)?;
        Ok(Scalar::Other("an object"))
    }
}

/// Any JSON value, skipped, but with duplicate keys refused in every object inside it (serde's
/// `IgnoredAny` would accept them). serde_json's recursion limit bounds the depth.
struct Strict;

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Strict, A::Error> {
        drain_seq(seq).map(|()| Strict)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Strict, A::Error> {
        drain_map(map).map(|()| Strict)
    }
}

fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<Strict>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    let mut keys: HashSet<Cow<'de, str>> = HashSet::new();
    while let Some(Key(key)) = map.next_key()? {
        if keys.contains(&key) {
            return Err(duplicate(&key));
        }
        map.next_value::<Strict>()?;
        keys.insert(key);
    }
    Ok(())
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
