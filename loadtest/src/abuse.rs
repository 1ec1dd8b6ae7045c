//! `--attack`: hostile clients beside the measured ones, as in issue 13 — a flood into the
//! measured room, joins that ask for all of a room's history and never read, REST pages nobody
//! reads, room squatting, and half-sent oversized request heads — all at once, from their own
//! source addresses (`--attack-addrs`), so per-address limits aimed at them never touch the
//! well-behaved clients. Each attacker loops until the run stops, reconnecting whenever the
//! server drops it; the report counts what each tried and what the server refused.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    sync::watch,
    task::JoinSet,
};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{chat_frame, join_frame, Connector};

/// How many of each attacker run (the numbers of issue 13's report).
const AMPLIFIERS: usize = 20;
const HELD_PAGES: usize = 40;
const HALF_SENT_HEADS: usize = 300;
const SQUATTERS: usize = 4;
/// The room the amplifiers fill with escape-heavy history and then ask for all of it.
const HISTORY_ROOM: &str = "abuse-history";
/// How long a held REST page or an unanswered head is kept before a new one replaces it.
const HOLD: Duration = Duration::from_secs(20);
/// Pause before an attacker tries again after the server dropped it.
const RETRY: Duration = Duration::from_millis(200);

/// What the attackers did and what the server answered, summed over the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AttackReport {
    pub flood_sent: u64,
    pub flood_rate_limited: u64,
    /// Flooding connections the server closed (1008 for sustained abuse).
    pub flood_closed: u64,
    pub amplifying_joins: u64,
    /// Amplifying connections the server dropped (they never read).
    pub amplifiers_dropped: u64,
    /// REST requests sent whose responses were never read (each held for 20 s).
    pub held_pages: u64,
    pub squat_joins: u64,
    pub squat_refused: u64,
    /// Half-sent heads started (those in flight when the run ends are cut short by it).
    pub oversized_heads: u64,
    /// Half-sent heads the server answered (431) or closed.
    pub oversized_heads_closed: u64,
    /// Attack connections the server refused outright (429/503 or a reset).
    pub refused_connects: u64,
    /// The server's peak resident memory over its life (VmHWM), when `--server-pid` is given.
    pub server_peak_rss_bytes: Option<u64>,
}

#[derive(Default)]
struct Counters {
    flood_sent: AtomicU64,
    flood_rate_limited: AtomicU64,
    flood_closed: AtomicU64,
    amplifying_joins: AtomicU64,
    amplifiers_dropped: AtomicU64,
    held_pages: AtomicU64,
    squat_joins: AtomicU64,
    squat_refused: AtomicU64,
    oversized_heads: AtomicU64,
    oversized_heads_closed: AtomicU64,
    refused_connects: AtomicU64,
}

/// The running attack; [`Attack::stop`] ends it and returns the report.
pub struct Attack {
    stop: watch::Sender<bool>,
    /// The attackers' own thread and runtime: their work never delays the measured clients'
    /// event loop (on this machine they still share its two cores with everything else).
    thread: Option<std::thread::JoinHandle<()>>,
    counters: Arc<Counters>,
    server_pid: Option<u32>,
}

struct Target {
    connector: Connector,
    http: SocketAddr,
    sources: Vec<IpAddr>,
    room: String,
}

impl Attack {
    /// Starts every attacker against the server at `url`, flooding `room`.
    pub async fn start(
        url: &str,
        sources: Vec<IpAddr>,
        kinds: Vec<Attacker>,
        room: String,
        server_pid: Option<u32>,
    ) -> anyhow::Result<Attack> {
        let connector = Connector::new(url, sources.clone(), Duration::from_secs(5)).await?;
        let http = connector.target();
        let target = Arc::new(Target {
            connector,
            http,
            sources,
            room,
        });
        let (stop, stopped) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("attackers".into())
            .spawn(move || runtime.block_on(attack(target, kinds, shared, stopped)))?;
        Ok(Attack {
            stop,
            thread: Some(thread),
            counters,
            server_pid,
        })
    }

