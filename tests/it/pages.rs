//! REST history pages have a byte budget beside `limit` (MAX_PAGE_BYTES): a page keeps the newest
//! messages that fit and says `"more": true`; the client pages on with `before` = its first id.

use serde_json::Value;

use crate::support::TestServer;

fn ids(page: &Value) -> Vec<u64> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_page_stops_at_max_page_bytes_and_says_more() {
    let server = TestServer::start_with(|c| c.history.max_page_bytes = 4096).await;
    let mut alice = server.connect("alice").await;
    alice.join("r").await;
    let text = "x".repeat(1000);
    for _ in 0..10 {
        alice.chat("r", &text).await;
    }
    for _ in 0..10 {
        alice.recv_type("chat").await;
    }
    let mut seen = Vec::new();
    let mut query = "?limit=10".to_string();
    let mut pages = 0;
    loop {
        let (status, page) = server
            .get_json(&format!("/api/rooms/r/messages{query}"))
            .await;
        assert_eq!(status, 200);
        let page_ids = ids(&page);
        let bytes: usize = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.to_string().len() + 1)
            .sum();
        assert!(bytes <= 4096, "page of {bytes} bytes");
        assert!(!page_ids.is_empty());
        pages += 1;
        let more = page["more"].as_bool().expect("every page has `more`");
        let mut older = page_ids.clone();
        older.extend(seen);
        seen = older;
        if !more {
            break;
        }
        assert!(
            page_ids.len() < 10,
            "`more` only when the budget cut the page"
        );
        query = format!("?limit=10&before={}", page_ids[0]);
    }
    assert!(
        pages >= 3,
        "4 KiB holds three 1 kB messages, so 10 take several pages"
    );
    assert_eq!(seen, (1..=10).collect::<Vec<u64>>());
    server.shutdown().await;
}

#[tokio::test]
async fn a_page_within_the_budget_says_no_more_and_one_message_always_fits() {
    let server = TestServer::start_with(|c| c.history.max_page_bytes = 1024).await;
    let mut alice = server.connect("alice").await;
    alice.join("r").await;
    alice.chat("r", "short").await;
    alice.chat("r", &"y".repeat(2000)).await;
    alice.recv_type("chat").await;
    alice.recv_type("chat").await;
    let (_, page) = server
        .get_json("/api/rooms/r/messages?limit=1&before=2")
        .await;
    assert_eq!((ids(&page), &page["more"]), (vec![1], &Value::Bool(false)));
    let (_, page) = server.get_json("/api/rooms/r/messages").await;
    assert_eq!(ids(&page), vec![2], "the newest is kept whatever its size");
    assert_eq!(page["more"], true);
    server.shutdown().await;
}
