//! The session's batch write path: K chat frames written to a real loopback WebSocket either one
//! `send` (write + flush, so one `write` syscall) per frame, or `feed` for every frame and a single
//! `flush` — what `Session::deliver_batch` does.
//!
//! The server end is a tokio-tungstenite `WebSocketStream` in the server role over a `TcpStream`
//! from a `127.0.0.1:0` listener, configured like the server's sockets (write buffer size, frame
//! limits); a task on the runtime's one worker thread drains the client end so the socket never
//! backs up. Frames are 110-byte chat frames, shared `Utf8Bytes` as in the session. Throughput is
//! in frames, for K = 1, 4, 16 and 64: with K = 1 the two are the same, and the gap as K grows is
//! the syscall batching win a busy room gets.
//!
//! `cargo bench --bench batch_write`

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures_util::SinkExt;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use chatterbox::protocol::format_timestamp;
use chatterbox::Config;

const FRAME_BYTES: usize = 110;
const BATCHES: [u64; 4] = [1, 4, 16, 64];

/// A chat frame's JSON, its text padded so the whole is exactly `FRAME_BYTES`.
fn chat_frame() -> Utf8Bytes {
    let json = |text: &str| {
        format!(
            r#"{{"type":"chat","room":"general","user":"alice","text":"{text}","timestamp":"{}","id":1}}"#,
            format_timestamp(0)
        )
    };
    let text = "x".repeat(FRAME_BYTES - json("").len());
    let frame = json(&text);
    assert_eq!(frame.len(), FRAME_BYTES);
    Utf8Bytes::from(frame)
}

/// A server-role WebSocket over loopback TCP, with the client end drained by a spawned task.
fn connect(runtime: &Runtime) -> WebSocketStream<TcpStream> {
    let config = Config::default();
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = client.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        });
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(config.ws_read_buffer_bytes)
            .write_buffer_size(config.ws_write_buffer_bytes)
            .max_message_size(Some(config.max_frame_bytes))
            .max_frame_size(Some(config.max_frame_bytes));
        WebSocketStream::from_raw_socket(server, Role::Server, Some(ws_config)).await
    })
}

fn batch_write(c: &mut Criterion) {
    // The benchmark drives the writer from this thread (`block_on`); the one worker runs the
    // drain, so writer and reader each get a core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut socket = connect(&runtime);
    let frame = chat_frame();

    let mut group = c.benchmark_group("batch_write");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(2));
    group.sample_size(30);
    for k in BATCHES {
        group.throughput(Throughput::Elements(k));
        group.bench_function(BenchmarkId::new("send_each", k), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        for _ in 0..k {
                            socket.send(Message::Text(frame.clone())).await.unwrap();
                        }
                    }
                    started.elapsed()
                })
            })
        });
        group.bench_function(BenchmarkId::new("feed_then_flush", k), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        for _ in 0..k {
                            socket.feed(Message::Text(frame.clone())).await.unwrap();
                        }
                        socket.flush().await.unwrap();
                    }
                    started.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, batch_write);
criterion_main!(benches);
