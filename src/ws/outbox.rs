//! What a connection has queued to write, oldest first: shared frames by reference, and the
//! control frames (ping, pong, close) tungstenite produces.
//!
//! A flood of pings from a client that never reads must not grow the outbox: a pong waiting to
//! be written is replaced by the newest one (RFC 6455 §5.5.3 allows answering only the most
//! recent ping), so at most one pong is ever queued.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::time::Instant;

use tokio::net::TcpStream;

use super::Frame;

/// Frames handed to one `writev`, well under `IOV_MAX` (1024).
const MAX_SLICES_PER_WRITE: usize = 64;

/// Outbox slots kept after a drain; a burst that needed more gives the rest back.
const SLOTS_KEPT: usize = 16;

/// Opcode byte (with FIN) of a pong frame.
const FIN_PONG: u8 = 0x8A;

/// Something waiting to be written.
#[derive(Debug)]
enum Outgoing {
    /// A server frame, shared with every other connection that has it queued.
    Frame(Frame),
    /// A frame a room published: when it is written, its latency since publishing is sampled.
    RoomFrame(Frame),
    /// Bytes of one control frame, framed by tungstenite.
    Control(Box<[u8]>),
}

impl Outgoing {
    fn bytes(&self) -> &[u8] {
        match self {
            Outgoing::Frame(frame) | Outgoing::RoomFrame(frame) => frame.wire(),
            Outgoing::Control(bytes) => bytes,
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Outbox {
    queue: VecDeque<Outgoing>,
    /// Bytes of the front item already written.
    front_written: usize,
    /// Bytes queued, not counting `front_written`.
    bytes: usize,
    /// Items ever removed from the front, so a position survives pops (see `pong_at`).
    popped: u64,
    /// Absolute position (`popped` + index) of the queued pong, if one waits unwritten.
    pong_at: Option<u64>,
}

impl Outbox {
    pub(super) fn push_frame(&mut self, frame: Frame) {
        self.push(Outgoing::Frame(frame));
    }

    pub(super) fn push_room_frame(&mut self, frame: Frame) {
        self.push(Outgoing::RoomFrame(frame));
    }

    /// Queues control frames as tungstenite wrote them: one or more whole frames, each a 2-byte
    /// header (control payloads are under 126 bytes, server frames unmasked) and its payload.
    pub(super) fn push_control(&mut self, mut bytes: &[u8]) {
        while bytes.len() >= 2 {
            debug_assert!(
                bytes[0] & 0x08 != 0 && bytes[1] < 126,
                "tungstenite writes only whole, short control frames here"
            );
            let len = (2 + usize::from(bytes[1] & 0x7F)).min(bytes.len());
            let (frame, rest) = bytes.split_at(len);
            if frame[0] == FIN_PONG && self.replace_pong(frame) {
                bytes = rest;
                continue;
            }
            if frame[0] == FIN_PONG {
                self.pong_at = Some(self.popped + self.queue.len() as u64);
            }
            self.push(Outgoing::Control(frame.into()));
            bytes = rest;
        }
    }

    /// Replaces the waiting pong's payload with a newer one; false if none waits unwritten.
    fn replace_pong(&mut self, frame: &[u8]) -> bool {
        let Some(at) = self.pong_at else {
            return false;
        };
        let index = (at - self.popped) as usize;
        if index == 0 && self.front_written > 0 {
            return false; // already partly on the wire
        }
        if let Some(Outgoing::Control(old)) = self.queue.get_mut(index) {
            self.bytes = self.bytes - old.len() + frame.len();
            *old = frame.into();
            return true;
        }
        false
    }

    fn push(&mut self, item: Outgoing) {
        self.bytes += item.bytes().len();
        self.queue.push_back(item);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Bytes queued and not yet written.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Items queued.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }

    /// One write of as much as fits in [`MAX_SLICES_PER_WRITE`] buffers. Returns when the
    /// oldest room frame it completed was published, if it completed one.
    pub(super) fn write_to(&mut self, stream: &TcpStream) -> io::Result<Option<Instant>> {
        if self.queue.is_empty() {
            return Ok(None);
        }
        let written = if self.queue.len() == 1 {
            // One frame: a plain write, cheaper in the kernel than a vectored one.
            stream.try_write(&self.queue[0].bytes()[self.front_written..])?
        } else {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES_PER_WRITE];
            let count = self.queue.len().min(MAX_SLICES_PER_WRITE);
            for (slice, item) in slices.iter_mut().zip(&self.queue) {
                *slice = IoSlice::new(item.bytes());
            }
            // Only the front item can be partly written.
            slices[0] = IoSlice::new(&self.queue[0].bytes()[self.front_written..]);
            stream.try_write_vectored(&slices[..count])?
        };
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        Ok(self.consume(written))
    }

    /// Drops what a write took from the front; returns when the oldest room frame it completed
    /// was published.
    fn consume(&mut self, mut written: usize) -> Option<Instant> {
        self.bytes -= written;
        let mut oldest = None;
        while let Some(front) = self.queue.front() {
            let left = front.bytes().len() - self.front_written;
            if written < left {
                self.front_written += written;
                return oldest;
            }
            written -= left;
            self.front_written = 0;
            if let (None, Outgoing::RoomFrame(frame)) = (oldest, front) {
                oldest = Some(frame.built_at());
            }
            self.queue.pop_front();
            if self.pong_at == Some(self.popped) {
                self.pong_at = None;
            }
            self.popped += 1;
        }
        self.queue.shrink_to(SLOTS_KEPT);
        oldest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pong(payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![FIN_PONG, payload.len() as u8];
        frame.extend_from_slice(payload);
        frame
    }

    #[test]
    fn a_waiting_pong_is_replaced_by_the_newest() {
        let mut outbox = Outbox::default();
        outbox.push_frame(Frame::from_text("hello", 0));
        for i in 0..1000u32 {
            outbox.push_control(&pong(&i.to_be_bytes()));
        }
        assert_eq!(outbox.queue.len(), 2, "one frame and one pong");
        assert_eq!(outbox.bytes(), 7 + 6);
        assert_eq!(outbox.queue[1].bytes(), &pong(&999u32.to_be_bytes())[..]);
    }

    #[test]
    fn several_control_frames_in_one_write_are_split() {
        let mut outbox = Outbox::default();
        let mut bytes = pong(b"a");
        bytes.extend_from_slice(&[0x88, 2, 0x03, 0xE8]); // close 1000
        outbox.push_control(&bytes);
        assert_eq!(outbox.queue.len(), 2);
        outbox.push_control(&pong(b"b"));
        assert_eq!(outbox.queue.len(), 2, "the pong was replaced, not added");
        assert_eq!(outbox.queue[0].bytes(), &pong(b"b")[..]);
    }
}