    pub async fn stop(mut self) -> AttackReport {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        let c = &self.counters;
        AttackReport {
            flood_sent: c.flood_sent.load(Relaxed),
            flood_rate_limited: c.flood_rate_limited.load(Relaxed),
            flood_closed: c.flood_closed.load(Relaxed),
            amplifying_joins: c.amplifying_joins.load(Relaxed),
            amplifiers_dropped: c.amplifiers_dropped.load(Relaxed),
            held_pages: c.held_pages.load(Relaxed),
            squat_joins: c.squat_joins.load(Relaxed),
            squat_refused: c.squat_refused.load(Relaxed),
            oversized_heads: c.oversized_heads.load(Relaxed),
            oversized_heads_closed: c.oversized_heads_closed.load(Relaxed),
            refused_connects: c.refused_connects.load(Relaxed),
            server_peak_rss_bytes: self.server_pid.and_then(peak_rss_bytes),
        }
    }
}

/// Runs every attacker until `stopped`, then aborts whatever is still going.
async fn attack(
    target: Arc<Target>,
    kinds: Vec<Attacker>,
    counters: Arc<Counters>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut tasks = JoinSet::new();
    let mut spawn = |attacker: Attacker, count: usize| {
        if !kinds.contains(&attacker) {
            return;
        }
        for n in 0..count {
            let (target, counters, stopped) = (target.clone(), counters.clone(), stopped.clone());
            tasks.spawn(run(attacker, n, target, counters, stopped));
        }
    };
    spawn(Attacker::Flood, 1);
    spawn(Attacker::Amplify, AMPLIFIERS);
    spawn(Attacker::HeldPage, HELD_PAGES);
    spawn(Attacker::Squat, SQUATTERS);
    spawn(Attacker::OversizedHead, HALF_SENT_HEADS);
    let _ = stopped.wait_for(|stop| *stop).await;
    tasks.shutdown().await;
}

/// The kinds of attacker (`--attackers`, all by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attacker {
    /// Chats with 8 kB texts into a measured room as fast as the socket takes them.
    Flood,
    /// Joins that ask for all of a room's heavy history and never read.
    Amplify,
    /// REST pages whose responses are never read.
    HeldPage,
    /// Joins of ever new rooms.
    Squat,
    /// Half-sent 400 kB request heads.
    OversizedHead,
}

