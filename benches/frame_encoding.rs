//! Encode-once frames: what a publish costs to build, what each subscriber then costs, and what the
//! `history` frame splice costs — each next to the naive serde_json way of doing the same.
//!
//! A room encodes a chat message once ([`ChatRecord::new`] builds its [`Frame`]) and every
//! subscriber gets a clone of that frame, i.e. a reference-counted buffer. A fan-out to N
//! subscribers therefore costs one encode plus N refcount bumps instead of N encodes. The
//! `fanout_1000` group puts the two side by side for 1000 subscribers; the `history_50` group does
//! the same for a joiner's 50-message `history` frame, which splices the already encoded chat frames
//! instead of serialising every message again.
//!
//! `cargo bench --bench frame_encoding`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use serde::Serialize;

use chatterbox::protocol::frames::{self, messages_object};
use chatterbox::protocol::{format_timestamp, ChatRecord};
#[allow(unused_imports)] // named in the docs above
use chatterbox::ws::Frame;

mod common;
use common::{chat_record, TIMESTAMP_MS};

const TEXT_BYTES: usize = 100;
const SUBSCRIBERS: u64 = 1000;
const HISTORY_MESSAGES: usize = 50;

/// The chat frame's wire shape, serialised directly: what a server without encode-once would do
/// for every subscriber. Produces the same JSON as the room's frame.
#[derive(Serialize)]
#[serde(tag = "type", rename = "chat")]
struct NaiveChat<'a> {
    room: &'a str,
    user: &'a str,
    text: &'a str,
    timestamp: &'a str,
    id: u64,
}

/// The `history` frame's wire shape, serialised from the messages' fields.
#[derive(Serialize)]
#[serde(tag = "type", rename = "history")]
struct NaiveHistory<'a> {
    room: &'a str,
    messages: Vec<NaiveChat<'a>>,
}

fn settings(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(2));
    group.sample_size(30);
}

/// The JSON of a record's encoded frame, read through [`messages_object`] (which splices frames in
/// verbatim), so the bench relies on nothing but the constructors and `Clone` of [`Frame`].
fn frame_json(record: &ChatRecord) -> String {
    let object = messages_object("", "", std::iter::once(record), "");
    object
        .strip_prefix(r#"{"room":"","messages":["#)
        .and_then(|rest| rest.strip_suffix("]}"))
        .expect("messages_object's layout")
        .to_owned()
}

fn frame_encoding(c: &mut Criterion) {
    let text = "x".repeat(TEXT_BYTES);
    let room: Arc<str> = "general".into();
    let user: Arc<str> = "alice".into();

    // Sanity: the naive baseline produces exactly the room's bytes, so the comparison is fair.
    let timestamp = format_timestamp(TIMESTAMP_MS);
    let naive = |id: u64| NaiveChat {
        room: &room,
        user: &user,
        text: &text,
        timestamp: &timestamp,
        id,
    };
    assert_eq!(
        serde_json::to_string(&naive(7)).unwrap(),
        frame_json(&chat_record(7, &text))
    );

    // What `Room::publish` builds per message: the record with its encoded frame (this includes
    // formatting the timestamp).
    let mut group = c.benchmark_group("chat_frame");
    settings(&mut group);
    group.throughput(Throughput::Elements(1));
    group.bench_function("build_100_byte_text", |b| {
        let mut id = 0;
        b.iter(|| {
            id += 1;
            ChatRecord::new(
                room.clone(),
                id,
                user.clone(),
                black_box(text.as_str()).into(),
                TIMESTAMP_MS,
            )
        })
    });
    group.finish();

    // One publish delivered to 1000 subscribers: what each subscriber's session receives is a
    // frame ready to write. Throughput is in deliveries.
    let mut group = c.benchmark_group("fanout_1000");
    settings(&mut group);
    group.throughput(Throughput::Elements(SUBSCRIBERS));
    group.bench_function("encode_once_then_share", |b| {
        let mut id = 0;
        b.iter(|| {
            id += 1;
            let record = ChatRecord::new(
                room.clone(),
                id,
                user.clone(),
                black_box(text.as_str()).into(),
                TIMESTAMP_MS,
            );
            for _ in 0..SUBSCRIBERS {
                // What the broadcast receiver hands each session: a clone of the frame.
                black_box(record.frame.clone());
            }
        })
    });
    group.bench_function("serialize_per_subscriber", |b| {
        let mut id = 0;
        b.iter(|| {
            id += 1;
            // The timestamp is formatted once, in the baseline's favour.
            let timestamp = format_timestamp(black_box(TIMESTAMP_MS));
            for _ in 0..SUBSCRIBERS {
                let json = serde_json::to_string(&NaiveChat {
                    room: &room,
                    user: &user,
                    text: black_box(&text),
                    timestamp: &timestamp,
                    id,
                })
                .unwrap();
                black_box(json);
            }
        })
    });
    group.finish();

    // A joiner's `history` frame of 50 messages from the in-memory ring.
    let records: Vec<Arc<ChatRecord>> = (1..=HISTORY_MESSAGES as u64)
        .map(|id| Arc::new(chat_record(id, &text)))
        .collect();
    let naive_history = |records: &[Arc<ChatRecord>]| {
        // The records hold the timestamp as milliseconds, so a naive encoder formats each one.
        let timestamps: Vec<String> = records
            .iter()
            .map(|r| format_timestamp(r.timestamp_ms))
            .collect();
        let history = NaiveHistory {
            room: &room,
            messages: records
                .iter()
                .zip(&timestamps)
                .map(|(r, timestamp)| NaiveChat {
                    room: &r.room,
                    user: &r.user,
                    text: &r.text,
                    timestamp,
                    id: r.id,
                })
                .collect(),
        };
        serde_json::to_string(&history).unwrap()
    };
    // `frames::history` is this splice behind the `"type":"history"` head.
    let spliced = messages_object(
        r#""type":"history","#,
        &room,
        records.iter().map(|r| &**r),
        "",
    );
    assert_eq!(spliced, naive_history(&records));

    let mut group = c.benchmark_group("history_50");
    settings(&mut group);
    group.throughput(Throughput::Elements(HISTORY_MESSAGES as u64));
    group.bench_function("frame_history_splice", |b| {
        b.iter(|| frames::history(&room, black_box(&records), None, false, 1 << 16))
    });
    group.bench_function("serialize_every_message", |b| {
        b.iter(|| naive_history(black_box(&records)))
    });
    group.finish();
}

criterion_group!(benches, frame_encoding);
criterion_main!(benches);
