//! Smoke test: the generator against a real, in-process chatterbox server.
//! Small numbers, so it runs in seconds in CI; what it checks is that the
//! server and the generator agree on the protocol and that nothing is lost.

use std::time::Duration;

use chatterbox_loadtest::{run, Options, Scenario};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

struct TestServer {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), chatterbox::ServerError>>,
    _dir: tempfile::TempDir,
}

async fn start_server() -> TestServer {
    start_server_with(|_| {}).await
}

async fn start_server_with(configure: impl FnOnce(&mut chatterbox::Config)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = chatterbox::Config::default();
    config.store.db_path = dir.path().join("chat.db");
    config.store.database_url = None;
    // Every generated client comes from 127.0.0.1, and the scenarios publish and join from one
    // connection faster than any person would.
    config.admission.max_connections_per_ip = 0;
    config.admission.max_connects_per_ip_per_second = 0;
    config.rate.rate_limits = chatterbox::config::Switch::Off;
    configure(&mut config);
    let server = chatterbox::Server::build(config).await.unwrap();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let listeners = chatterbox::Listeners {
        http: listener,
        metrics: None,
    };
    let task = tokio::spawn(server.run(listeners, async move {
        let _ = stop_rx.await;
    }));
    TestServer {
        url: format!("ws://{addr}/ws"),
        stop,
        task,
        _dir: dir,
    }
}

