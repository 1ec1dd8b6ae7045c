use super::*;

const MAX: usize = 32;

fn user(raw: &str) -> Result<String, NameError> {
    normalize_name(NameKind::User, raw, MAX)
}

fn problem(raw: &str) -> NameProblem {
    match user(raw) {
        Ok(name) => panic!("{raw:?} was accepted as {name:?}"),
        Err(e) => e.problem,
    }
}

#[track_caller]
fn accepted(raw: &str) -> String {
    user(raw).unwrap_or_else(|e| panic!("{raw:?} refused: {e}"))
}

#[test]
fn plain_and_international_names_are_accepted_unchanged() {
    for name in [
        "alice",
        "Mary Ann",
        "o'brien-smith_2.0",
        "José",
        "Мария",
        "Ελένη",
        "مريم",
        "דוד",
        "山田太郎",
        "やまだ たろう",
        "김민준",
        "Nguyễn Văn An",
        "देवनागरी",
        "བསྒྲུབས",
        "สมชาย",
        "🦀",
        "alice 🦀",
        "❤\u{FE0F}",
        "👩\u{200D}💻 ada",
        "❤\u{FE0F}\u{200D}🔥",
        "👍🏽",
        "🇫🇷 Jean",
        "Tokyo東京とうきょう",
        "Seoul 서울 首爾",
        "q\u{0301}\u{0323}\u{0304}\u{0306}", // four marks (none composes with q): the limit
    ] {
        let expected: String = name.nfc().collect();
        assert_eq!(accepted(name), expected, "{name:?}");
    }
}

#[test]
fn nfd_input_comes_back_composed() {
    let nfd = "Jose\u{0301}";
    assert_eq!(accepted(nfd), "Jos\u{00E9}");
    assert_eq!(accepted("Nguye\u{0302}\u{0303}n"), "Nguyễn");
}

#[test]
fn compatibility_look_alikes_fold_to_plain_letters() {
    assert_eq!(accepted("ａｌｉｃｅ"), "alice");
    assert_eq!(accepted("𝐚𝐥𝐢𝐜𝐞"), "alice");
    assert_eq!(accepted("ﬁona"), "fiona");
    assert_eq!(accepted("Mary\u{00A0}Ann"), "Mary Ann");
    assert_eq!(accepted("山田\u{3000}太郎"), "山田 太郎");
    assert_eq!(accepted("ｱｲ"), "アイ");
}

#[test]
fn empty_and_too_long() {
    assert_eq!(problem(""), NameProblem::Empty);
    assert!(user(&"a".repeat(MAX)).is_ok());
    assert!(user(&"é".repeat(MAX)).is_ok());
    assert_eq!(
        problem(&"a".repeat(MAX + 1)),
        NameProblem::TooLong { max: MAX }
    );
    // Counted after normalisation: 32 NFD é are 64 chars as sent but 32 once composed...
    assert!(user(&"e\u{0301}".repeat(MAX)).is_ok());
    // ...and one ligature that NFKC expands can push a name over.
    assert_eq!(
        problem(&format!("{}ﬃ", "a".repeat(MAX - 2))),
        NameProblem::TooLong { max: MAX }
    );
}

#[test]
fn spaces() {
    assert_eq!(problem(" alice"), NameProblem::EdgeSpace);
    assert_eq!(problem("alice "), NameProblem::EdgeSpace);
    assert_eq!(problem("\u{3000}alice"), NameProblem::EdgeSpace);
    assert_eq!(problem("   "), NameProblem::Blank);
    assert_eq!(problem("\u{2003}"), NameProblem::Blank);
    assert_eq!(problem("Mary  Ann"), NameProblem::DoubleSpace);
    assert_eq!(
        problem("Mary\u{2028}Ann"),
        NameProblem::Whitespace('\u{2028}')
    );
    assert_eq!(
        problem("Mary\u{1680}Ann"),
        NameProblem::Whitespace('\u{1680}')
    );
}

