//! One WebSocket client: connect (optionally from a chosen source address) and join.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::atomic::{AtomicUsize, Ordering},
    sync::Mutex,
    time::Duration,
};

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::{
    tungstenite::{self, protocol::WebSocketConfig, Message},
    WebSocketStream,
};

use crate::frame::{classify, history_len, Frame};
use crate::identity::Identity;

/// An open client connection.
pub type Ws = WebSocketStream<TcpStream>;

/// Small read buffers: tungstenite allocates the read buffer eagerly (128 KiB
/// by default), which at 19,000 connections would be 2.4 GB of mostly empty
/// memory in the generator. Chat frames are a few hundred bytes.
const READ_BUFFER: usize = 4 * 1024;

/// Why a connection or join attempt failed, as a short stable label for the
/// error table (`connect:refused`, `handshake:http-400`, `join:timeout`, …).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connect:{0}")]
    Connect(&'static str),
    #[error("handshake:{0}")]
    Handshake(String),
    #[error("join:{0}")]
    Join(String),
}

impl ClientError {
    fn from_io(e: &std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        Self::Connect(match e.kind() {
            ConnectionRefused => "refused",
            ConnectionReset => "reset",
            AddrNotAvailable | AddrInUse => "no-ephemeral-port",
            TimedOut => "timeout",
            _ if e.raw_os_error() == Some(libc::EMFILE) => "too-many-open-files",
            _ => "io",
        })
    }

    fn from_ws(e: tungstenite::Error) -> Self {
        match e {
            tungstenite::Error::Http(resp) => {
                Self::Handshake(format!("http-{}", resp.status().as_u16()))
            }
            tungstenite::Error::Io(io) => Self::from_io(&io),
            other => Self::Handshake(short_kind(&other).into()),
        }
    }
}

/// A stable one-word label for a tungstenite error.
pub fn short_kind(e: &tungstenite::Error) -> &'static str {
    use tungstenite::Error::*;
    match e {
        ConnectionClosed | AlreadyClosed => "closed",
        Io(_) => "io",
        Protocol(_) => "protocol",
        Capacity(_) => "capacity",
        WriteBufferFull(_) => "write-buffer-full",
        Utf8(_) => "utf8",
        Http(_) | HttpFormat(_) | Url(_) => "http",
        _ => "other",
    }
}

/// Opens connections to one server, spreading them over source addresses.
pub struct Connector {
    target: SocketAddr,
    url: String,
    sources: Vec<IpAddr>,
    next_source: AtomicUsize,
    config: WebSocketConfig,
    timeout: Duration,
    identity: Identity,
    /// With `--resume`: each user's latest resume ticket (from the server's `welcome`).
    tickets: Option<Mutex<HashMap<String, String>>>,
}

impl Connector {
    /// Resolves the server address once, so 19,000 connects do not mean 19,000 lookups.
    pub async fn new(url: &str, sources: Vec<IpAddr>, timeout: Duration) -> Result<Self> {
        let rest = url
            .strip_prefix("ws://")
            .context("only ws:// URLs are supported (no TLS in a loopback load test)")?;
        let authority = rest.split(['/', '?']).next().unwrap_or(rest);
        let hostport = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let target = tokio::net::lookup_host(&hostport)
            .await
            .with_context(|| format!("resolving {hostport}"))?
            .next()
            .with_context(|| format!("{hostport} resolves to no address"))?;
        if sources.iter().any(|s| s.is_ipv4() != target.is_ipv4()) {
            bail!("--source-addrs must be the same IP version as the server address {target}");
        }
        Ok(Self {
            target,
            url: url.to_string(),
            sources,
            next_source: AtomicUsize::new(0),
            config: WebSocketConfig::default()
                .read_buffer_size(READ_BUFFER)
                .write_buffer_size(0),
            timeout,
            identity: Identity::Name,
            tickets: None,
        })
    }

    /// The server's address.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Connects as `identity` says.
    pub fn with_identity(mut self, identity: Identity) -> Self {
        self.identity = identity;
        self
    }

    /// Asks for resume tickets and presents each user's on its next connect, so reconnects are
    /// admitted ahead of new arrivals.
    pub fn with_resume(mut self) -> Self {
        self.tickets = Some(Mutex::default());
        self
    }

    /// The query parameters that say who `user` is (and which ticket it resumes with).
    fn credentials(&self, user: &str) -> Result<String, ClientError> {
        let mut query = format!("user={user}");
        if let Some(token) = self.identity.token_for(user) {
            let token = token.map_err(|_| ClientError::Handshake("mint-token".into()))?;
            query.push_str("&token=");
            query.push_str(&token);
        }
        if let Some(tickets) = &self.tickets {
            let tickets = tickets.lock().expect("not poisoned");
            query.push_str("&resume=");
            query.push_str(tickets.get(user).map_or("", String::as_str));
        }
        Ok(query)
    }

