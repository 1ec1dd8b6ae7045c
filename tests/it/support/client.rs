//! A real WebSocket client that awaits the frame it expects under a timeout.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::TIMEOUT;
use std::time::Duration;

pub struct TestClient {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl TestClient {
    pub async fn connect(url: &str) -> TestClient {
        let (ws, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect timed out")
            .expect("websocket connects");
        TestClient { ws }
    }

    /// Connects from the loopback address `source` (e.g. 127.0.0.2), so the server sees another
    /// client address.
    pub async fn connect_from(url: &str, source: std::net::IpAddr) -> TestClient {
        Self::connect_socket(url, |socket| socket.bind((source, 0).into()).unwrap()).await
    }

    /// Connects with a receive buffer of a few kilobytes (no autotuning), for a client that will
    /// not read: its socket fills after a few frames instead of tens of megabytes.
    pub async fn connect_small_buffer(url: &str) -> TestClient {
        Self::connect_socket(url, |socket| socket.set_recv_buffer_size(4096).unwrap()).await
    }

    async fn connect_socket(
        url: &str,
        configure: impl FnOnce(&tokio::net::TcpSocket),
    ) -> TestClient {
        let uri: tokio_tungstenite::tungstenite::http::Uri = url.parse().unwrap();
        let target: std::net::SocketAddr =
            format!("{}:{}", uri.host().unwrap(), uri.port_u16().unwrap())
                .parse()
                .unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        configure(&socket);
        let connect = async {
            let stream = socket.connect(target).await.unwrap();
            tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)).await
        };
        let (ws, _) = tokio::time::timeout(TIMEOUT, connect)
            .await
            .expect("connect timed out")
            .expect("websocket connects");
        TestClient { ws }
    }

    pub async fn send(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_text(&mut self, raw: &str) {
        self.ws
            .send(Message::text(raw.to_string()))
            .await
            .expect("send");
    }

    /// The next text frame, parsed; panics after [`TIMEOUT`].
    pub async fn recv(&mut self) -> Value {
        self.recv_within(TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("no frame within {TIMEOUT:?}"))
    }

    /// The next text frame, or `None` if none arrives within `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            match next {
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(&text).expect("server sends JSON"))
                }
                Some(Ok(Message::Close(frame))) => panic!("connection closed: {frame:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("websocket error: {e}"),
                None => panic!("connection ended"),
            }
        }
    }

    /// Skips frames until one of type `ty` arrives.
    pub async fn recv_type(&mut self, ty: &str) -> Value {
        loop {
            let frame = self.recv().await;
            if frame["type"] == ty {
                return frame;
            }
        }
    }

    /// Joins `room` and returns the presence frame that completes the join.
    pub async fn join(&mut self, room: &str) -> Value {
        self.send(json!({"type": "join", "room": room})).await;
        self.recv_type("presence").await
    }

    pub async fn chat(&mut self, room: &str, text: &str) {
        self.send(json!({"type": "chat", "room": room, "text": text}))
            .await;
    }

    /// Waits for the server to close the connection; returns the close frame's code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("connection not closed within {TIMEOUT:?}"),
                Ok(Some(Ok(Message::Close(Some(frame))))) => {
                    return (u16::from(frame.code), frame.reason.to_string())
                }
                Ok(Some(Ok(Message::Close(None)))) => return (1005, String::new()),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => panic!("expected a close frame, got error {e}"),
                Ok(None) => panic!("expected a close frame, stream ended"),
            }
        }
    }
}
