//! `/metrics` against the metric contract, `promtool`, and a real Prometheus evaluating every query
//! of the Grafana dashboard.
//!
//! * `exposition_matches_metric_contract` (always runs): every contract metric is exposed with its
//!   type, labels and label values; histograms have buckets.
//! * `promtool_check_metrics` (needs `PROMTOOL_BIN`, e.g. Debian's `/usr/bin/promtool`): the
//!   exposition passes `promtool check metrics` without a single remark.
//! * `example_prometheus_config_is_valid` (needs `PROMTOOL_BIN`): `promtool check config` on
//!   `grafana/prometheus.yml`, which also checks the alert rules it loads.
//! * `prometheus_evaluates_every_dashboard_query` (needs `PROMETHEUS_BIN`, e.g. Debian's
//!   `/usr/bin/prometheus`): the server under a small real load, scraped every second by a real
//!   Prometheus; then every PromQL expression of the dashboard (and the `$instance` variable's
//!   label query) must evaluate to a non-empty result, and every alert rule of
//!   `grafana/alerts.yml` must evaluate without error.
//!
//! Without the variables those tests print `SKIP <test>: ... (see .ci/run)` and pass.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::dashboard::{
    close_reasons, dashboard_queries, load_dashboard, manifest_dir, substitute_variables,
    CONTRACT_COUNTERS, CONTRACT_GAUGES, CONTRACT_HISTOGRAMS, MESSAGE_TYPES,
};
use crate::support::{TestClient, TestServer};

/// `$__rate_interval` as Grafana would compute it for a 1 s scrape interval is 4 s; a wider window
/// still answers as soon as two scrapes exist, and keeps answering if a scrape is slow.
const RATE_INTERVAL: &str = "30s";

/// Longest wait for Prometheus to come up and scrape, and for the queries to have data.
const PROMETHEUS_DEADLINE: Duration = Duration::from_secs(90);

/// Pause between polls of an HTTP API (a polling interval under a deadline, not a sync point).
const POLL: Duration = Duration::from_millis(250);

fn tool_from_env(var: &str, test: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => {
            crate::support::skip(test, &format!("{var} is not set (see .ci/run)"));
            None
        }
    }
}

// -------------------------------------------------------------------------------------------
// Load

/// Connects clients and produces every labelled series: joins, chats, an invalid frame, a
/// not-member error, a leave, a clean close, and HTTP requests (2xx and 404).
async fn scripted_traffic(server: &TestServer) -> (TestClient, TestClient) {
    let mut alice = server.connect("alice").await;
    alice.join("lobby").await;
    let mut bob = server.connect("bob").await;
    bob.join("lobby").await;
    alice.recv_type("join").await;

    let mut carol = server.connect("carol").await;
    carol.join("random").await;

    alice.chat("lobby", "hello").await;
    alice.recv_type("chat").await;
    bob.recv_type("chat").await;

    bob.send_text("this is not json").await;
    let error = bob.recv_type("error").await;
    assert_eq!(error["code"], "invalid_json", "{error}");
    bob.chat("random", "not a member").await;
    let error = bob.recv_type("error").await;
    assert_eq!(error["code"], "not_member", "{error}");

    carol.send(json!({"type": "leave", "room": "random"})).await;
    carol.ws.close(None).await.expect("close handshake");

    let http = reqwest::Client::new();
    for (path, expected) in [
        ("/health", 200),
        ("/api/rooms", 200),
        ("/api/rooms/lobby/messages", 200),
        ("/api/rooms/no-such-room", 404),
    ] {
        let status = http
            .get(server.url(path))
            .send()
            .await
            .expect("http request")
            .status();
        assert_eq!(status.as_u16(), expected, "GET {path}");
    }
    (alice, bob)
}

/// Keeps a steady trickle of traffic going until `stop` turns true: a chat every 100 ms seen by
/// both members, every second a user who joins, chats, leaves and disconnects, an HTTP request
/// and an invalid frame.
async fn steady_traffic(
    server_url: String,
    ws_url: String,
    mut alice: TestClient,
    mut bob: TestClient,
    mut stop: watch::Receiver<bool>,
) -> u64 {
    let http = reqwest::Client::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        n += 1;
        alice.chat("lobby", &format!("tick {n}")).await;
        alice.recv_type("chat").await;
        bob.recv_type("chat").await;
        if n.is_multiple_of(10) {
            let mut dave = TestClient::connect(&format!("{ws_url}dave{n}")).await;
            dave.join("lobby").await;
            dave.chat("lobby", "hi and bye").await;
            dave.recv_type("chat").await;
            dave.send(json!({"type": "leave", "room": "lobby"})).await;
            dave.ws.close(None).await.expect("close handshake");
            bob.send_text("{not json").await;
            bob.recv_type("error").await;
            let response = http
                .get(format!("{server_url}/api/rooms"))
                .send()
                .await
                .expect("http request");
            assert!(response.status().is_success());
        }
    }
    n
}

