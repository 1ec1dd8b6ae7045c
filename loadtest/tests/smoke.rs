//! Smoke test: the generator against a real, in-process chatterbox server.
//! Small numbers, so it runs in seconds in CI; what it checks is that the
//! server and the generator agree on the protocol and that nothing is lost.

use std::time::Duration;

use chatterbox_loadtest::{run, Options, Scenario};

struct TestServer {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), chatterbox::ServerError>>,
    _dir: tempfile::TempDir,
}

async fn start_server() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = chatterbox::Config {
        db_path: dir.path().join("chat.db"),
        ..Default::default()
    };
    let server = chatterbox::Server::build(config).await.unwrap();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(listener, async move {
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
