//! The per-address REST request rate: 429 with a JSON reason and `Retry-After`, per client
//! address, health checks exempt, off with `RATE_LIMITS=off` or a 0 setting.

use std::net::IpAddr;

use crate::support::{http_client_from, TestServer};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn rest_requests_over_the_per_address_rate_get_429_with_retry_after() {
    let server = TestServer::start_with(|c| {
        c.net.rest_requests_per_ip_per_second = 1;
        c.net.rest_request_burst = 5;
    })
    .await;
    let greedy = http_client_from(ip("127.0.0.2"));
    for i in 0..5 {
        let response = greedy.get(server.url("/api/rooms")).send().await.unwrap();
        assert_eq!(response.status(), 200, "request {i} is within the burst");
    }
    let refused = greedy
        .get(server.url("/api/rooms/general/messages"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["content-type"], "application/json");
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After is whole seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("too many requests"));
    assert_eq!(body["retry_after_seconds"], retry_after);

    // Health checks are never limited, and another address has its own budget.
    for path in ["/health", "/health/live", "/health/ready"] {
        let response = greedy.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path} is exempt");
    }
    let bystander = http_client_from(ip("127.0.0.3"));
    let response = bystander
        .get(server.url("/api/rooms"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.shutdown().await;
}

/// The defaults let the browser page (a directory poll, history pages, gap recovery) and a few
/// tabs behind one address make a burst of requests without meeting the limit.
#[tokio::test]
async fn the_default_rate_is_generous() {
    let server = TestServer::start().await;
    let client = http_client_from(ip("127.0.0.4"));
    for i in 0..60 {
        let response = client
            .get(server.url("/api/rooms/r/messages?limit=10"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "request {i}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn rate_limits_off_or_a_zero_setting_turn_the_rest_limit_off() {
    let off = TestServer::start_with(|c| {
        c.net.rest_requests_per_ip_per_second = 1;
        c.net.rest_request_burst = 1;
        c.rate.rate_limits = chatterbox::config::Switch::Off;
    })
    .await;
    let zero = TestServer::start_with(|c| {
        c.net.rest_requests_per_ip_per_second = 0;
        c.net.rest_request_burst = 1;
    })
    .await;
    let client = http_client_from(ip("127.0.0.5"));
    for server in [&off, &zero] {
        for _ in 0..20 {
            let response = client.get(server.url("/api/rooms")).send().await.unwrap();
            assert_eq!(response.status(), 200);
        }
    }
    off.shutdown().await;
    zero.shutdown().await;
}

#[test]
fn rate_limits_takes_on_and_off() {
    use clap::Parser;
    let config =
        chatterbox::Config::try_parse_from(["chatterbox", "--rate-limits", "off"]).unwrap();
    assert!(!config.rate.enabled());
    assert!(chatterbox::Config::default().rate.enabled());
}
