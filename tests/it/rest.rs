//! The REST API, static client, CORS, security headers and the metrics endpoints.

use serde_json::json;

use crate::support::{metric_value, TestServer};

#[tokio::test]
async fn rooms_api_lists_rooms_and_details() {
    let server = TestServer::start().await;
    let (status, health) = server.get_json("/health").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    assert_eq!(server.get_json("/api/rooms").await.1, json!([]));

    let mut bob = server.connect("bob").await;
    bob.join("zeta").await;
    let mut alice = server.connect("alice").await;
    alice.join("alpha").await;
    alice.join("zeta").await;
    assert_eq!(
        server.get_json("/api/rooms").await.1,
        json!([{"name":"alpha","user_count":1},{"name":"zeta","user_count":2}])
    );
    assert_eq!(
        server.get_json("/api/rooms/zeta").await,
        (
            200,
            json!({"name":"zeta","user_count":2,"users":["alice","bob"]})
        )
    );
    let (status, body) = server.get_json("/api/rooms/nope").await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("nope"));
    server.shutdown().await;
}

async fn allow_origin(server: &TestServer, origin: &str) -> Option<String> {
    let response = reqwest::Client::new()
        .get(server.url("/api/rooms"))
        .header("Origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn cors_is_same_origin_only_by_default() {
    let server = TestServer::start().await;
    assert_eq!(allow_origin(&server, "https://example.com").await, None);
    server.shutdown().await;
}

#[tokio::test]
async fn cors_allows_any_origin_or_a_list_only_when_asked() {
    let any = TestServer::start_with(|c| c.net.cors_allow_origin = "*".into()).await;
    assert_eq!(
        allow_origin(&any, "https://example.com").await.as_deref(),
        Some("*")
    );
    let listed = TestServer::start_with(|c| {
        c.net.cors_allow_origin = "https://a.example, https://b.example".into()
    })
    .await;
    assert_eq!(
        allow_origin(&listed, "https://b.example").await.as_deref(),
        Some("https://b.example")
    );
    assert_eq!(allow_origin(&listed, "https://c.example").await, None);
    any.shutdown().await;
    listed.shutdown().await;
}

#[tokio::test]
async fn every_response_has_nosniff_and_no_referrer_and_the_page_talks_only_to_us() {
    let server = TestServer::start().await;
    for path in [
        "/",
        "/app.js",
        "/health",
        "/api/rooms",
        "/api/rooms/x",
        "/nope",
        "/metrics",
    ] {
        let response = reqwest::get(server.url(path)).await.unwrap();
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
    }
    let page = reqwest::get(server.url("/")).await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
    assert!(directives.contains(&"connect-src 'self'"), "{csp}");
    assert!(!csp.contains("ws:") && !csp.contains("wss:"), "{csp}");
    for kept in [
        "default-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
    ] {
        assert!(directives.contains(&kept), "{kept} in {csp}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn the_browser_client_is_embedded() {
    let server = TestServer::start().await;
    let response = reqwest::get(server.url("/")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(response.headers().contains_key("content-security-policy"));
    assert!(response.text().await.unwrap().contains("chatterbox"));
    let response = reqwest::get(server.url("/no-such-file.js")).await.unwrap();
    assert_eq!(response.status(), 404);
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_count_what_happens() {
    let server = TestServer::start().await;
    let scrape = || async {
        reqwest::get(server.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let before = scrape().await;
    let mut alice = server.connect("alice").await;
    alice.join("m").await;
    alice.chat("m", "hi").await;
    alice.recv_type("chat").await;
    alice.send_text("garbage").await;
    alice.recv_type("error").await;
    let after = scrape().await;
    let delta = |name: &str| {
        metric_value(&after, name).unwrap_or(0.0) - metric_value(&before, name).unwrap_or(0.0)
    };
    // Other tests share the process-wide recorder, so assert lower bounds on differences.
    assert!(delta("chatterbox_room_joins_total") >= 1.0);
    assert!(
        delta("chatterbox_deliveries_total") >= 3.0,
        "presence, chat, error"
    );
    assert!(after.contains("chatterbox_messages_received_total{type=\"chat\"}"));
    assert!(after.contains("chatterbox_error_frames_total{kind=\"invalid_json\"}"));
    assert!(after.contains("chatterbox_fanout_latency_seconds_bucket"));
    assert!(after.contains("\nprocess_resident_memory_bytes "));
    assert!(after.contains("# HELP chatterbox_connections_open"));
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_can_move_to_their_own_port() {
    let server = TestServer::builder().metrics_listener().start().await;
    let response = reqwest::get(server.url("/metrics")).await.unwrap();
    assert_eq!(response.status(), 404, "not on the main port");
    let metrics = server.metrics_addr.unwrap();
    let body = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("chatterbox_connections_open"));
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_can_listen_on_an_address_of_their_own() {
    // A free port on 127.0.0.2 (another loopback address than the main listener's).
    let port = std::net::TcpListener::bind("127.0.0.2:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = TestServer::builder()
        .config(|c| {
            c.net.bind_addr = "127.0.0.1".parse().unwrap();
            c.net.port = 0;
            c.net.metrics_bind_addr = Some("127.0.0.2".parse().unwrap());
            c.net.metrics_port = port;
        })
        .bind_from_config()
        .start()
        .await;
    let on_own = reqwest::get(format!("http://127.0.0.2:{port}/metrics"))
        .await
        .unwrap();
    assert_eq!(on_own.status(), 200);
    assert!(reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .is_err());
    let main = reqwest::get(server.url("/metrics")).await.unwrap();
    assert_eq!(main.status(), 404);
    server.shutdown().await;
}

/// Standard names, so stock dashboards work; CPU seconds keep their fraction (the `metrics`
/// crate's integer counters rounded them down to whole seconds).
#[tokio::test]
async fn process_metrics_have_standard_names_and_fractional_cpu_seconds() {
    let server = TestServer::start().await;
    let mut fractional = false;
    for _ in 0..50 {
        let body = reqwest::get(server.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for name in [
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
            "process_threads",
        ] {
            assert!(metric_value(&body, name).is_some_and(|v| v > 0.0), "{name}");
        }
        assert!(body.contains("# TYPE process_cpu_seconds_total counter\n"));
        let cpu = metric_value(&body, "process_cpu_seconds_total").unwrap();
        if cpu.fract() != 0.0 {
            fractional = true;
            break;
        }
        // On a whole second by chance (1 in 100): burn ~15 ms of CPU and look again.
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(15) {
            std::hint::black_box(start.elapsed());
        }
    }
    assert!(fractional, "CPU seconds never had a fraction");
    server.shutdown().await;
}
