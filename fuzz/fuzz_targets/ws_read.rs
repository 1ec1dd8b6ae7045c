//! The WebSocket read path as a connection runs it: tungstenite's server-side state machine with
//! the configuration admission gives every connection (read buffer, message and frame limits),
//! reading from a non-blocking source in chunks, bytes the HTTP parser read past the upgrade
//! handed over first (as `WsConnection::new` does), control replies written to a sink, and every
//! text message through the client-message decoder.
//!
//! Input layout: byte 0 = how many of the following bytes were "read past the upgrade", byte 1 =
//! the chunk size of each read (1..=256), the rest = what the client sent.

#![no_main]

use std::io::{self, Read, Write};
use std::sync::OnceLock;

use chatterbox::admission::Admission;
use chatterbox::protocol::parse_client_message;
use libfuzzer_sys::fuzz_target;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tokio_tungstenite::tungstenite::{Error, Message};

/// A socket with `input` to read, at most `chunk` bytes a call, then WouldBlock; writes go to
/// a sink (the connection's outbox).
struct Socket<'a> {
    input: &'a [u8],
    chunk: usize,
    written: usize,
}

impl Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.chunk).min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

impl Write for Socket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The configuration every connection gets, built once (the configuration parses the command
/// line).
fn ws_config() -> WebSocketConfig {
    static CONFIG: OnceLock<WebSocketConfig> = OnceLock::new();
    *CONFIG.get_or_init(|| {
        let config = chatterbox::Config::default();
        Admission::new(&config, &[0; 32])
            .expect("open mode")
            .ws_config()
    })
}

fuzz_target!(|data: &[u8]| {
    let [pre, chunk, rest @ ..] = data else {
        return;
    };
    let ws_config = ws_config();
    let (pre_read, input) = rest.split_at(usize::from(*pre).min(rest.len()));
    let mut context = if pre_read.is_empty() {
        WebSocketContext::new(Role::Server, Some(ws_config))
    } else {
        WebSocketContext::from_partially_read(pre_read.to_vec(), Role::Server, Some(ws_config))
    };
    let mut socket = Socket {
        input,
        chunk: usize::from(*chunk).clamp(1, 256),
        written: 0,
    };
    // Bounded: every successful read consumes input or a buffered frame.
    for _ in 0..=data.len() {
        match context.read(&mut socket) {
            Ok(message) => {
                let _ = context.flush(&mut socket);
                if let Message::Text(text) = message {
                    let _ = parse_client_message(&text);
                }
            }
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => break,
        }
    }
});
