use std::borrow::Cow;

use super::*;

#[test]
fn text_fast_path_borrows() {
    for text in ["", "hello", "line one\nline two\tcol", &"x".repeat(5000)] {
        assert!(matches!(clean_text(text, 8), Ok(Cow::Borrowed(t)) if t == text));
    }
}

#[test]
fn text_keeps_unicode_and_normalises_to_nfc() {
    assert!(matches!(
        clean_text("Grüße, 山田 👩‍💻 ❤️", 8),
        Ok(Cow::Borrowed(_))
    ));
    // Implicit direction marks stay: they are needed in mixed RTL/LTR text.
    assert!(clean_text("שלום\u{200F} abc \u{200E}", 8).is_ok());
    let nfd = "Jose\u{0301} says hi";
    match clean_text(nfd, 8).unwrap() {
        Cow::Owned(s) => assert_eq!(s, "José says hi"),
        Cow::Borrowed(s) => panic!("not normalised: {s:?}"),
    }
    // NFC only, not NFKC: compatibility characters are kept.
    assert_eq!(clean_text("x² ﬁ ａ", 8).unwrap(), "x² ﬁ ａ");
}

#[test]
fn text_refuses_controls() {
    for c in [
        '\0', '\u{7}', '\u{8}', '\r', '\u{B}', '\u{C}', '\u{1B}', '\u{7F}', '\u{80}', '\u{9B}',
        '\u{9F}',
    ] {
        assert_eq!(
            clean_text(&format!("hi {c}[31m there"), 8),
            Err(TextError::Control(c)),
            "{c:?}"
        );
        assert_eq!(
            clean_text(&format!("é {c}"), 8),
            Err(TextError::Control(c)),
            "{c:?}"
        );
    }
    let e = clean_text("\u{1B}[2J", 8).unwrap_err();
    assert_eq!(
        e.to_string(),
        "text must not contain control characters (U+001B)"
    );
    assert_eq!(e.code(), "control_char");
}

#[test]
fn text_refuses_bidi_overrides_and_isolates() {
    for c in [
        '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}',
        '\u{2068}', '\u{2069}',
    ] {
        assert_eq!(
            clean_text(&format!("file{c}gnp.exe"), 8),
            Err(TextError::Bidi(c)),
            "{c:?}"
        );
    }
    assert_eq!(
        clean_text("\u{202E}evil", 8).unwrap_err().code(),
        "bidi_control"
    );
}

#[test]
fn text_combining_runs() {
    let eight = format!("q{}", "\u{0301}".repeat(8));
    assert!(clean_text(&eight, 8).is_ok());
    let nine = format!("q{}", "\u{0301}".repeat(9));
    assert_eq!(
        clean_text(&nine, 8),
        Err(TextError::TooManyMarks { max: 8 })
    );
    assert_eq!(
        clean_text("q\u{0301}", 0),
        Err(TextError::TooManyMarks { max: 0 })
    );
    // NFC composes a + U+0301 into á first, so nine acutes on `a` are eight marks.
    assert!(clean_text(&format!("a{}", "\u{0301}".repeat(9)), 8).is_ok());
    // ZWJ/ZWNJ cannot split a stack into allowed halves.
    let split = format!("q{}\u{200D}{}", "\u{0301}".repeat(5), "\u{0301}".repeat(5));
    assert_eq!(
        clean_text(&split, 8),
        Err(TextError::TooManyMarks { max: 8 })
    );
    // Counted after NFC: decomposed Vietnamese has no marks left once composed.
    assert!(clean_text("Vie\u{0323}\u{0302}t", 0).is_ok());
    // Real stacks fit the default: Biblical Hebrew, Tibetan, Thai, Devanagari.
    for text in ["בְּרֵאשִׁ֖ית", "ཧཱུྃ བསྒྲུབས", "ที่น้ำ", "कुँवर"]
    {
        assert!(
            clean_text(text, DEFAULT_MAX_COMBINING_RUN).is_ok(),
            "{text}"
        );
        assert!(clean_text(text, 4).is_ok(), "{text}");
    }
}

#[test]
fn ascii_scan_matches_a_naive_one() {
    for len in [0usize, 1, 31, 32, 33, 64, 100] {
        for bad in [0u8, 0x1F, 0x7F, b'\r', 0x80] {
            for pos in [0, len / 2, len.saturating_sub(1)] {
                let mut v = vec![b'a'; len];
                if len > 0 {
                    v[pos] = bad;
                }
                let naive = v
                    .iter()
                    .all(|&b| (0x20..0x7F).contains(&b) || b == b'\n' || b == b'\t');
                assert_eq!(
                    is_plain_ascii(&v),
                    naive,
                    "len {len} byte {bad:#x} at {pos}"
                );
            }
        }
    }
}
