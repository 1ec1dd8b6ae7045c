//! A server text frame encoded once — WebSocket header and payload in one buffer — and shared by
//! every connection that sends it.
//!
//! Server frames are never masked, so their bytes are the same for every subscriber: a room
//! encodes a message once and each connection writes the very same bytes (cloning a [`Frame`]
//! clones a reference). What the payload means is the protocol's business, not this module's.

use std::sync::Arc;
use std::time::Instant;

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

/// One encoded text frame, shared by reference.
#[derive(Debug, Clone)]
pub struct Frame(Arc<EncodedFrame>);

#[derive(Debug)]
struct EncodedFrame {
    /// Room for the longest header, the header right-aligned in it from `start`, then the
    /// payload: one contiguous buffer, so a lone frame is one plain `write` (measurably cheaper in
    /// the kernel than a two-part `writev`), and JSON can be serialised straight into it.
    wire: Vec<u8>,
    start: u8,
    /// The room sequence number of the message this frame carries, 0 for frames outside the
    /// sequence (presence, errors, …). Lets a connection skip what it has already sent.
    seq: u64,
    /// When the frame was built, to measure fan-out latency.
    built_at: Instant,
}

impl Frame {
    /// A buffer to write a payload into: [`FrameHeader::MAX_LEN`] bytes of room for the header,
    /// then `capacity` bytes for the payload. Finish it with [`Frame::from_buffer`].
    pub fn buffer(capacity: usize) -> Vec<u8> {
        let mut wire = Vec::with_capacity(FrameHeader::MAX_LEN + capacity);
        wire.resize(FrameHeader::MAX_LEN, 0);
        wire
    }

    /// Frames the payload written after the header room of a [`Frame::buffer`].
    pub fn from_buffer(mut wire: Vec<u8>, seq: u64) -> Frame {
        debug_assert!(wire.len() >= FrameHeader::MAX_LEN, "not a Frame::buffer");
        let header = FrameHeader::text(wire.len() - FrameHeader::MAX_LEN);
        let start = FrameHeader::MAX_LEN - header.as_bytes().len();
        wire[start..FrameHeader::MAX_LEN].copy_from_slice(header.as_bytes());
        Frame(Arc::new(EncodedFrame {
            wire,
            start: start as u8,
            seq,
            built_at: Instant::now(),
        }))
    }

    /// A frame carrying `text`.
    pub fn from_text(text: &str, seq: u64) -> Frame {
        let mut wire = Frame::buffer(text.len());
        wire.extend_from_slice(text.as_bytes());
        Frame::from_buffer(wire, seq)
    }

    /// The payload, as text.
    pub fn text(&self) -> &str {
        // Frames are only built from `&str` or by serde_json, which writes UTF-8.
        std::str::from_utf8(self.payload()).expect("frame payloads are UTF-8")
    }

    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.0.wire[FrameHeader::MAX_LEN..]
    }

    /// The whole frame as it goes on the wire: header, then payload.
    pub fn wire(&self) -> &[u8] {
        &self.0.wire[usize::from(self.0.start)..]
    }

    /// The room sequence number of the message carried, 0 if none.
    pub fn seq(&self) -> u64 {
        self.0.seq
    }

    /// When the frame was built.
    pub fn built_at(&self) -> Instant {
        self.0.built_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::{
        Frame as WsFrame, FrameHeader as WsHeader,
    };

    /// Lengths from each class of the length field: 7-bit, 16-bit, 64-bit (whose top bit must be
    /// 0), weighted towards the class boundaries.
    fn payload_len() -> impl Strategy<Value = usize> {
        prop_oneof![
            0usize..126,
            126usize..=65_535,
            65_536usize..=(i64::MAX as usize),
            prop::sample::select(vec![
                0,
                1,
                125,
                126,
                127,
                65_535,
                65_536,
                65_537,
                i64::MAX as usize
            ]),
        ]
    }

    proptest! {
        /// Our header for every length is byte for byte tungstenite's, and tungstenite reads it
        /// back as one final, unmasked text frame of that length.
        #[test]
        fn headers_match_tungstenite_in_every_length_class(len in payload_len()) {
            let ours = FrameHeader::text(len);
            let header = WsHeader {
                opcode: OpCode::Data(Data::Text),
                ..WsHeader::default()
            };
            let mut expected = Vec::new();
            header.format(len as u64, &mut expected).unwrap();
            prop_assert_eq!(ours.as_bytes(), &expected[..]);
            prop_assert_eq!(ours.as_bytes().len(), header.len(len as u64));

            let mut cursor = std::io::Cursor::new(ours.as_bytes());
            let (parsed, parsed_len) = WsHeader::parse(&mut cursor).unwrap().unwrap();
            prop_assert_eq!(parsed_len, len as u64);
            prop_assert!(parsed.is_final && parsed.mask.is_none());
            prop_assert_eq!(parsed.opcode, OpCode::Data(Data::Text));
            prop_assert_eq!(cursor.position() as usize, ours.as_bytes().len());
        }
    }

    /// Our headers must be exactly what tungstenite writes for the same payload.
    #[test]
    fn headers_match_tungstenite() {
        for len in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let payload = "x".repeat(len);
            let frame = WsFrame::message(payload.clone(), OpCode::Data(Data::Text), true);
            let mut expected = Vec::new();
            frame.format(&mut expected).unwrap();
            assert_eq!(
                Frame::from_text(&payload, 0).wire(),
                expected,
                "{len} bytes"
            );
        }
    }
}