#[test]
fn punctuation_only_is_refused() {
    for name in ["...", "-", "'_'"] {
        assert_eq!(problem(name), NameProblem::NoLetterOrDigit, "{name:?}");
    }
    assert!(user("42").is_ok());
    assert!(user("$$").is_ok());
}

#[test]
fn control_characters() {
    for c in [
        '\0', '\u{7}', '\t', '\n', '\r', '\u{1B}', '\u{7F}', '\u{85}', '\u{9B}',
    ] {
        assert_eq!(
            problem(&format!("al{c}ice")),
            NameProblem::Control(c),
            "{c:?}"
        );
    }
}

#[test]
fn invisible_and_format_characters() {
    for c in [
        '\u{00AD}',
        '\u{034F}',
        '\u{061C}',
        '\u{115F}',
        '\u{1160}',
        '\u{17B4}',
        '\u{180B}',
        '\u{180E}',
        '\u{200B}',
        '\u{200C}',
        '\u{200D}',
        '\u{200E}',
        '\u{200F}',
        '\u{202A}',
        '\u{202E}',
        '\u{2060}',
        '\u{2064}',
        '\u{2066}',
        '\u{2069}',
        '\u{206A}',
        '\u{3164}',
        '\u{FE00}',
        '\u{FE0E}',
        '\u{FE0F}',
        '\u{FEFF}',
        '\u{FFA0}',
        '\u{FFF9}',
        '\u{0600}',
        '\u{1D173}',
        '\u{E0001}',
        '\u{E0041}',
        '\u{E0100}',
        '\u{2800}',
        '\u{1D159}',
        '\u{FFFC}',
    ] {
        assert_eq!(
            problem(&format!("ali{c}ce")),
            NameProblem::Invisible(c),
            "{c:?}"
        );
        assert_eq!(problem(&format!("{c}")), NameProblem::Invisible(c), "{c:?}");
    }
    assert_eq!(problem("alice\u{200B}"), NameProblem::Invisible('\u{200B}'));
    assert_eq!(problem("\u{202E}evil"), NameProblem::Invisible('\u{202E}'));
    // The error names the code point as sent, although NFKC would turn it into U+1160.
    assert_eq!(problem("\u{3164}"), NameProblem::Invisible('\u{3164}'));
}

#[test]
fn zwj_and_vs16_only_inside_emoji_sequences() {
    assert_eq!(problem("a\u{200D}b"), NameProblem::Invisible('\u{200D}'));
    assert_eq!(problem("🦀\u{200D}"), NameProblem::Invisible('\u{200D}'));
    assert_eq!(problem("\u{200D}🦀"), NameProblem::Invisible('\u{200D}'));
    assert_eq!(problem("🦀\u{200D}a"), NameProblem::Invisible('\u{200D}'));
    assert_eq!(
        problem("🦀\u{200D}\u{200D}🦀"),
        NameProblem::Invisible('\u{200D}')
    );
    assert_eq!(problem("a\u{FE0F}"), NameProblem::Invisible('\u{FE0F}'));
    assert_eq!(problem("1\u{FE0F}"), NameProblem::Invisible('\u{FE0F}'));
    assert_eq!(
        problem("❤\u{FE0F}\u{FE0F}"),
        NameProblem::Invisible('\u{FE0F}')
    );
    // Subdivision flags need tag characters, which are refused.
    assert_eq!(
        problem("🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}"),
        NameProblem::Invisible('\u{E0067}')
    );
}

#[test]
fn private_use_unassigned_and_noncharacters() {
    assert_eq!(problem("a\u{E000}"), NameProblem::PrivateUse('\u{E000}'));
    assert_eq!(problem("a\u{F0000}"), NameProblem::PrivateUse('\u{F0000}'));
    for c in [
        '\u{0378}',
        '\u{2065}',
        '\u{FDD0}',
        '\u{FFFE}',
        '\u{FFFF}',
        '\u{10FFFF}',
        '\u{E0080}',
    ] {
        assert_eq!(
            problem(&format!("a{c}")),
            NameProblem::Unassigned(c),
            "{c:?}"
        );
    }
}

