//! Sustained throughput of the history writer alone into a real SQLite file (WAL, one transaction
//! per batch): how many published messages per second the store keeps up with.
//!
//! `cargo bench --bench history_writer`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use chatterbox::history::{CommitWatermark, HistoryWriter, WriterSettings};
use chatterbox::protocol::ChatRecord;
use chatterbox::store::Store;
use chatterbox::telemetry::Metrics;

/// Messages per measured iteration.
const MESSAGES: u64 = 20_000;
const ROOMS: u64 = 16;

fn history_writer(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (writer, _task) = runtime.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let store = Store::connect(&url, &Default::default()).await.unwrap();
        let settings = WriterSettings {
            batch_size: chatterbox::Config::default().history.history_batch_size,
            flush_interval: Duration::from_millis(10),
            queue_capacity: 65_536,
            queue_bytes: chatterbox::Config::default().history.history_queue_bytes,
            reserve_timeout: Duration::from_secs(60),
        };
        HistoryWriter::spawn(store, settings, Metrics::new())
    });
    let rooms: Vec<Arc<str>> = (0..ROOMS).map(|r| format!("room-{r}").into()).collect();
    let watermarks: Vec<Arc<CommitWatermark>> = (0..ROOMS).map(|_| Arc::default()).collect();
    let user: Arc<str> = "bench".into();
    let text = "x".repeat(100);
    let mut next_id = 0u64;

    let mut group = c.benchmark_group("history_writer");
    group.throughput(Throughput::Elements(MESSAGES));
    group.sample_size(10);
    group.bench_function("sqlite_100_byte_messages", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            // Records are built before the clock starts: only queueing and writing are timed.
            let records: Vec<Arc<ChatRecord>> = (0..iters * MESSAGES)
                .map(|_| {
                    next_id += 1;
                    let room = rooms[(next_id % ROOMS) as usize].clone();
                    Arc::new(ChatRecord::new(
                        room,
                        next_id,
                        user.clone(),
                        text.as_str().into(),
                        0,
                    ))
                })
                .collect();
            let writer = writer.clone();
            let watermarks = watermarks.clone();
            async move {
                let started = Instant::now();
                for record in records {
                    let watermark = &watermarks[(record.id % ROOMS) as usize];
                    watermark.assign(record.id);
                    let bytes = ChatRecord::footprint(&record.room, &record.user, &record.text);
                    writer
                        .reserve(bytes)
                        .await
                        .unwrap()
                        .append(record, watermark.clone());
                }
                // Done when every room's watermark has caught up.
                for watermark in &watermarks {
                    watermark
                        .wait_settled(Duration::from_secs(60))
                        .await
                        .unwrap();
                }
                started.elapsed()
            }
        });
    });
    group.finish();
}

criterion_group!(benches, history_writer);
criterion_main!(benches);