    /// With `--resume`, the server's first frame is `welcome` with the next ticket.
    async fn take_ticket(&self, ws: &mut Ws, user: &str) -> Result<(), ClientError> {
        let Some(tickets) = &self.tickets else {
            return Ok(());
        };
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let welcome: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|_| ClientError::Handshake("welcome-not-json".into()))?;
                let ticket = welcome["resume"]
                    .as_str()
                    .ok_or_else(|| ClientError::Handshake("no-welcome".into()))?;
                tickets
                    .lock()
                    .expect("not poisoned")
                    .insert(user.to_string(), ticket.to_string());
                Ok(())
            }
            _ => Err(ClientError::Handshake("no-welcome".into())),
        }
    }

    /// TCP connect + WebSocket upgrade as `user`.
    pub async fn connect(&self, user: &str) -> Result<Ws, ClientError> {
        let attempt = async {
            let stream = self.tcp().await.map_err(|e| ClientError::from_io(&e))?;
            let sep = if self.url.contains('?') { '&' } else { '?' };
            let request = format!("{}{sep}{}", self.url, self.credentials(user)?);
            let (mut ws, _resp) =
                tokio_tungstenite::client_async_with_config(request, stream, Some(self.config))
                    .await
                    .map_err(ClientError::from_ws)?;
            self.take_ticket(&mut ws, user).await?;
            Ok(ws)
        };
        tokio::time::timeout(self.timeout, attempt)
            .await
            .unwrap_or(Err(ClientError::Connect("timeout")))
    }

    async fn tcp(&self) -> std::io::Result<TcpStream> {
        let socket = if self.target.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if !self.sources.is_empty() {
            let i = self.next_source.fetch_add(1, Ordering::Relaxed) % self.sources.len();
            bind_no_port(&socket);
            socket.bind(SocketAddr::new(self.sources[i], 0))?;
        }
        let stream = socket.connect(self.target).await?;
        // Chat frames are small and latency is what we measure: no Nagle delay.
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// Lets the kernel pick the source port at connect time (per destination)
/// rather than at bind time (globally unique), so a bound source address is
/// not limited to one connection per ephemeral port across all destinations.
fn bind_no_port(socket: &TcpSocket) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let one: libc::c_int = 1;
        // SAFETY: valid fd, valid pointer/length for an int option. Failure
        // only means the older bind-time port allocation is used.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
}

/// The client frame for `{"type":"join","room":…}`; room names are ours and need no escaping.
pub fn join_frame(room: &str) -> String {
    format!(r#"{{"type":"join","room":"{room}"}}"#)
}

pub fn leave_frame(room: &str) -> String {
    format!(r#"{{"type":"leave","room":"{room}"}}"#)
}

/// Appends a chat frame for `text` to `out` (cleared first).
pub fn chat_frame(out: &mut String, room: &str, text: &str) {
    out.clear();
    out.push_str(r#"{"type":"chat","room":""#);
    out.push_str(room);
    out.push_str(r#"","text":""#);
    out.push_str(text);
    out.push_str(r#""}"#);
}

/// What a join's reply carried besides the acknowledgement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JoinReply {
    /// Messages in the `history` frame for the room, if one came before our presence.
    pub history: Option<u64>,
}

/// Joins `room` and waits for our `presence` in it, the join acknowledgement.
/// A `history` frame for the room on the way is noted; frames for other rooms
/// and others' events (`join`, `leave`) are skipped.
pub async fn join(ws: &mut Ws, room: &str, timeout: Duration) -> Result<JoinReply, ClientError> {
    ws.send(Message::text(join_frame(room)))
        .await
        .map_err(|e| ClientError::Join(format!("send-{}", short_kind(&e))))?;
    let mut reply = JoinReply::default();
    let wait = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => match classify(t.as_bytes()) {
                    Frame::Presence { room: r } if r.is_none_or(|r| r == room.as_bytes()) => {
                        return Ok(reply)
                    }
                    Frame::History { room: r } if r.is_none_or(|r| r == room.as_bytes()) => {
                        reply.history = Some(history_len(t.as_bytes()));
                    }
                    Frame::Error { code, .. } => {
                        let code = code.map_or("unknown".into(), |c| {
                            String::from_utf8_lossy(c).into_owned()
                        });
                        return Err(ClientError::Join(format!("server-{code}")));
                    }
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None => {
                    return Err(ClientError::Join("closed".into()))
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(ClientError::Join(short_kind(&e).into())),
            }
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .unwrap_or(Err(ClientError::Join("timeout".into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_valid_json() {
        let v: serde_json::Value = serde_json::from_str(&join_frame("lt-a-1")).unwrap();
        assert_eq!(v["type"], "join");
        assert_eq!(v["room"], "lt-a-1");
        let v: serde_json::Value = serde_json::from_str(&leave_frame("r")).unwrap();
        assert_eq!(v["type"], "leave");
        let mut s = String::from("junk");
        chat_frame(&mut s, "r", "lt 1 2 3 xx");
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(
            (v["type"].as_str(), v["text"].as_str()),
            (Some("chat"), Some("lt 1 2 3 xx"))
        );
    }

    #[tokio::test]
    async fn refused_connects_have_a_kind() {
        // Bind then drop to find a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = Connector::new(
            &format!("ws://127.0.0.1:{port}/ws"),
            vec!["127.0.0.1".parse().unwrap()],
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        let err = c.connect("u").await.unwrap_err();
        assert_eq!(err.to_string(), "connect:refused");
        assert!(Connector::new("wss://x/ws", vec![], Duration::from_secs(1))
            .await
            .is_err());
    }
}