impl TestServer {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

fn opts(url: &str) -> Options {
    Options {
        url: url.to_string(),
        clients: 50,
        rate: 20.0,
        duration: Duration::from_secs(2),
        warmup: Duration::from_millis(500),
        drain: Duration::from_secs(5),
        quiet: true,
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_loses_nothing() {
    let server = start_server().await;
    let mut o = opts(&server.url);
    o.publishers = Some(2);
    let report = run(o).await.unwrap();
    let r = &report.result;
    let c = &r.counters;
    eprintln!("{}", report.table());
    assert_eq!(r.joined, 50);
    // 2 publishers × 20 msg/s × 2.5 s = 100 messages, each owed to 50 members.
    assert!((98..=102).contains(&c.sent), "{c:?}");
    assert_eq!(c.expected, c.sent * 50);
    assert_eq!(c.delivered, c.expected, "{c:?}");
    assert_eq!(
        (r.lost, c.duplicated, c.out_of_order, c.gap_frames),
        (0, 0, 0, 0)
    );
    assert_eq!(c.disconnects, 0);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert!(r.delivery.count >= 79 * 50, "{:?}", r.delivery);
    assert!(r.delivery.p50_ms > 0.0, "{:?}", r.delivery);
    assert!(r.delivery.p99_ms < 3000.0, "{:?}", r.delivery);
    assert!(r.connect.count == 50 && r.connect.p50_ms > 0.0);
    assert!(r.join.count == 50 && r.join.p99_ms < 3000.0);
    // The in-process server exposes /metrics on the same port: its process
    // numbers are this test process's, but they must be read.
    assert!(r.resources.server_cpu_secs.is_some(), "{:?}", r.resources);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_rooms_and_churn() {
    let server = start_server().await;
    let mut o = opts(&server.url);
    o.scenario = Scenario::Rooms;
    o.members = Some(5);
    let r = run(o.clone()).await.unwrap().result;
    let c = &r.counters;
    assert_eq!((r.plan.rooms, r.joined), (10, 50));
    assert_eq!(c.expected, c.sent * 5);
    assert_eq!(c.delivered, c.expected, "{c:?}");
    assert!(c.errors.is_empty(), "{:?}", c.errors);

    o.scenario = Scenario::Churn;
    o.clients = 10;
    o.warmup = Duration::from_millis(200);
    o.duration = Duration::from_secs(1);
    let report = run(o).await.unwrap();
    eprintln!("{}", report.table());
    let r = report.result;
    assert!(r.counters.churn_cycles >= 10, "{:?}", r.counters);
    assert!(r.counters.errors.is_empty(), "{:?}", r.counters.errors);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_are_timed_and_carry_seeded_history() {
    let server = start_server().await;
    let mut o = opts(&server.url);
    o.scenario = Scenario::Joins;
    o.clients = 10;
    o.rooms = Some(2);
    o.join_rate = 50.0;
    o.seed_history = Some(20);
    o.warmup = Duration::from_millis(300);
    let report = run(o).await.unwrap();
    eprintln!("{}", report.table());
    let r = &report.result;
    let c = &r.counters;
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!((r.joined, r.plan.rooms, r.seed_history), (10, 2, 20));
    // 50 joins/s over the 2 s window, every one acknowledged with the full history.
    assert!((99..=101).contains(&c.joins_scheduled), "{c:?}");
    assert_eq!(c.joins_completed, c.joins_scheduled, "{c:?}");
    assert_eq!(c.joins_with_history, c.joins_completed, "{c:?}");
    assert_eq!(c.history_messages, 20 * c.joins_completed, "{c:?}");
    assert_eq!(r.join.count, c.joins_completed);
    assert!(
        r.join.p50_ms > 0.0 && r.join.p99_ms < 3000.0,
        "{:?}",
        r.join
    );
    let lag = r.join_lag.unwrap();
    assert_eq!(lag.count, r.join.count);
    assert!(lag.p50_ms <= r.join.p50_ms, "lag is part of the join time");
    // The pool connected once; joins are not handshakes.
    assert_eq!(r.connect.count, 10);
    let achieved = r.resources.window_deliveries as f64 / r.resources.window_secs;
    assert!((40.0..=60.0).contains(&achieved), "{achieved} joins/s");
    assert!(report.table().contains("join lag"));
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(
        json["result"]["counters"]["joins_completed"],
        c.joins_completed
    );
    assert_eq!(json["options"]["scenario"], "joins");

    // The seeded messages really are the rooms' history: a fresh client sees them.
    let url = format!("{}?user=checker", server.url);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let room = format!("lt-{}-1", r.plan.tag);
    ws.send(Message::text(format!(
        r#"{{"type":"join","room":"{room}"}}"#
    )))
    .await
    .unwrap();
    let Some(Ok(Message::Text(t))) = ws.next().await else {
        panic!("no reply to join");
    };
    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
    assert_eq!(v["type"], "history", "{v}");
    let texts: Vec<&str> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), 20);
    assert!(texts[0].starts_with("seed 0 ") && texts[19].starts_with("seed 19 "));
    drop(ws);
    server.stop().await;
}

/// Token mode: with the server's secret the generator mints a token per client; with
/// `--resume` its reconnect storm presents the tickets the server gave it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_mode_and_resume_tickets() {
    const SECRET: &str = "a-loadtest-smoke-secret-of-32-bytes!";
    let server = start_server_with(|c| c.auth.auth_secret = Some(SECRET.into())).await;
    let mut o = opts(&server.url);
    o.auth_secret = Some(SECRET.into());
    let r = run(o.clone()).await.unwrap().result;
    assert_eq!(r.joined, 50);
    assert_eq!(
        r.counters.delivered, r.counters.expected,
        "{:?}",
        r.counters
    );
    assert!(r.counters.errors.is_empty(), "{:?}", r.counters.errors);
    o.auth_secret = None;
    let Err(refused) = run(o).await else {
        panic!("without tokens nobody gets in");
    };
    let refused = refused.to_string();
    assert!(
        refused.contains("http-401"),
        "without tokens nobody gets in: {refused}"
    );
    server.stop().await;

    // 20 of 24 slots for new arrivals: the 20 clients fill them, then drop and come back with
    // the tickets they were given (the priority itself is tested in tests/it/admission.rs; here
    // the generator's side of it: asking for, keeping and presenting tickets).
    let server = start_server_with(|c| {
        c.admission.max_connections = Some(24);
        c.admission.resume_reserve_percent = 16; // 4 of the 24 kept for resumes
        c.admission.resume_ticket_min_age_seconds = 0;
    })
    .await;
    let mut o = opts(&server.url);
    o.scenario = Scenario::ReconnectStorm;
    o.clients = 20;
    o.resume = true;
    o.warmup = Duration::from_millis(200);
    o.duration = Duration::from_secs(1);
    let report = run(o).await.unwrap();
    eprintln!("{}", report.table());
    let r = report.result;
    assert!(r.counters.errors.is_empty(), "{:?}", r.counters.errors);
    assert_eq!(
        r.reconnect.as_ref().map(|s| s.count),
        Some(20),
        "{:?}",
        r.reconnect
    );
    server.stop().await;
}

/// `--attack` against the real server at its default limits: every kind of attacker gets to
/// work, the server refuses what it should (rate limits, 431 heads), and the measured clients,
/// from other addresses, lose nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attack_beside_measured_clients_is_refused_and_loses_them_nothing() {
    let server = start_server_with(|c| {
        // The server's defaults: per-address limits and rate limits on.
        let defaults = chatterbox::Config::default();
        c.admission = defaults.admission;
        c.rate = defaults.rate;
    })
    .await;
    let mut o = opts(&server.url);
    o.scenario = Scenario::Rooms;
    o.clients = 20;
    o.members = Some(10);
    o.rate = 2.0;
    o.attack = true;
    o.source_addrs = vec!["127.0.0.10".parse().unwrap()];
    let report = run(o).await.unwrap();
    let r = &report.result;
    eprintln!("{}", report.table());
    assert_eq!(r.lost, 0, "the measured clients lose nothing");
    let attack = r.attack.as_ref().expect("an attack report");
    eprintln!("{attack:?}");
    assert!(
        attack.flood_sent > 0 && attack.flood_rate_limited > 0,
        "{attack:?}"
    );
    assert_eq!(attack.amplifying_joins, 20);
    assert!(
        attack.held_pages >= 40 && attack.squat_joins > 0,
        "{attack:?}"
    );
    // Every head the server answered was refused; up to the 300 in flight when the run ended
    // were cut short by it.
    assert!(
        attack.oversized_heads_closed > 0
            && attack.oversized_heads - attack.oversized_heads_closed <= 300,
        "oversized heads are refused: {attack:?}"
    );
    server.stop().await;
}
