//! The session's batch write path: K chat frames written to a real loopback socket through the
//! server's own [`WsConnection`], either flushed one at a time (`per_frame_flush`: queue + flush
//! per frame, one `write` each) or queued together and flushed once (`one_flush_per_batch`: one
//! `writev` for the batch) — what `Session::deliver_batch` does.
//!
//! The server end is a `WsConnection` over a `TcpStream` from a `127.0.0.1:0` listener, set up
//! like the server's sockets (`TCP_NODELAY`, the server's WebSocket limits); a task on the
//! runtime's one worker thread drains the client end into a buffer so the socket never backs up.
//! Frames are ~110-byte chat frames built by [`ChatRecord::new`] exactly as a room builds them,
//! and queued as clones (a reference-count bump, no copy) as every subscriber gets them. A flush
//! is done as the session does it: `try_flush`, then `flush().await` only if the socket did not
//! take everything. Throughput is in frames, for K = 1, 4, 16 and 64: with K = 1 the two are the
//! same, and the gap as K grows is the syscall batching win a busy room gets.
//!
//! `tungstenite_feed_then_flush/16` is what this replaced: a tokio-tungstenite `WebSocketStream`
//! in the server role, `feed` per frame (which copies the frame into tungstenite's write buffer
//! and frames it) and one `flush`, for K = 16 only.
//!
//! `cargo bench --bench batch_write`

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures_util::SinkExt;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use chatterbox::ws::Frame;
use chatterbox::ws::WsConnection;
use chatterbox::Config;

mod common;
use common::chat_record;

/// Bytes of a chat frame's JSON; the WebSocket header adds 2.
const FRAME_JSON_BYTES: usize = 110;
const BATCHES: [u64; 4] = [1, 4, 16, 64];
/// The one batch size the tokio-tungstenite baseline runs at.
const BASELINE_BATCH: u64 = 16;

/// `count` distinct chat frames (ids 1..=count), each's text padded so its JSON is exactly
/// `FRAME_JSON_BYTES`.
fn chat_frames(count: u64) -> Vec<Frame> {
    (1..=count)
        .map(|id| {
            let base = chat_record(id, "").frame.text().len();
            let frame = chat_record(id, &"x".repeat(FRAME_JSON_BYTES - base)).frame;
            assert_eq!(frame.text().len(), FRAME_JSON_BYTES);
            frame
        })
        .collect()
}

/// A connected loopback pair; the client end is drained by a spawned task for as long as the
/// server end is open.
async fn loopback() -> TcpStream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (client, accepted) = tokio::join!(
        TcpStream::connect(listener.local_addr().unwrap()),
        listener.accept()
    );
    let mut client = client.unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = client.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    });
    let server = accepted.unwrap().0;
    server.set_nodelay(true).unwrap();
    server
}

/// The server's WebSocket configuration (see `src/admission/mod.rs`).
fn ws_config(config: &Config) -> WebSocketConfig {
    chatterbox::admission::Admission::new(config, &[0; 32])
        .expect("open mode")
        .ws_config()
}

/// Writes everything queued: at once if the socket takes it, as a session does.
async fn flush(socket: &mut WsConnection) {
    if !socket.try_flush().unwrap() {
        socket.flush().await.unwrap();
    }
}

fn batch_write(c: &mut Criterion) {
    // The benchmark drives the writer from this thread (`block_on`); the one worker runs the
    // drains, so writer and reader each get a core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let config = Config::default();
    let frames = chat_frames(*BATCHES.iter().max().unwrap());

    let mut group = c.benchmark_group("batch_write");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(2));
    group.sample_size(30);

    let mut socket: WsConnection =
        runtime.block_on(async { WsConnection::new(loopback().await, &[], ws_config(&config)) });
    for k in BATCHES {
        let batch = &frames[..k as usize];
        group.throughput(Throughput::Elements(k));
        // (name, frames per write): one write per frame, or one for the whole batch.
        for (name, frames_per_write) in
            [("per_frame_flush", 1), ("one_flush_per_batch", batch.len())]
        {
            group.bench_function(BenchmarkId::new(name, k), |b| {
                b.iter_custom(|iters| {
                    runtime.block_on(async {
                        let started = Instant::now();
                        for _ in 0..iters {
                            for chunk in batch.chunks(frames_per_write) {
                                for frame in chunk {
                                    socket.queue(frame.clone());
                                }
                                flush(&mut socket).await;
                            }
                        }
                        started.elapsed()
                    })
                })
            });
        }
    }
    drop(socket);

    // What we replaced: tungstenite copies each frame into its write buffer (configured as the
    // server's used to be) and writes the buffer on flush.
    let mut tungstenite = runtime.block_on(async {
        let config = ws_config(&config).write_buffer_size(64 * 1024);
        WebSocketStream::from_raw_socket(loopback().await, Role::Server, Some(config)).await
    });
    let texts: Vec<Utf8Bytes> = frames[..BASELINE_BATCH as usize]
        .iter()
        .map(|frame| Utf8Bytes::from(frame.text().to_owned()))
        .collect();
    group.throughput(Throughput::Elements(BASELINE_BATCH));
    group.bench_function(
        BenchmarkId::new("tungstenite_feed_then_flush", BASELINE_BATCH),
        |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        for text in &texts {
                            tungstenite.feed(Message::Text(text.clone())).await.unwrap();
                        }
                        tungstenite.flush().await.unwrap();
                    }
                    started.elapsed()
                })
            })
        },
    );
    group.finish();
}

criterion_group!(benches, batch_write);
criterion_main!(benches);