/// One attacker, again and again until the run stops.
async fn run(
    attacker: Attacker,
    n: usize,
    target: Arc<Target>,
    counters: Arc<Counters>,
    mut stopped: watch::Receiver<bool>,
) {
    while !*stopped.borrow() {
        let attempt = once(attacker, n, &target, &counters);
        tokio::select! {
            _ = stopped.changed() => return,
            _ = attempt => {}
        }
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// One attempt; returns when the server has dropped or refused it.
async fn once(attacker: Attacker, n: usize, target: &Target, counters: &Counters) {
    match attacker {
        Attacker::Flood => flood(n, target, counters).await,
        Attacker::Amplify => amplify(n, target, counters).await,
        Attacker::Squat => squat(n, target, counters).await,
        Attacker::HeldPage => held_page(n, target, counters).await,
        Attacker::OversizedHead => oversized_head(n, target, counters).await,
    }
}

/// 4,000 quotes: 8,000 bytes of JSON each, the costliest text to store and to send.
fn heavy_text() -> String {
    "\"".repeat(4000)
}

/// Chats into the measured room as fast as the socket takes them, reading what comes back.
async fn flood(n: usize, target: &Target, counters: &Counters) {
    let Ok(ws) = target.connector.connect(&format!("flooder{n}")).await else {
        counters.refused_connects.fetch_add(1, Relaxed);
        return;
    };
    let (mut tx, mut rx) = ws.split();
    let room = target.room.clone();
    let sender = async {
        if tx.send(Message::text(join_frame(&room))).await.is_err() {
            return;
        }
        let (text, mut frame) = (heavy_text(), String::new());
        loop {
            frame.clear();
            chat_frame(&mut frame, &room, &text);
            if tx.send(Message::text(frame.clone())).await.is_err() {
                return;
            }
            counters.flood_sent.fetch_add(1, Relaxed);
        }
    };
    let reader = async {
        while let Some(Ok(message)) = rx.next().await {
            if let Message::Text(text) = message {
                if text.contains(r#""code":"rate_limited""#) {
                    counters.flood_rate_limited.fetch_add(1, Relaxed);
                }
            }
        }
    };
    tokio::select! { _ = sender => {}, _ = reader => {} }
    counters.flood_closed.fetch_add(1, Relaxed);
}

/// Fills the history room (the first one only), then joins it with `since: 0` and never reads.
async fn amplify(n: usize, target: &Target, counters: &Counters) {
    let Ok(mut ws) = target.connector.connect(&format!("amplifier{n}")).await else {
        counters.refused_connects.fetch_add(1, Relaxed);
        return;
    };
    if n == 0 {
        let mut frame = String::new();
        let _ = ws.send(Message::text(join_frame(HISTORY_ROOM))).await;
        for _ in 0..30 {
            frame.clear();
            chat_frame(&mut frame, HISTORY_ROOM, &heavy_text());
            let _ = ws.send(Message::text(frame.clone())).await;
        }
    }
    let join = format!(r#"{{"type":"join","room":"{HISTORY_ROOM}","since":0}}"#);
    if ws.send(Message::text(join)).await.is_err() {
        return;
    }
    counters.amplifying_joins.fetch_add(1, Relaxed);
    // Never read: wait until the server gives up on us (a write to a dead socket fails).
    let mut ping = tokio::time::interval(Duration::from_secs(1));
    loop {
        ping.tick().await;
        if ws.send(Message::Ping(Default::default())).await.is_err() {
            counters.amplifiers_dropped.fetch_add(1, Relaxed);
            return;
        }
    }
}

/// Joins as many new rooms as the server lets it, then leaves them and starts again.
async fn squat(n: usize, target: &Target, counters: &Counters) {
    let Ok(ws) = target.connector.connect(&format!("squatter{n}")).await else {
        counters.refused_connects.fetch_add(1, Relaxed);
        return;
    };
    let (mut tx, mut rx) = ws.split();
    let sender = async {
        for cycle in 0u64.. {
            for i in 0..200 {
                let room = format!("squat-{n}-{cycle}-{i}");
                if tx.send(Message::text(join_frame(&room))).await.is_err() {
                    return;
                }
                counters.squat_joins.fetch_add(1, Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let reader = async {
        while let Some(Ok(message)) = rx.next().await {
            if let Message::Text(text) = message {
                if text.contains(r#""type":"error""#) {
                    counters.squat_refused.fetch_add(1, Relaxed);
                }
            }
        }
    };
    tokio::select! { _ = sender => {}, _ = reader => {} }
}

/// Sends a REST request and never reads the response: the server holds it until its write
/// timeout. The socket is kept for [`HOLD`], then a new one takes its place.
async fn held_page(n: usize, target: &Target, counters: &Counters) {
    let Ok(mut stream) = tcp_from(target, n).await else {
        counters.refused_connects.fetch_add(1, Relaxed);
        return;
    };
    let request = format!(
        "GET /api/rooms/{HISTORY_ROOM}/messages?limit=500 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).await.is_ok() {
        counters.held_pages.fetch_add(1, Relaxed);
        tokio::time::sleep(HOLD).await;
    }
}

/// Sends a 400 kB request head without its end; the server should answer (431) or close long
/// before it is all sent.
async fn oversized_head(n: usize, target: &Target, counters: &Counters) {
    let Ok(mut stream) = tcp_from(target, n).await else {
        counters.refused_connects.fetch_add(1, Relaxed);
        return;
    };
    let mut head = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ".to_vec();
    head.resize(head.len() + 400_000, b'a');
    counters.oversized_heads.fetch_add(1, Relaxed);
    let refused = match stream.write_all(&head).await {
        Err(_) => true,
        Ok(()) => {
            let mut answer = [0u8; 64];
            tokio::time::timeout(HOLD, stream.read(&mut answer))
                .await
                .is_ok()
        }
    };
    if refused {
        counters.oversized_heads_closed.fetch_add(1, Relaxed);
        // 300 heads renewed once a second: the attack is holding them, not a connect flood.
        tokio::time::sleep(Duration::from_secs(1)).await;
    } else {
        tokio::time::sleep(HOLD).await;
    }
}

async fn tcp_from(target: &Target, n: usize) -> std::io::Result<TcpStream> {
    let socket = if target.http.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if !target.sources.is_empty() {
        socket.bind(SocketAddr::new(target.sources[n % target.sources.len()], 0))?;
    }
    socket.connect(target.http).await
}

/// `VmHWM` of /proc/PID/status: the most memory the process ever held resident.
fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