// -------------------------------------------------------------------------------------------
// Exposition parsing

#[derive(Debug, Default)]
struct Exposition {
    /// `# TYPE` of each metric family.
    types: BTreeMap<String, String>,
    help: BTreeSet<String>,
    /// Series name → label sets seen.
    samples: BTreeMap<String, Vec<BTreeMap<String, String>>>,
}

fn parse_exposition(text: &str) -> Exposition {
    let mut out = Exposition::default();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                out.types.insert(name.to_string(), kind.to_string());
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some(name) = rest.split_whitespace().next() {
                out.help.insert(name.to_string());
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(|c: char| c == '{' || c.is_whitespace())
            .unwrap_or(line.len());
        let name = &line[..name_end];
        let mut labels = BTreeMap::new();
        if line[name_end..].starts_with('{') {
            // key="value" pairs; values may contain escaped quotes, commas and braces.
            let chars: Vec<char> = line[name_end + 1..].chars().collect();
            let mut i = 0;
            while i < chars.len() && chars[i] != '}' {
                let key_start = i;
                while i < chars.len() && chars[i] != '=' {
                    i += 1;
                }
                let key: String = chars[key_start..i].iter().collect();
                i += 2; // `="`
                let mut value = String::new();
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                        value.push(match chars[i] {
                            'n' => '\n',
                            c => c,
                        });
                    } else {
                        value.push(chars[i]);
                    }
                    i += 1;
                }
                i += 1; // closing quote
                if i < chars.len() && chars[i] == ',' {
                    i += 1;
                }
                labels.insert(key.trim().to_string(), value);
            }
        }
        out.samples
            .entry(name.to_string())
            .or_default()
            .push(labels);
    }
    out
}

async fn scrape(server: &TestServer) -> String {
    let response = reqwest::get(server.url("/metrics"))
        .await
        .expect("GET /metrics");
    assert!(
        response.status().is_success(),
        "GET /metrics: {}",
        response.status()
    );
    response.text().await.expect("metrics body")
}

/// Scrapes until `ready` holds for the exposition (the server counts closes and errors
/// asynchronously), panicking after 10 s.
async fn scrape_until(
    server: &TestServer,
    what: &str,
    ready: impl Fn(&Exposition) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = scrape(server).await;
        if ready(&parse_exposition(&body)) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/metrics never showed {what}:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // polling interval, not a sync point
    }
}

fn has_series(e: &Exposition, name: &str, label: &str, value: &str) -> bool {
    e.samples.get(name).is_some_and(|sets| {
        sets.iter()
            .any(|l| l.get(label).map(String::as_str) == Some(value))
    })
}

/// The scripted traffic's labelled series are all visible.
fn scripted_series_visible(e: &Exposition) -> bool {
    has_series(
        e,
        "chatterbox_connections_closed_total",
        "reason",
        "client_close",
    ) && has_series(e, "chatterbox_error_frames_total", "kind", "invalid_json")
        && has_series(e, "chatterbox_error_frames_total", "kind", "not_member")
        && has_series(e, "chatterbox_http_requests_total", "route", "/api/rooms")
        && e.samples
            .contains_key("chatterbox_history_rows_written_total")
}

/// The `/metrics` body of a fresh server once the scripted traffic's series are visible.
async fn scripted_exposition() -> String {
    let server = TestServer::start().await;
    let (alice, bob) = scripted_traffic(&server).await;
    let body = scrape_until(
        &server,
        "the scripted traffic's series",
        scripted_series_visible,
    )
    .await;
    drop((alice, bob));
    server.shutdown().await;
    body
}

// -------------------------------------------------------------------------------------------
// Tests that need no external binary

