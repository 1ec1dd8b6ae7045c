//! Runs the generator against a tiny in-test chat server that follows
//! docs/PROTOCOL.md just enough (join → history → presence, chat → broadcast
//! with per-room ids, leave). This checks the generator itself — accounting, timing,
//! scenarios, SLO search — independently of the real server, and lets a broken
//! server be told apart from a broken generator.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use chatterbox_loadtest::{run, Options, Scenario, SloAxis};
use futures_util::{SinkExt, StreamExt};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_tungstenite::tungstenite::Message;

#[derive(Default)]
struct Room {
    next_id: u64,
    members: Vec<(u64, mpsc::UnboundedSender<String>)>,
    /// Every chat frame sent in the room; a join gets the last 50.
    history: Vec<String>,
}

type Rooms = Arc<Mutex<HashMap<String, Room>>>;

/// How the mock misbehaves, to check the generator notices.
#[derive(Clone, Copy, Default)]
struct Faults {
    /// Deliver every n-th chat message to nobody.
    drop_every: Option<u64>,
    /// Deliver every n-th chat message twice.
    dup_every: Option<u64>,
    /// Never send `history` on join.
    no_history: bool,
}

async fn mock_server(faults: Faults) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rooms: Rooms = Arc::default();
    tokio::spawn(async move {
        let mut next_conn = 0;
        while let Ok((stream, _)) = listener.accept().await {
            next_conn += 1;
            tokio::spawn(serve(stream, next_conn, rooms.clone(), faults));
        }
    });
    addr
}

