//! A WebSocket upgrade with chosen headers, and what it got: connected (with the selected
//! subprotocol) or refused (status, `Retry-After`, JSON body).

use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Error as WsError;

use super::{TestClient, TestServer, TIMEOUT};

/// What an upgrade attempt got: connected (with the response's selected subprotocol), or
/// refused with a status, headers and JSON body.
pub enum Outcome {
    Connected(Box<TestClient>, Option<String>),
    Refused(u16, Option<String>, Value),
}

impl Outcome {
    #[track_caller]
    pub fn refused(self) -> (u16, Option<String>, Value) {
        match self {
            Outcome::Refused(status, retry_after, body) => (status, retry_after, body),
            Outcome::Connected(..) => panic!("expected a refusal, got a connection"),
        }
    }

    #[track_caller]
    pub fn connected(self) -> (Box<TestClient>, Option<String>) {
        match self {
            Outcome::Connected(client, protocol) => (client, protocol),
            Outcome::Refused(status, _, body) => panic!("refused with {status}: {body}"),
        }
    }
}

/// Opens `/ws{query}` with extra request headers.
pub async fn upgrade(server: &TestServer, query: &str, headers: &[(&str, &str)]) -> Outcome {
    let mut request = format!("ws://{}/ws{query}", server.addr)
        .into_client_request()
        .unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let connect = tokio_tungstenite::connect_async(request);
    match tokio::time::timeout(TIMEOUT, connect)
        .await
        .expect("answered")
    {
        Ok((ws, response)) => {
            let protocol = response
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap().to_string());
            Outcome::Connected(Box::new(TestClient { ws }), protocol)
        }
        Err(WsError::Http(response)) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            let body = response.body().as_deref().unwrap_or_default();
            let json = serde_json::from_slice(body).expect("refusals are JSON");
            Outcome::Refused(status, retry_after, json)
        }
        Err(e) => panic!("upgrade failed: {e}"),
    }
}
