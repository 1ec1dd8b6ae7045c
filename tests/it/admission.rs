//! Admission before the upgrade: origins and hosts, connection limits, trusted proxies and
//! resume-first — each refusal with its documented status and JSON reason (tokens: `tokens`).

use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;
use tokio_tungstenite::tungstenite::Error as WsError;

use crate::support::tokens::{token, token_server};
use crate::support::upgrade::upgrade;
use crate::support::{TestClient, TestServer};

#[tokio::test]
async fn a_browser_origin_must_be_the_servers_own_host_by_default() {
    let server = TestServer::start().await;
    let own = format!("http://{}", server.addr);
    upgrade(&server, "?user=a", &[("origin", &own)])
        .await
        .connected();
    upgrade(&server, "?user=b", &[]).await.connected(); // no Origin: wscat, bots
    for origin in ["http://evil.example", "null"] {
        let (status, _, body) = upgrade(&server, "?user=c", &[("origin", origin)])
            .await
            .refused();
        assert_eq!(
            (status, body["reason"].as_str()),
            (403, Some("origin")),
            "{origin}"
        );
    }
    server.shutdown().await;

    let listed = TestServer::start_with(|c| {
        c.admission.allowed_origins = "https://app.example".into();
    })
    .await;
    upgrade(&listed, "?user=a", &[("origin", "https://app.example")])
        .await
        .connected();
    let own = format!("http://{}", listed.addr);
    assert_eq!(
        upgrade(&listed, "?user=b", &[("origin", &own)])
            .await
            .refused()
            .0,
        403
    );
    listed.shutdown().await;
}

#[tokio::test]
async fn other_host_headers_are_refused_against_dns_rebinding() {
    let server =
        TestServer::start_with(|c| c.admission.allowed_hosts = "chat.example".into()).await;
    upgrade(&server, "?user=a", &[("host", "chat.example")])
        .await
        .connected();
    let (status, _, body) = upgrade(&server, "?user=b", &[]).await.refused(); // Host: 127.0.0.1:port
    assert_eq!((status, body["reason"].as_str()), (403, Some("host")));
    server.shutdown().await;
}

/// Per-address limits answer 429 with a jittered Retry-After; the server's own limit 503.
#[tokio::test]
async fn connection_limits_per_address_and_in_total() {
    let server = TestServer::start_with(|c| {
        c.admission.max_connections_per_ip = 2;
        c.admission.max_connections = Some(4);
        c.admission.resume_reserve_percent = 0;
    })
    .await;
    let url = server.ws_url("u");
    let from = |last: u8| IpAddr::from([127, 0, 0, last]);
    let _a = TestClient::connect_from(&url, from(1)).await;
    let _b = TestClient::connect_from(&url, from(1)).await;
    let (status, retry_after, body) = upgrade(&server, "?user=u", &[]).await.refused();
    assert_eq!(
        (status, body["reason"].as_str()),
        (429, Some("address_connections"))
    );
    assert!(
        retry_after.is_some(),
        "every limit refusal says when to retry"
    );
    let _c = TestClient::connect_from(&url, from(2)).await;
    let _d = TestClient::connect_from(&url, from(3)).await;
    let full = refused_from(&url, from(4)).await;
    assert_eq!(full.0, 503);
    let retry: u64 = full.1.unwrap().parse().unwrap();
    assert!((5..=10).contains(&retry), "jittered Retry-After: {retry}");
    server.shutdown().await;

    let rate = TestServer::start_with(|c| c.admission.max_connects_per_ip_per_second = 1).await;
    let mut kept = Vec::new();
    for _ in 0..2 {
        kept.push(rate.connect("u").await); // the burst
    }
    let (status, retry_after, body) = upgrade(&rate, "?user=u", &[]).await.refused();
    assert_eq!(
        (status, body["reason"].as_str()),
        (429, Some("address_rate"))
    );
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
    rate.shutdown().await;
}

/// An upgrade from `source` that must be refused: its status and Retry-After.
async fn refused_from(url: &str, source: IpAddr) -> (u16, Option<String>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((source, 0).into()).unwrap();
    let addr = url.trim_start_matches("ws://").split('/').next().unwrap();
    let stream = socket.connect(addr.parse().unwrap()).await.unwrap();
    match tokio_tungstenite::client_async(url, stream).await {
        Err(WsError::Http(response)) => (
            response.status().as_u16(),
            response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string()),
        ),
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
}

/// Resume first: a full server refuses new arrivals but admits a client that presents the
/// resume ticket it was given on an earlier connection.
#[tokio::test]
async fn a_full_server_still_admits_a_client_that_resumes() {
    let server = TestServer::start_with(|c| {
        c.admission.max_connections = Some(3);
        c.admission.resume_reserve_percent = 33; // one of the 3 kept: new arrivals take 2
        c.admission.resume_ticket_min_age_seconds = 0;
    })
    .await;
    let (mut alice, _) = upgrade(&server, "?user=alice&resume=", &[])
        .await
        .connected();
    let welcome = alice.recv().await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["user"], "alice");
    let ticket = welcome["resume"].as_str().unwrap().to_string();
    let _bob = server.connect("bob").await;
    let (status, _, body) = upgrade(&server, "?user=carol", &[]).await.refused();
    assert_eq!(
        (status, body["reason"].as_str()),
        (503, Some("server_full"))
    );
    // alice's connection drops; she comes back with her ticket and gets the reserved place.
    drop(alice);
    let (mut back, _) = upgrade(&server, &format!("?user=alice&resume={ticket}"), &[])
        .await
        .connected();
    assert_eq!(back.recv().await["type"], "welcome", "and a fresh ticket");
    let (status, ..) = upgrade(&server, &format!("?user=mallory&resume={ticket}"), &[])
        .await
        .refused();
    assert_eq!(status, 503, "a ticket is for its own user only");
    let (status, body) = server.get_json("/api/session?user=carol").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (503, Some("server_full")),
        "the page learns it before connecting"
    );
    server.shutdown().await;
}