async fn serve(stream: tokio::net::TcpStream, conn: u64, rooms: Rooms, faults: Faults) {
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(Message::text(m)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Text(t) = msg else {
            if matches!(msg, Message::Close(_)) {
                break;
            }
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
        let room = v["room"].as_str().unwrap_or_default().to_string();
        let mut rooms = rooms.lock().unwrap();
        match v["type"].as_str() {
            Some("join") => {
                let r = rooms.entry(room.clone()).or_default();
                r.members.push((conn, tx.clone()));
                if !r.history.is_empty() && !faults.no_history {
                    let last = &r.history[r.history.len().saturating_sub(50)..];
                    let _ = tx.send(format!(
                        r#"{{"type":"history","room":"{room}","messages":[{}]}}"#,
                        last.join(",")
                    ));
                }
                let _ = tx.send(format!(
                    r#"{{"type":"presence","room":"{room}","users":[]}}"#
                ));
            }
            Some("leave") => {
                if let Some(r) = rooms.get_mut(&room) {
                    r.members.retain(|(c, _)| *c != conn);
                }
            }
            Some("chat") => {
                let r = rooms.get_mut(&room).unwrap();
                r.next_id += 1;
                let id = r.next_id;
                let frame = serde_json::json!({
                    "type": "chat", "room": room, "user": "u", "text": v["text"],
                    "timestamp": "2026-01-15T10:30:00.123Z", "id": id,
                })
                .to_string();
                r.history.push(frame.clone());
                let copies = if faults.drop_every.is_some_and(|n| id.is_multiple_of(n)) {
                    0
                } else if faults.dup_every.is_some_and(|n| id.is_multiple_of(n)) {
                    2
                } else {
                    1
                };
                for (_, m) in &r.members {
                    for _ in 0..copies {
                        let _ = m.send(frame.clone());
                    }
                }
            }
            _ => {}
        }
    }
    for r in rooms.lock().unwrap().values_mut() {
        r.members.retain(|(c, _)| *c != conn);
    }
    drop(tx);
    let _ = writer.await;
}

fn opts(addr: SocketAddr) -> Options {
    Options {
        url: format!("ws://{addr}/ws"),
        clients: 20,
        rate: 50.0,
        duration: Duration::from_secs(1),
        warmup: Duration::from_millis(300),
        drain: Duration::from_secs(2),
        quiet: true,
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_accounts_exactly() {
    let addr = mock_server(Faults::default()).await;
    let mut o = opts(addr);
    // Any 127/8 address works on Linux loopback without configuring aliases.
    o.source_addrs = vec!["127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap()];
    let report = run(o).await.unwrap();
    let r = &report.result;
    let c = &r.counters;
    assert_eq!(r.joined, 20);
    // 1 publisher × 50 msg/s × 1.3 s, each owed to all 20 members.
    assert!((64..=66).contains(&c.sent), "{c:?}");
    assert_eq!(c.expected, c.sent * 20);
    assert_eq!(c.delivered, c.expected);
    assert_eq!((r.lost, c.duplicated, c.out_of_order), (0, 0, 0));
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    // Only messages scheduled after the warm-up are timed.
    assert!(
        r.delivery.count >= 49 * 20 && r.delivery.count <= 51 * 20,
        "{:?}",
        r.delivery
    );
    assert!(r.delivery.p50_ms > 0.0 && r.delivery.p99_ms < 2000.0);
    assert_eq!(r.connect.count, 20);
    assert_eq!(r.join.count, 20);
    assert!(r.resources.loadtest_cpu_us_per_delivery.is_some());
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["result"]["lost"], 0);
    assert!(report.table().contains("delivery"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_loss_and_duplicates() {
    let addr = mock_server(Faults {
        drop_every: Some(10),
        dup_every: Some(7),
        ..Faults::default()
    })
    .await;
    let mut o = opts(addr);
    o.scenario = Scenario::Rooms;
    o.members = Some(5);
    o.drain = Duration::from_millis(500);
    let r = run(o).await.unwrap().result;
    let c = &r.counters;
    assert_eq!((r.plan.rooms, r.plan.members), (4, 5));
    assert_eq!(c.expected, c.sent * 5);
    // Per room, ids 10, 20, … vanish and 7, 14, … (not multiples of 10) arrive twice.
    let per_room_sent = c.sent / 4;
    let dropped: u64 = (1..=per_room_sent).filter(|id| id % 10 == 0).count() as u64 * 4 * 5;
    let duplicated: u64 = (1..=per_room_sent)
        .filter(|id| id % 7 == 0 && id % 10 != 0)
        .count() as u64
        * 4
        * 5;
    assert_eq!(r.lost, dropped, "{c:?}");
    assert_eq!(c.duplicated, duplicated, "{c:?}");
    assert_eq!(c.out_of_order, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_idle_and_storm_run() {
    let addr = mock_server(Faults::default()).await;
    let mut o = opts(addr);
    o.scenario = Scenario::Churn;
    o.clients = 5;
    o.warmup = Duration::from_millis(100);
    let r = run(o.clone()).await.unwrap().result;
    assert!(r.counters.churn_cycles > 5, "{:?}", r.counters);
    assert!(r.counters.errors.is_empty(), "{:?}", r.counters.errors);

    o.scenario = Scenario::Idle;
    o.clients = 30;
    let r = run(o.clone()).await.unwrap().result;
    assert_eq!(
        (r.joined, r.counters.sent, r.counters.disconnects),
        (30, 0, 0)
    );
    assert!(r.resources.loadtest_rss_per_connection_bytes.is_some());

    o.scenario = Scenario::ReconnectStorm;
    o.storms = 2;
    let r = run(o).await.unwrap().result;
    let reconnect = r.reconnect.unwrap();
    assert_eq!(reconnect.count, 60, "{:?}", r.counters);
    assert_eq!(r.join.count, 90);
    assert_eq!(r.counters.disconnects, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slo_search_probes_and_plots() {
    let addr = mock_server(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(addr);
    o.clients = 5;
    o.duration = Duration::from_millis(500);
    o.warmup = Duration::from_millis(100);
    o.slo = Some("p99=2s".parse().unwrap());
    o.slo_over = SloAxis::Rate;
    o.slo_max_probes = 3;
    o.slo_runs = 2;
    o.plot = Some(dir.path().join("slo.svg"));
    let report = run(o).await.unwrap();
    let slo = report.slo.as_ref().unwrap();
    assert_eq!(slo.probes.len(), 3);
    assert_eq!(
        slo.probes.iter().map(|p| p.value).collect::<Vec<_>>(),
        vec![50.0, 100.0, 200.0]
    );
    assert!(slo.probes.iter().all(|p| p.pass), "{}", report.table());
    assert_eq!(slo.best, Some(200.0));
    let first = &slo.probes[0];
    assert_eq!(first.runs, 2);
    assert_eq!(first.latency_pooled.count, 2 * first.result.delivery.count);
    let svg = std::fs::read_to_string(dir.path().join("slo.svg")).unwrap();
    assert!(svg.contains("200.0 msg/s pass"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slo_search_over_room_size() {
    let addr = mock_server(Faults::default()).await;
    let mut o = opts(addr);
    o.members = Some(4);
    o.duration = Duration::from_millis(300);
    o.warmup = Duration::from_millis(100);
    o.slo = Some("p50=2s".parse().unwrap());
    o.slo_over = SloAxis::Members;
    o.slo_max_probes = 2;
    let report = run(o).await.unwrap();
    let slo = report.slo.unwrap();
    let sizes: Vec<u32> = slo.probes.iter().map(|p| p.result.plan.members).collect();
    assert_eq!(sizes, vec![4, 8]);
    assert!(slo.probes.iter().all(|p| p.result.lost == 0 && p.pass));
    assert_eq!(
        report.result.plan.clients, 8,
        "the best probe is the one reported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_need_history_and_search_over_join_rate() {
    let mut o = opts(
        mock_server(Faults {
            no_history: true,
            ..Faults::default()
        })
        .await,
    );
    o.scenario = Scenario::Joins;
    o.clients = 5;
    o.join_rate = 20.0;
    o.seed_history = Some(60);
    let r = run(o.clone()).await.unwrap().result;
    let c = &r.counters;
    // 20 joins/s for 1.3 s, none acknowledged with history: all errors, none timed.
    assert_eq!(c.errors.get("join:no-history"), Some(&26), "{c:?}");
    assert_eq!(
        (c.joins_scheduled, c.joins_completed, r.join.count),
        (20, 0, 0)
    );

    o.url = opts(mock_server(Faults::default()).await).url;
    o.duration = Duration::from_millis(500);
    o.warmup = Duration::from_millis(100);
    o.slo = Some("p99=2s".parse().unwrap());
    o.slo_max_probes = 2;
    let dir = tempfile::tempdir().unwrap();
    o.plot = Some(dir.path().join("joins.svg"));
    let report = run(o).await.unwrap();
    let svg = std::fs::read_to_string(dir.path().join("joins.svg")).unwrap();
    assert!(svg.contains("40.0 joins/s pass"));
    let slo = report.slo.as_ref().unwrap();
    let rates: Vec<f64> = slo.probes.iter().map(|p| p.value).collect();
    assert_eq!(rates, vec![20.0, 40.0]);
    assert!(slo.probes.iter().all(|p| p.pass), "{}", report.table());
    let best = &report.result;
    assert_eq!(best.join_rate, Some(40.0));
    assert_eq!(best.counters.joins_completed, 20, "{:?}", best.counters);
    // The mock keeps the last 50 of the 60 seeded messages.
    assert_eq!(best.counters.history_messages, 50 * 20);
    assert_eq!(slo.probes[1].latency_pooled.count, 20);
    assert!(
        report.table().contains("40.0 joins/s"),
        "{}",
        report.table()
    );
}