#[test]
fn combining_marks() {
    assert_eq!(
        problem("\u{0301}alice"),
        NameProblem::LeadingMark('\u{0301}')
    );
    assert_eq!(
        problem("Mary \u{0301}Ann"),
        NameProblem::LeadingMark('\u{0301}')
    );
    let zalgo = format!("a{}", "\u{0301}".repeat(20));
    assert_eq!(
        problem(&zalgo),
        NameProblem::TooManyMarks {
            max: NAME_MAX_COMBINING_RUN
        }
    );
    let five = "q\u{0301}\u{0323}\u{0304}\u{0306}\u{0330}";
    assert_eq!(
        problem(five),
        NameProblem::TooManyMarks {
            max: NAME_MAX_COMBINING_RUN
        }
    );
    // Marks on a punctuation base, and on each of several letters, are fine.
    assert!(user("a\u{0301}b\u{0301}c\u{0301}").is_ok());
}

#[test]
fn mixed_scripts() {
    // Cyrillic а (U+0430) in a Latin name.
    let e = user("\u{0430}lice").unwrap_err();
    assert_eq!(
        e.problem,
        NameProblem::MixedScripts {
            first: '\u{0430}',
            second: 'l'
        }
    );
    assert_eq!(
        e.to_string(),
        "user name mixes Cyrillic (U+0430) and Latin (U+006C) letters; use one script \
         (Latin may only be combined with Han, Kana, Hangul or Bopomofo)"
    );
    assert!(matches!(
        problem("p\u{0430}ypal"),
        NameProblem::MixedScripts { .. }
    ));
    assert!(matches!(
        problem("Ελένη Мария"),
        NameProblem::MixedScripts { .. }
    ));
    assert!(matches!(
        problem("alice αβ"),
        NameProblem::MixedScripts { .. }
    ));
    // Japanese with Hangul, or Cyrillic with Han, is not one of the allowed combinations.
    assert!(matches!(
        problem("やまだ 김"),
        NameProblem::MixedScripts { .. }
    ));
    assert!(matches!(
        problem("山田 Мария"),
        NameProblem::MixedScripts { .. }
    ));
    // Micro sign is Common, but NFKC makes it Greek mu: checked after folding.
    assert!(matches!(
        problem("\u{00B5}alice"),
        NameProblem::MixedScripts { .. }
    ));
    // Allowed combinations, and Common/Inherited characters with anything.
    for name in [
        "Taro 山田",
        "ハロー Kitty 猫",
        "Chen 陳 ㄔㄣ",
        "Kim 김 金",
        "Мария 2000 🦀",
        "Ἀθηνᾶ-3",
    ] {
        assert!(user(name).is_ok(), "{name:?}: {:?}", user(name));
    }
}

#[test]
fn messages_and_codes() {
    let e = user("alice\u{200B}").unwrap_err();
    assert_eq!(
        e.to_string(),
        "user name must not contain invisible or formatting characters (U+200B)"
    );
    assert_eq!(e.code(), "invisible_char");
    let e = normalize_name(NameKind::Room, &"r".repeat(40), 32).unwrap_err();
    assert_eq!(e.to_string(), "room name is longer than 32 characters");
    assert_eq!(e.code(), "too_long");
    assert_eq!(
        user("a\u{1F}").unwrap_err().to_string(),
        "user name must not contain control characters (U+001F)"
    );
    assert_eq!(
        user("a\u{10FFFF}").unwrap_err().to_string(),
        "user name must not contain unassigned characters or noncharacters (U+10FFFF)"
    );
}

#[test]
fn confusable_keys() {
    assert_eq!(confusable_key("paypaI"), confusable_key("paypal"));
    assert_eq!(confusable_key("Alice"), confusable_key("alice"));
    assert_eq!(confusable_key("\u{0430}lice"), confusable_key("alice"));
    assert_eq!(
        confusable_key("\u{0430}\u{0440}\u{0435}"),
        confusable_key("ape")
    );
    assert_eq!(confusable_key("👩\u{200D}💻"), confusable_key("👩💻"));
    assert_ne!(confusable_key("alice"), confusable_key("bob"));
}