/// A ticket counts only once its connection has lasted RESUME_TICKET_MIN_AGE_SECONDS: asking
/// for one is not enough to jump the queue.
#[tokio::test]
async fn a_fresh_ticket_does_not_count_yet() {
    let server = TestServer::start_with(|c| {
        c.admission.max_connections = Some(2);
        c.admission.resume_reserve_percent = 50;
    })
    .await;
    let (mut alice, _) = upgrade(&server, "?user=alice&resume=", &[])
        .await
        .connected();
    let ticket = alice.recv().await["resume"].as_str().unwrap().to_string();
    let (status, ..) = upgrade(&server, &format!("?user=alice&resume={ticket}"), &[])
        .await
        .refused();
    assert_eq!(
        status, 503,
        "a ten-second-old ticket is needed, this one is new"
    );
    server.shutdown().await;
}

/// Behind a trusted proxy, per-address limits count the client the proxy names; anybody else's
/// X-Forwarded-For is ignored.
#[tokio::test]
async fn only_trusted_proxies_name_the_client() {
    let server = TestServer::start_with(|c| {
        c.admission.max_connections_per_ip = 1;
        c.admission.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let forwarded = |ip: &'static str| [("x-forwarded-for", ip)];
    let _one = upgrade(&server, "?user=a", &forwarded("198.51.100.1"))
        .await
        .connected();
    let _two = upgrade(&server, "?user=b", &forwarded("198.51.100.2"))
        .await
        .connected();
    let (status, ..) = upgrade(&server, "?user=c", &forwarded("198.51.100.1"))
        .await
        .refused();
    assert_eq!(status, 429, "198.51.100.1 has its one connection");
    server.shutdown().await;

    // A `Forwarded` header is not read when the proxy writes X-Forwarded-For (the default): the
    // client could have written it, and the proxy passed it on.
    let spoofing = TestServer::start_with(|c| {
        c.admission.max_connections_per_ip = 1;
        c.admission.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let _one = upgrade(&spoofing, "?user=a", &[("forwarded", "for=198.51.100.1")])
        .await
        .connected();
    let (status, ..) = upgrade(&spoofing, "?user=b", &[("forwarded", "for=198.51.100.2")])
        .await
        .refused();
    assert_eq!(status, 429, "both are the proxy's own client: 127.0.0.1");
    spoofing.shutdown().await;

    let untrusted = TestServer::start_with(|c| c.admission.max_connections_per_ip = 1).await;
    let _one = upgrade(&untrusted, "?user=a", &forwarded("198.51.100.1"))
        .await
        .connected();
    let (status, ..) = upgrade(&untrusted, "?user=b", &forwarded("198.51.100.2"))
        .await
        .refused();
    assert_eq!(
        status, 429,
        "without trust, the header is ignored: both are 127.0.0.1"
    );
    untrusted.shutdown().await;
}

/// Refusals are counted by reason.
#[tokio::test]
async fn refusals_are_counted() {
    let server = TestServer::builder().metrics_listener().start().await;
    let before = refused_count(&server, "origin").await;
    upgrade(&server, "?user=a", &[("origin", "http://evil.example")])
        .await
        .refused();
    // Other tests in this process refuse origins too: at least this one was counted.
    assert!(refused_count(&server, "origin").await >= before + 1.0);
    server.shutdown().await;
}

async fn refused_count(server: &TestServer, reason: &str) -> f64 {
    let metrics = reqwest::get(format!("http://{}/metrics", server.metrics_addr.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!("chatterbox_connections_refused_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// `GET /api/session` answers exactly what the upgrade would decide about the client, so the
/// page can show why before it connects.
#[tokio::test]
async fn the_page_can_check_a_name_or_token_before_connecting() {
    let server = TestServer::start().await;
    let (status, body) = server.get_json("/api/session?user=%EF%BD%81lice").await; // ａlice
    assert_eq!((status, body["user"].as_str()), (200, Some("alice")));
    assert_eq!(body["mode"], "open");
    let (status, body) = server.get_json("/api/session?user=a%E2%80%8Bb").await; // zero-width
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("invisible"),
        "{body}"
    );
    let evil = reqwest::Client::new()
        .get(server.url("/api/session?user=alice"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status().as_u16(), 403);
    server.shutdown().await;

    let server = token_server().await;
    let (status, _) = server.get_json("/api/session").await;
    assert_eq!(status, 401);
    let response = reqwest::Client::new()
        .get(server.url("/api/session"))
        .bearer_auth(token("erin", Duration::from_secs(60)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["user"].as_str(), body["mode"].as_str()),
        (Some("erin"), Some("token"))
    );
    server.shutdown().await;
}
