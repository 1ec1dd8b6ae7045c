//! The chat text the generator sends, and how a receiver reads it back.
//!
//! Every message carries its publisher, a per-publisher sequence number and the
//! *scheduled* send time (Unix nanoseconds) in plain ASCII:
//!
//! ```text
//! lt <publisher> <seq> <scheduled_unix_nanos> xxxxxxxx…
//! ```
//!
//! padded with `x` to the requested size. Plain ASCII digits and letters need no
//! JSON escaping, so the text appears verbatim inside the server's chat frame and
//! a receiver can decode it from the raw bytes without a JSON parser.

/// What a receiver learns from a message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Global publisher index (unique across rooms within a run).
    pub publisher: u32,
    /// Per-publisher sequence number, from 0.
    pub seq: u64,
    /// When the message was *scheduled* to be sent, in Unix nanoseconds.
    pub scheduled_unix_nanos: u64,
}

/// Prefix that marks a generator message; anything else in a room is ignored.
pub const MAGIC: &[u8] = b"lt ";

/// Writes the text for `stamp` into `buf` (cleared first), padded with `x` to
/// `size` bytes. The header is never truncated, so tiny sizes yield a slightly
/// longer text rather than an undecodable one.
pub fn encode(buf: &mut String, stamp: Stamp, size: usize) {
    use std::fmt::Write;
    buf.clear();
    // Writing to a String cannot fail.
    let _ = write!(
        buf,
        "lt {} {} {}",
        stamp.publisher, stamp.seq, stamp.scheduled_unix_nanos
    );
    if buf.len() < size {
        buf.push(' ');
        while buf.len() < size {
            buf.push('x');
        }
    }
}

/// Reads a stamp back from a text; `None` for any text the generator did not write.
pub fn decode(text: &[u8]) -> Option<Stamp> {
    let rest = text.strip_prefix(MAGIC)?;
    let mut fields = rest.splitn(4, |&b| b == b' ');
    let publisher = parse_u64(fields.next()?)?;
    let seq = parse_u64(fields.next()?)?;
    let scheduled_unix_nanos = parse_u64(fields.next()?)?;
    Some(Stamp {
        publisher: u32::try_from(publisher).ok()?,
        seq,
        scheduled_unix_nanos,
    })
}

/// Parses a non-empty run of ASCII digits; cheaper than `str::parse` because it
/// skips UTF-8 validation, and this runs once per delivery.
pub fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: Stamp = Stamp {
        publisher: 7,
        seq: 42,
        scheduled_unix_nanos: 1_732_000_000_123_456_789,
    };

    #[test]
    fn round_trips_and_pads_to_size() {
        let mut buf = String::new();
        encode(&mut buf, STAMP, 100);
        assert_eq!(buf.len(), 100);
        assert!(buf.starts_with("lt 7 42 1732000000123456789 xxx"));
        assert_eq!(decode(buf.as_bytes()), Some(STAMP));
    }

    #[test]
    fn small_sizes_keep_the_header() {
        let mut buf = String::new();
        encode(&mut buf, STAMP, 5);
        assert_eq!(buf, "lt 7 42 1732000000123456789");
        assert_eq!(decode(buf.as_bytes()), Some(STAMP));
    }

    #[test]
    fn rejects_foreign_texts() {
        assert_eq!(decode(b"hello"), None);
        assert_eq!(decode(b"lt x 1 2"), None);
        assert_eq!(decode(b"lt 1 2"), None);
        assert_eq!(decode(b"lt 1 2 "), None);
        assert_eq!(
            decode(b"lt 99999999999 1 2"),
            None,
            "publisher overflows u32"
        );
    }

    #[test]
    fn parse_u64_edges() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"1a"), None);
    }
}
