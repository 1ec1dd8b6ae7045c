//! The server side of WebSocket, shaped for fan-out.
//!
//! Reading uses tungstenite's protocol state machine (masking, fragmentation, control frames,
//! UTF-8 and size limits). Writing does not: a server frame is never masked, so its bytes — header
//! and JSON — are the same for every subscriber. [`FrameHeader`] is encoded once per message next
//! to the JSON, and each connection writes the shared bytes straight from the room's frame (one
//! `write`, or one `writev` for a batch): no per-subscriber copy and no per-connection write buffer that keeps the size
//! of the largest frame it ever sent (tungstenite's does, which costs idle connections kilobytes).
//!
//! - [`upgrade`]: the HTTP/1.1 handshake, as an axum extractor, handing over the raw TCP stream.
//! - [`connection`]: one upgraded connection: `recv`, `queue`, `flush`, `queue_close`, `linger`.

pub mod connection;
pub mod upgrade;

pub use connection::WsConnection;
pub use upgrade::WsUpgrade;

/// Opcode of a text frame, with FIN set.
const FIN_TEXT: u8 = 0x81;

/// The header of an unmasked, unfragmented text frame: 2, 4 or 10 bytes.
#[derive(Debug, Clone, Copy)]
pub struct FrameHeader {
    bytes: [u8; FrameHeader::MAX_LEN],
    len: u8,
}

impl FrameHeader {
    /// The longest header: 2 bytes, then an 8-byte length.
    pub const MAX_LEN: usize = 10;

    /// The header for a text frame carrying `payload_len` bytes.
    pub fn text(payload_len: usize) -> Self {
        let mut bytes = [0u8; FrameHeader::MAX_LEN];
        bytes[0] = FIN_TEXT;
        let len = if payload_len < 126 {
            bytes[1] = payload_len as u8;
            2
        } else if let Ok(short) = u16::try_from(payload_len) {
            bytes[1] = 126;
            bytes[2..4].copy_from_slice(&short.to_be_bytes());
            4
        } else {
            bytes[1] = 127;
            bytes[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
            10
        };
        FrameHeader { bytes, len }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;

    /// Our headers must be exactly what tungstenite writes for the same payload.
    #[test]
    fn headers_match_tungstenite() {
        for len in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let payload = vec![b'x'; len];
            let frame = Frame::message(payload.clone(), OpCode::Data(Data::Text), true);
            let mut expected = Vec::new();
            frame.format(&mut expected).unwrap();
            let mut ours = FrameHeader::text(len).as_bytes().to_vec();
            ours.extend_from_slice(&payload);
            assert_eq!(ours, expected, "payload of {len} bytes");
        }
    }
}
