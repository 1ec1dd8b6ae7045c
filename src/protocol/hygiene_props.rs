//! Property tests of the name and text rules, on strings that hit the interesting classes.

use std::borrow::Cow;

use proptest::prelude::*;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use unicode_security::general_security_profile::IdentifierType;
use unicode_security::GeneralSecurityProfile;

use super::names::{normalize_name, NameKind};
use super::text::clean_text;

const ZWJ: char = '\u{200D}';
const VS16: char = '\u{FE0F}';

fn is_emoji(c: char) -> bool {
    use unicode_properties::UnicodeEmoji;
    !c.is_ascii() && c.is_emoji_char()
}

/// Strings that hit the interesting classes often, not just random astral code points.
fn tricky_string() -> impl Strategy<Value = String> {
    let tricky = prop::sample::select(vec![
        ' ',
        'a',
        'l',
        'é',
        'I',
        '\u{0430}',
        'Я',
        'α',
        '山',
        'ア',
        '한',
        'ㄅ',
        '1',
        '.',
        '-',
        '\'',
        '\u{0301}',
        '\u{0323}',
        '\u{093C}',
        '\u{20E3}',
        '\u{00A0}',
        '\u{3000}',
        '\u{2028}',
        '\t',
        '\n',
        '\0',
        '\u{1B}',
        '\u{7F}',
        '\u{85}',
        '\u{200B}',
        '\u{200C}',
        '\u{200D}',
        '\u{200E}',
        '\u{202E}',
        '\u{2066}',
        '\u{FE0F}',
        '\u{FE0E}',
        '\u{FEFF}',
        '\u{00AD}',
        '\u{3164}',
        '\u{FFA0}',
        '\u{E0067}',
        '\u{E000}',
        '\u{FDD0}',
        '\u{0378}',
        '🦀',
        '👩',
        '💻',
        '❤',
        '\u{1F3FD}',
        '\u{1F1EB}',
        'ａ',
        'ﬁ',
        '\u{00B5}',
        '\u{2800}',
        '²',
    ]);
    // Mostly characters a name may hold, so that a good share of cases is accepted.
    let common = prop::sample::select(vec![
        'a',
        'l',
        'I',
        'é',
        '1',
        '.',
        '-',
        ' ',
        '山',
        'ア',
        'Я',
        '🦀',
        '👩',
        '💻',
        '❤',
        '\u{200D}',
        '\u{FE0F}',
        '\u{0301}',
        'ａ',
        'ﬁ',
        '\u{1F3FD}',
    ]);
    let ch = prop_oneof![8 => common, 2 => tricky, 1 => any::<char>()];
    prop::collection::vec(ch, 0..24).prop_map(|v| v.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn accepted_names_are_fixed_points_and_clean(raw in tricky_string(), max in 1usize..40) {
        if let Ok(name) = normalize_name(NameKind::User, &raw, max) {
            prop_assert_eq!(normalize_name(NameKind::Room, &name, max), Ok(name.clone()));
            prop_assert!(name.chars().count() <= max);
            prop_assert!(!name.starts_with(' ') && !name.ends_with(' '));
            let chars: Vec<char> = name.chars().collect();
            for (i, &c) in chars.iter().enumerate() {
                let ignorable = c.identifier_type() == Some(IdentifierType::Default_Ignorable);
                prop_assert!(!ignorable || c == ZWJ || c == VS16, "{:?} has {:?}", name, c);
                let gc = c.general_category();
                prop_assert!(gc != GeneralCategory::Control, "{:?} has {:?}", name, c);
                if gc == GeneralCategory::Format {
                    // The one format character allowed: ZWJ between two emoji.
                    prop_assert_eq!(c, ZWJ, "{:?}", name);
                    prop_assert!(i > 0 && i + 1 < chars.len() && is_emoji(chars[i + 1]), "{:?}", name);
                }
            }
        }
    }

    #[test]
    fn names_never_panic(raw in any::<String>(), max in 0usize..64) {
        let _ = normalize_name(NameKind::User, &raw, max);
    }

    #[test]
    fn clean_text_never_panics_and_output_is_safe(raw in tricky_string(), max in 0usize..10) {
        if let Ok(text) = clean_text(&raw, max) {
            prop_assert!(unicode_normalization::is_nfc(&text));
            for c in text.chars() {
                prop_assert!(!c.is_control() || c == '\n' || c == '\t', "{:?}", text);
                prop_assert!(!matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'), "{:?}", text);
            }
            prop_assert!(clean_text(&text, max).is_ok());
        }
    }

    #[test]
    fn clean_text_never_panics_on_anything(raw in any::<String>(), max in 0usize..10) {
        let _ = clean_text(&raw, max);
    }

    #[test]
    fn printable_ascii_is_borrowed(raw in "[ -~\n\t]{0,200}") {
        prop_assert!(matches!(clean_text(&raw, 0), Ok(Cow::Borrowed(_))));
    }
}
