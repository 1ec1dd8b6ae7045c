//! Chat text hygiene: text passes through as the sender wrote it, except for the few code points
//! that can hurt *other* people's screens — terminal escapes, bidi overrides that reorder what
//! follows, "Zalgo" stacks of combining marks. [`clean_text`] refuses those rather than
//! stripping them, so a message is never silently changed and the sender learns why it was not
//! sent.

use std::borrow::Cow;

use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use super::frames::json_string_len;
use super::names::{is_mark, U};
use super::{ErrorCode, ProtocolError};

/// Suggested `max_combining_run` for [`clean_text`].
///
/// Text may quote scholarly or liturgical writing: Biblical Hebrew with vowel points *and*
/// cantillation (up to 4–5 marks), Quranic Arabic (shadda + vowel + small high letters, ~4),
/// Sanskrit in Tibetan or Vedic Devanagari with accents (5–6). Eight covers those with room to
/// spare, while Zalgo text typically stacks 10–50 marks on each letter.
pub const DEFAULT_MAX_COMBINING_RUN: usize = 8;

/// A refused chat text, carrying the offending code point where there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// C0 (other than `\n`, `\t`), DEL, C1: ESC starts terminal escape sequences, NUL truncates
    /// C strings in logs and clients, CR rewrites a line in terminals.
    #[error("text must not contain control characters ({})", U(*.0))]
    Control(char),
    /// Embedding/override/isolate controls reorder the text *after* them ("Trojan Source"):
    /// `"\u{202E}gnp.exe"` displays as `exe.png`. LRM/RLM/ALM only affect neutrals next to them
    /// and are needed in mixed right-to-left text, so they stay.
    #[error("text must not contain bidirectional override or isolate controls ({})", U(*.0))]
    Bidi(char),
    #[error("text must not stack more than {max} combining marks on one character")]
    TooManyMarks { max: usize },
}

impl TextError {
    pub fn code(&self) -> &'static str {
        match self {
            TextError::Control(_) => "control_char",
            TextError::Bidi(_) => "bidi_control",
            TextError::TooManyMarks { .. } => "too_many_marks",
        }
    }
}

/// What a chat text must meet: MAX_TEXT_CHARS, MAX_TEXT_BYTES and MAX_COMBINING_MARKS.
#[derive(Debug, Clone, Copy)]
pub struct TextRules {
    pub max_chars: usize,
    /// As encoded in JSON, escapes counted, quotes not: what the text adds to every frame that
    /// carries it, so `"` or `\n` count twice.
    pub max_bytes: usize,
    pub max_combining_run: usize,
}

impl TextRules {
    /// The text to publish (NFC), or why it is refused: `empty_text`, `invalid_text` (see
    /// [`clean_text`]) or `text_too_long`. Lengths are those of the NFC form, which is what is
    /// stored and sent.
    pub fn check<'a>(&self, raw: &'a str) -> Result<Cow<'a, str>, ProtocolError> {
        if raw.trim().is_empty() {
            return Err(ProtocolError::new(
                ErrorCode::EmptyText,
                "chat text must not be empty",
            ));
        }
        let text = clean_text(raw, self.max_combining_run)
            .map_err(|e| ProtocolError::new(ErrorCode::InvalidText, e.to_string()))?;
        if text.len() > self.max_chars && text.chars().count() > self.max_chars {
            return Err(ProtocolError::new(
                ErrorCode::TextTooLong,
                format!("chat text is longer than {} characters", self.max_chars),
            ));
        }
        if json_string_len(&text) - 2 > self.max_bytes {
            return Err(ProtocolError::new(
                ErrorCode::TextTooLong,
                format!(
                    "chat text is longer than {} bytes as JSON (escapes count)",
                    self.max_bytes
                ),
            ));
        }
        Ok(text)
    }
}

/// Checks chat text and returns it NFC-normalised, borrowed when nothing had to change.
///
/// Refuses (never strips, so a message is never altered behind the sender's back) C0/C1 control
/// characters other than `\n` and `\t`, DEL, the bidi embedding/override/isolate controls
/// U+202A–U+202E and U+2066–U+2069, and runs of more than `max_combining_run` combining marks on
/// one base character (use [`DEFAULT_MAX_COMBINING_RUN`]). Format characters such as ZWJ/ZWNJ
/// neither count towards nor break a run, so they cannot be used to restart a Zalgo stack.
/// Empty or over-long text is the caller's business.
///
/// **NFC, not NFKC:** NFC only merges canonically equivalent spellings (e + U+0301 = é), which
/// render identically, so the message looks exactly as sent but is stored, searched and counted
/// in one form; NFKC would change what people wrote (`x²` → `x2`, `①` → `1`). Marks are counted
/// on the NFC form, so decomposed Vietnamese is not penalised for its encoding.
///
/// Fast path: plain printable ASCII plus `\n`/`\t` is returned borrowed after one byte scan.
pub fn clean_text(raw: &str, max_combining_run: usize) -> Result<Cow<'_, str>, TextError> {
    if is_plain_ascii(raw.as_bytes()) {
        return Ok(Cow::Borrowed(raw));
    }
    for c in raw.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            return Err(TextError::Control(c));
        }
        if matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}') {
            return Err(TextError::Bidi(c));
        }
    }
    // Normalisation never introduces or removes a control or bidi character (they are all
    // starters without decompositions), so the scan above holds for the NFC form too.
    let text = if is_nfc_quick(raw.chars()) == IsNormalized::Yes {
        Cow::Borrowed(raw)
    } else {
        let nfc: String = raw.nfc().collect();
        if nfc == raw {
            Cow::Borrowed(raw)
        } else {
            Cow::Owned(nfc)
        }
    };
    let mut run = 0;
    for c in text.chars() {
        if is_mark(c) {
            run += 1;
            if run > max_combining_run {
                return Err(TextError::TooManyMarks {
                    max: max_combining_run,
                });
            }
        } else if run > 0 && c.general_category() != GeneralCategory::Format {
            // Looked up only right after a mark: the general-category table is a binary
            // search (~30 ns), `is_mark` a perfect hash (~4 ns).
            run = 0;
        }
    }
    Ok(text)
}

/// True if every byte is printable ASCII, `\n` or `\t`. Checked 32 bytes at a time without
/// early exit inside a block, which the compiler turns into SIMD compares.
fn is_plain_ascii(bytes: &[u8]) -> bool {
    let ok = |b: u8| (b' '..=b'~').contains(&b) | (b == b'\n') | (b == b'\t');
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        if !block.iter().fold(true, |acc, &b| acc & ok(b)) {
            return false;
        }
    }
    blocks.remainder().iter().all(|&b| ok(b))
}

#[cfg(test)]
#[path = "text_tests.rs"]
mod tests;
