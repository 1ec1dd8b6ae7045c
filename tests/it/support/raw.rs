//! What a well-behaved client would not do: upgrades written by hand, and a database locked
//! by another process.

use std::net::SocketAddr;
use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends a WebSocket upgrade request for `path` by hand, with `extra` header lines (each ending
/// in `\r\n`) and `then` bytes right behind it, and returns the stream with the response head
/// (status line and headers) read — nothing after it.
pub async fn raw_upgrade(
    addr: SocketAddr,
    path: &str,
    extra: &str,
    then: &[u8],
) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut bytes = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
    .into_bytes();
    bytes.extend_from_slice(then);
    tcp.write_all(&bytes).await.unwrap();
    let head = read_response_head(&mut tcp).await;
    (tcp, head)
}

/// Reads an HTTP response head byte by byte, so nothing after it is consumed.
async fn read_response_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Holds a write lock on the SQLite file at `db` (as another process would) until dropped or
/// [`SqliteLock::release`]d.
pub async fn lock_sqlite(db: &Path) -> SqliteLock {
    use sqlx::Connection;
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db);
    let mut connection = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut connection)
        .await
        .unwrap();
    SqliteLock { connection }
}

pub struct SqliteLock {
    connection: sqlx::SqliteConnection,
}

impl SqliteLock {
    pub async fn release(mut self) {
        sqlx::query("COMMIT")
            .execute(&mut self.connection)
            .await
            .unwrap();
    }
}

/// Writes `request` on a fresh connection and reads until the server closes it (or resets it:
/// the error ends the read too), under [`super::TIMEOUT`]. Returns what was read.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    // The server may close while the request is still being written; that is an answer too.
    let _ = tcp.write_all(request).await;
    let mut response = Vec::new();
    let read = tokio::time::timeout(super::TIMEOUT, async {
        let mut chunk = [0u8; 4096];
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => response.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server did not close the connection");
    String::from_utf8_lossy(&response).into_owned()
}

/// An HTTP client whose connections come from `source` (e.g. 127.0.0.2), so the server sees
/// another client address.
pub fn http_client_from(source: std::net::IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(source)
        .build()
        .unwrap()
}