#[tokio::test]
async fn exposition_matches_metric_contract() {
    let body = scripted_exposition().await;

    let e = parse_exposition(&body);
    let mut problems = Vec::new();
    let expected = CONTRACT_COUNTERS
        .iter()
        .map(|(n, l)| (n, l, "counter"))
        .chain(CONTRACT_GAUGES.iter().map(|(n, l)| (n, l, "gauge")))
        .chain(CONTRACT_HISTOGRAMS.iter().map(|(n, l)| (n, l, "histogram")));
    for (name, labels, kind) in expected {
        match e.types.get(*name).map(String::as_str) {
            None => {
                problems.push(format!("{name}: missing (no `# TYPE {name}` line)"));
                continue;
            }
            Some(k) if k != kind => {
                problems.push(format!("{name}: type {k}, contract says {kind}"))
            }
            Some(_) => {}
        }
        if !e.help.contains(*name) {
            problems.push(format!("{name}: no # HELP"));
        }
        let series: Vec<String> = if kind == "histogram" {
            ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{name}{s}"))
                .collect()
        } else {
            vec![name.to_string()]
        };
        for s in &series {
            let Some(sets) = e.samples.get(s) else {
                problems.push(format!("{s}: no samples"));
                continue;
            };
            for set in sets {
                let mut keys: BTreeSet<&str> = set.keys().map(String::as_str).collect();
                if s.ends_with("_bucket") && !keys.remove("le") {
                    problems.push(format!("{s}: a bucket without le: {set:?}"));
                }
                let want: BTreeSet<&str> = labels.iter().copied().collect();
                if keys != want {
                    problems.push(format!("{s}: labels {keys:?}, contract says {want:?}"));
                }
            }
        }
        if kind == "histogram" {
            let les: Vec<f64> = e.samples[&format!("{name}_bucket")]
                .iter()
                .filter_map(|l| l.get("le"))
                .filter_map(|le| le.parse().ok())
                .collect();
            if !les.contains(&f64::INFINITY) || les.len() < 3 {
                problems.push(format!(
                    "{name}: buckets {les:?} (expected explicit buckets and +Inf)"
                ));
            }
        }
    }
    let check_values = |name: &str, label: &str, allowed: &[&str], problems: &mut Vec<String>| {
        for set in e.samples.get(name).map(Vec::as_slice).unwrap_or(&[]) {
            if let Some(v) = set.get(label) {
                if !allowed.contains(&v.as_str()) {
                    problems.push(format!("{name}: {label}=\"{v}\" is not one of {allowed:?}"));
                }
            }
        }
    };
    check_values(
        "chatterbox_connections_closed_total",
        "reason",
        &close_reasons(),
        &mut problems,
    );
    check_values(
        "chatterbox_messages_received_total",
        "type",
        MESSAGE_TYPES,
        &mut problems,
    );
    for t in MESSAGE_TYPES {
        if !has_series(&e, "chatterbox_messages_received_total", "type", t) {
            problems.push(format!(
                "chatterbox_messages_received_total{{type=\"{t}\"}} is missing"
            ));
        }
    }
    let latency_les: BTreeSet<String> = e
        .samples
        .get("chatterbox_fanout_latency_seconds_bucket")
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter_map(|l| l.get("le").cloned())
        .collect();
    for le in ["0.0001", "5"] {
        if !latency_les.contains(le) {
            problems.push(format!(
                "chatterbox_fanout_latency_seconds: no le=\"{le}\" bucket (contract: 0.0001 … 5), got {latency_les:?}"
            ));
        }
    }

    let contract: BTreeSet<&str> = CONTRACT_COUNTERS
        .iter()
        .chain(CONTRACT_GAUGES)
        .chain(CONTRACT_HISTOGRAMS)
        .map(|(n, _)| *n)
        .collect();
    let extra: Vec<&String> = e
        .types
        .keys()
        .filter(|n| n.starts_with("chatterbox_") && !contract.contains(n.as_str()))
        .collect();
    if !extra.is_empty() {
        println!("note: exposed but not in the contract (not shown on the dashboard): {extra:?}");
    }
    assert!(
        problems.is_empty(),
        "/metrics does not match the metric contract:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn exposition_parser_reads_labels_with_braces_and_escapes() {
    let e = parse_exposition(
        "# HELP a_total A.\n# TYPE a_total counter\n\
         a_total{route=\"/api/rooms/{name}\",status=\"200\"} 3\n\
         a_total{route=\"say \\\"hi\\\", ok\"} 1 1700000000\nb 2\n",
    );
    assert_eq!(e.types["a_total"], "counter");
    assert!(e.help.contains("a_total"));
    let sets = &e.samples["a_total"];
    assert_eq!(sets[0]["route"], "/api/rooms/{name}");
    assert_eq!(sets[0]["status"], "200");
    assert_eq!(sets[1]["route"], "say \"hi\", ok");
    assert!(e.samples["b"][0].is_empty());
}

// -------------------------------------------------------------------------------------------
// promtool

fn run_promtool(promtool: &Path, args: &[&str], stdin: Option<String>) -> (bool, String) {
    let mut child = Command::new(promtool)
        .args(args)
        .current_dir(manifest_dir())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", promtool.display()));
    if let Some(input) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().unwrap();
        // Write from a thread: promtool may answer before reading everything.
        std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    let output = child.wait_with_output().expect("promtool output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test]
async fn promtool_check_metrics() {
    let Some(promtool) = tool_from_env("PROMTOOL_BIN", "promtool_check_metrics") else {
        return;
    };
    let body = scripted_exposition().await;

    let (ok, report) = tokio::task::spawn_blocking(move || {
        run_promtool(&promtool, &["check", "metrics"], Some(body))
    })
    .await
    .expect("promtool task");
    assert!(
        ok && report.trim().is_empty(),
        "promtool check metrics must report nothing (exit ok: {ok}), it said:\n{report}"
    );
    println!("promtool check metrics: no remarks");
}

#[tokio::test]
async fn example_prometheus_config_is_valid() {
    let Some(promtool) = tool_from_env("PROMTOOL_BIN", "example_prometheus_config_is_valid") else {
        return;
    };
    let (ok, report) = tokio::task::spawn_blocking(move || {
        run_promtool(
            &promtool,
            &["check", "config", "grafana/prometheus.yml"],
            None,
        )
    })
    .await
    .expect("promtool task");
    assert!(
        ok,
        "promtool check config grafana/prometheus.yml:\n{report}"
    );
    print!("{report}");
}

// -------------------------------------------------------------------------------------------
// A real Prometheus

/// A Prometheus child process; killed when dropped.
struct Prometheus {
    child: Child,
    base: String,
    log: PathBuf,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn spawn(bin: &Path, config: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let log = dir.path().join("prometheus.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        // A free port: bind, read it, release it for Prometheus.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("http client"),
            _dir: dir,
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Panics with the log if Prometheus has exited.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("prometheus exited ({status}):\n{}", self.log_tail());
        }
    }

    /// `GET /api/v1/{path}`; `Err` for transport errors (not up yet), the JSON body otherwise.
    async fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let response = self
            .http
            .get(format!("{}/api/v1/{path}", self.base))
            .query(params)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        response.json::<Value>().await.map_err(|e| e.to_string())
    }

    /// An instant query: `Ok(result array)` on success, `Err(reason)` otherwise.
    async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let body = self.api("query", &[("query", expr)]).await?;
        if body["status"] != "success" {
            return Err(format!("{}: {}", body["errorType"], body["error"]));
        }
        match &body["data"]["result"] {
            Value::Array(result) => Ok(result.clone()),
            // scalar/string results
            other => Ok(vec![other.clone()]),
        }
    }

    /// Polls `expr` until `ready(result)` or the deadline.
    async fn wait_for(&mut self, expr: &str, deadline: Instant, ready: impl Fn(&[Value]) -> bool) {
        loop {
            self.assert_running();
            let last = match self.query(expr).await {
                Ok(result) if ready(&result) => return,
                Ok(result) => format!("{result:?}"),
                Err(e) => e,
            };
            assert!(
                Instant::now() < deadline,
                "prometheus: {expr} not ready in time (last: {last})\nprometheus log:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(POLL).await; // polling interval, not a sync point
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sample_value(series: &Value) -> String {
    series["value"][1]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| series.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_evaluates_every_dashboard_query() {
    let test = "prometheus_evaluates_every_dashboard_query";
    let Some(bin) = tool_from_env("PROMETHEUS_BIN", test) else {
        return;
    };
    let dashboard = load_dashboard();
    let server = TestServer::start().await;
    let (alice, bob) = scripted_traffic(&server).await;
    let (stop, stopped) = watch::channel(false);
    let load = tokio::spawn(steady_traffic(
        server.url(""),
        format!("ws://{}/ws?user=", server.addr),
        alice,
        bob,
        stopped,
    ));

    let rules_file = manifest_dir().join("grafana/alerts.yml");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {rules_file:?}\n\
         scrape_configs:\n  - job_name: chatterbox\n    metrics_path: /metrics\n    \
         static_configs:\n      - targets: [\"{}\"]\n",
        server.addr
    );
    let mut prometheus = Prometheus::spawn(&bin, &config);
    let deadline = Instant::now() + PROMETHEUS_DEADLINE;

    // Scraping works...
    prometheus
        .wait_for(r#"up{job="chatterbox"}"#, deadline, |r| {
            r.iter().any(|s| sample_value(s) == "1")
        })
        .await;
    // ...and there are enough scrapes for rate().
    let rate_probe = format!("rate(chatterbox_deliveries_total[{RATE_INTERVAL}]) > 0");
    prometheus
        .wait_for(&rate_probe, deadline, |r| !r.is_empty())
        .await;

    // Every dashboard query. Deterministic errors (bad PromQL) fail at once; empty results are
    // retried until the deadline, since some series need a scrape or two more.
    let queries = dashboard_queries(&dashboard);
    assert!(!queries.is_empty(), "the dashboard has no queries");
    let mut pending: Vec<(String, String)> = queries
        .iter()
        .map(|q| {
            let expr = substitute_variables(&dashboard, &q.expr, RATE_INTERVAL);
            assert!(!expr.contains('$'), "unreplaced variable in {expr}");
            (format!("{} [{}]", q.panel, q.ref_id), expr)
        })
        .collect();
    let mut answered: Vec<String> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    loop {
        prometheus.assert_running();
        let mut still_empty = Vec::new();
        for (label, expr) in pending {
            match prometheus.query(&expr).await {
                Ok(result) if !result.is_empty() => answered.push(format!(
                    "ok  {label}: {} series, first = {}",
                    result.len(),
                    sample_value(&result[0])
                )),
                Ok(_) => still_empty.push((label, expr)),
                Err(e) if e.contains("connect") || e.contains("timed out") => {
                    still_empty.push((label, expr))
                }
                Err(e) => failures.push(format!("{label}: {e}\n      {expr}")),
            }
        }
        pending = still_empty;
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await; // polling interval, not a sync point
    }
    for (label, expr) in &pending {
        failures.push(format!("{label}: empty result\n      {expr}"));
    }

    // The $instance variable's query, label_values(METRIC, instance), as the dashboard has it.
    let variable_query = load_dashboard()["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "instance")
        .and_then(|v| v["query"]["query"].as_str())
        .expect("an instance variable")
        .to_string();
    let variable_metric = variable_query
        .strip_prefix("label_values(")
        .and_then(|q| q.split(',').next())
        .expect("label_values(METRIC, instance)")
        .trim()
        .to_string();
    let values = prometheus
        .api("label/instance/values", &[("match[]", &variable_metric)])
        .await
        .unwrap_or_else(|e| panic!("label values: {e}"));
    let instance = server.addr.to_string();
    if !values["data"]
        .as_array()
        .is_some_and(|v| v.iter().any(|i| i == &json!(instance)))
    {
        failures.push(format!(
            "variable instance: label values {values} lack {instance}"
        ));
    }

    // Every alert rule evaluates without error.
    let rules_report = loop {
        prometheus.assert_running();
        let body = prometheus
            .api("rules", &[])
            .await
            .unwrap_or_else(|e| panic!("rules: {e}"));
        let rules: Vec<&Value> = body["data"]["groups"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .flat_map(|g| g["rules"].as_array().map(Vec::as_slice).unwrap_or(&[]))
            .collect();
        let unevaluated = rules.iter().filter(|r| r["health"] == "unknown").count();
        if !rules.is_empty() && (unevaluated == 0 || Instant::now() >= deadline) {
            for r in &rules {
                if r["health"] != "ok" {
                    failures.push(format!(
                        "alert rule {}: health {} {}",
                        r["name"], r["health"], r["lastError"]
                    ));
                }
            }
            break format!("{} alert rules evaluated", rules.len());
        }
        assert!(
            Instant::now() < deadline,
            "no alert rules loaded from {}: {body}",
            rules_file.display()
        );
        tokio::time::sleep(POLL).await; // polling interval, not a sync point
    };

    let _ = stop.send(true);
    let ticks = tokio::time::timeout(Duration::from_secs(10), load)
        .await
        .expect("load stops")
        .expect("load task ran without panicking");
    drop(prometheus);
    server.shutdown().await;

    println!("{}", answered.join("\n"));
    assert!(
        failures.is_empty(),
        "{} of {} dashboard queries failed against Prometheus:\n  {}",
        failures.len(),
        queries.len(),
        failures.join("\n  ")
    );
    println!(
        "prometheus: all {} dashboard queries returned data ({ticks} load ticks); {rules_report}",
        queries.len()
    );
}
