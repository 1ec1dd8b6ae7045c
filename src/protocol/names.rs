//! User and room names that cannot pose as someone else.
//!
//! Names are identities: people recognise each other by how a name *looks*, so anything that
//! makes two different names look alike, or a name look empty, is refused. [`normalize_name`]
//! folds look-alikes with NFKC, checks the folded name against the rules listed on
//! [`NameProblem`], and returns the folded name — what the server stores, compares and shows.
//! The Unicode data comes from the unicode-rs crates: `unicode-normalization` (NFKC),
//! `unicode-properties` (general category, emoji), `unicode-security` (UTS #39 identifier type,
//! augmented script sets, confusable skeletons) and `unicode-script`.

use std::fmt;

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{
    GeneralCategory, GeneralCategoryGroup, UnicodeEmoji, UnicodeGeneralCategory,
};
use unicode_script::{Script, UnicodeScript};
use unicode_security::general_security_profile::IdentifierType;
use unicode_security::mixed_script::AugmentedScriptSet;
use unicode_security::GeneralSecurityProfile;

/// How many combining marks may follow one base character in a name.
///
/// After NFKC, Latin and Vietnamese letters are precomposed (0 marks; NFD Vietnamese stacks 2).
/// Real names need at most 3: Devanagari nukta + vowel sign + candrabindu, Thai vowel + tone,
/// Hebrew dagesh + vowel + shin dot, Tibetan stacks such as སྒྲུ (3 below/above ས). Four leaves one
/// spare; names are short and shown everywhere, so they get a tighter limit than chat text.
pub const NAME_MAX_COMBINING_RUN: usize = 4;

/// Blank-looking symbols that no Unicode property flags: they are So (other symbol), not
/// Default_Ignorable, yet render as empty space and are the classic "invisible name" trick.
/// This is the one hand-written table in the module.
const BLANK_SYMBOLS: [char; 3] = [
    '\u{2800}',  // BRAILLE PATTERN BLANK
    '\u{1D159}', // MUSICAL SYMBOL NULL NOTEHEAD
    '\u{FFFC}',  // OBJECT REPLACEMENT CHARACTER
];

const ZWJ: char = '\u{200D}';
const VS16: char = '\u{FE0F}';

/// Which kind of name is being checked; only changes the wording of errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameKind {
    User,
    Room,
}

impl NameKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NameKind::User => "user",
            NameKind::Room => "room",
        }
    }
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused name: `Display` gives a sentence for people, e.g.
/// `user name must not contain invisible or formatting characters (U+200B)`;
/// [`NameError::code`] a short machine string for the wire and for metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} name {problem}")]
pub struct NameError {
    pub kind: NameKind,
    pub problem: NameProblem,
}

impl NameError {
    pub fn code(&self) -> &'static str {
        self.problem.code()
    }
}

/// Why a name was refused. Code points are those of the name *as sent* for character-level
/// problems (so the sender can find them), and of the NFKC form for the structural ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameProblem {
    #[error("must not be empty")]
    Empty,
    /// Counted in chars (code points) of the NFKC form, which is what is stored.
    #[error("is longer than {max} characters")]
    TooLong { max: usize },
    /// Cc: C0/C1 controls, DEL, tab, newline.
    #[error("must not contain control characters ({})", U(*.0))]
    Control(char),
    /// Cf, Default_Ignorable_Code_Point, and U+2800, U+1D159, U+FFFC: all render as nothing (or reorder
    /// text, for bidi controls), so they make distinct names look the same or a name look blank.
    /// ZWJ is allowed between two emoji and VS16 right after one: see [`normalize_name`].
    #[error("must not contain invisible or formatting characters ({})", U(*.0))]
    Invisible(char),
    /// Co: renders differently per font, or not at all.
    #[error("must not contain private-use characters ({})", U(*.0))]
    PrivateUse(char),
    /// Cn: unassigned code points and noncharacters have no glyph today and may get one tomorrow.
    #[error("must not contain unassigned characters or noncharacters ({})", U(*.0))]
    Unassigned(char),
    /// Any whitespace but U+0020 (after NFKC, which already turns NBSP, ideographic space and
    /// the U+2000 spaces into U+0020): line/paragraph separators, ogham space mark.
    #[error("must not contain whitespace other than plain spaces ({})", U(*.0))]
    Whitespace(char),
    #[error("must not be blank")]
    Blank,
    #[error("must not start or end with a space")]
    EdgeSpace,
    /// "Mary  Ann" renders like "Mary Ann" in HTML, which collapses runs of spaces.
    #[error("must not contain two spaces in a row")]
    DoubleSpace,
    /// Only punctuation (e.g. "...", "-"): nothing to recognise the name by.
    #[error("must contain at least one letter, digit or symbol")]
    NoLetterOrDigit,
    /// A mark at the start or after a space has no base and floats over its neighbour.
    #[error("must not start a word with a combining mark ({})", U(*.0))]
    LeadingMark(char),
    #[error("must not stack more than {max} combining marks on one character")]
    TooManyMarks { max: usize },
    /// UTS #39 "highly restrictive" is violated: see [`normalize_name`].
    #[error(
        "mixes {} ({}) and {} ({}) letters; use one script (Latin may only be combined with Han, Kana, Hangul or Bopomofo)",
        script_name(*.first), U(*.first), script_name(*.second), U(*.second)
    )]
    MixedScripts { first: char, second: char },
}

impl NameProblem {
    pub fn code(&self) -> &'static str {
        match self {
            NameProblem::Empty => "empty",
            NameProblem::TooLong { .. } => "too_long",
            NameProblem::Control(_) => "control_char",
            NameProblem::Invisible(_) => "invisible_char",
            NameProblem::PrivateUse(_) => "private_use_char",
            NameProblem::Unassigned(_) => "unassigned_char",
            NameProblem::Whitespace(_) => "bad_whitespace",
            NameProblem::Blank => "blank",
            NameProblem::EdgeSpace => "edge_space",
            NameProblem::DoubleSpace => "double_space",
            NameProblem::NoLetterOrDigit => "no_letter_or_digit",
            NameProblem::LeadingMark(_) => "leading_mark",
            NameProblem::TooManyMarks { .. } => "too_many_marks",
            NameProblem::MixedScripts { .. } => "mixed_scripts",
        }
    }
}

/// Checks a user or room name and returns its normalised form.
///
/// **NFKC, then check.** NFKC rather than NFC because a name is an identity: NFKC folds
/// compatibility look-alikes such as fullwidth `ａｌｉｃｅ`, mathematical `𝐚𝐥𝐢𝐜𝐞`, ligatures,
/// circled and superscript letters, halfwidth kana and NBSP into their plain forms, so they can no
/// longer pose as another user; NFC would keep them distinct but looking the same. The cost is
/// fidelity (`x²` becomes `x2`), which matters little for a name. Fullwidth `ａｌｉｃｅ` is
/// therefore *accepted* as `alice` (the registry then sees the clash with an existing `alice`).
/// The checks run on the folded form, so what is checked is exactly what is stored, and the
/// function is idempotent: an accepted name normalises to itself.
///
/// **Scripts (UTS #39 "highly restrictive").** Letters must come from one script, or from one
/// of Latin+Han+Hiragana+Katakana, Latin+Han+Bopomofo, Latin+Han+Hangul; Common and Inherited
/// characters (digits, punctuation, emoji, combining accents) go with anything. So `Мария` and
/// `山田太郎` pass and `аlice` (Cyrillic а) does not. This is `unicode-security`'s own
/// restriction-level algorithm, minus its identifier-character check (which would refuse spaces,
/// apostrophes and emoji). It cannot catch *whole-script* confusables (Cyrillic-only `аре` vs
/// Latin `ape`); compare [`confusable_key`]s in the registry for that.
///
/// **Emoji.** Emoji are symbols and allowed. ZWJ (U+200D) is allowed only between two emoji, so
/// sequences like 👩‍💻 work but ZWJ can never hide inside or around letters; VS16 (U+FE0F) only
/// right after a non-ASCII emoji (keyboards add it to ❤️). Other variation selectors and tag
/// characters are refused, which also refuses the subdivision flags (England, Scotland, Wales);
/// country flags (regional-indicator pairs) are fine. ZWNJ/ZWJ inside Persian or Indic words are
/// refused too: telling their legitimate uses apart needs joining-type data (IDNA CONTEXTJ) that
/// none of these crates provide.
pub fn normalize_name(kind: NameKind, raw: &str, max_chars: usize) -> Result<String, NameError> {
    let err = |problem| NameError { kind, problem };
    if raw.is_empty() {
        return Err(err(NameProblem::Empty));
    }
    // Refuse bad characters as sent, so the error names the code point the sender typed (NFKC
    // turns U+3164 HANGUL FILLER into U+1160, for one); the folded form is checked again below.
    check_chars(raw).map_err(err)?;
    let mut name = String::with_capacity(raw.len());
    // Streamed, so a huge input costs no more than `max_chars` characters of output.
    for (i, c) in raw.nfkc().enumerate() {
        if i >= max_chars {
            return Err(err(NameProblem::TooLong { max: max_chars }));
        }
        name.push(c);
    }
    if name != raw {
        check_chars(&name).map_err(err)?;
    }
    check_structure(&name).map_err(err)?;
    check_scripts(&name).map_err(err)?;
    Ok(name)
}

/// A key for "do these two names look alike?": UTS #39 skeletons, case-insensitive.
///
/// Two accepted names with equal keys are confusable (`paypaI`/`paypal`, `Alice`/`аlice`,
/// `👩‍💻`/`👩💻`); a registry should refuse a new name whose key is taken. It is a comparison key,
/// never to be displayed. Skeleton first (so `I` and `l` merge before case folding separates
/// them), then lowercase, then skeleton again for lowercase look-alikes.
pub fn confusable_key(name: &str) -> String {
    let first: String = unicode_security::skeleton(name).collect();
    unicode_security::skeleton(&first.to_lowercase()).collect()
}

/// The character-level rules (all but whitespace, which NFKC may fix), run on the name as sent
/// and on its NFKC form; see [`NameProblem`] for why each class is refused.
fn check_chars(s: &str) -> Result<(), NameProblem> {
    // `vs_ok`: the previous character was an emoji (VS16 may follow). `zwj_ok`: the previous
    // emoji, possibly with its VS16, ended just here (ZWJ may follow, if an emoji comes next).
    let (mut vs_ok, mut zwj_ok) = (false, false);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii() {
            // ASCII is never Cf, Co, Cn, Default_Ignorable or (for these rules) an emoji.
            if c.is_ascii_control() {
                return Err(NameProblem::Control(c));
            }
            (vs_ok, zwj_ok) = (false, false);
            continue;
        }
        let gc = c.general_category();
        match gc {
            GeneralCategory::Control => return Err(NameProblem::Control(c)),
            GeneralCategory::PrivateUse => return Err(NameProblem::PrivateUse(c)),
            GeneralCategory::Unassigned | GeneralCategory::Surrogate => {
                return Err(NameProblem::Unassigned(c))
            }
            _ => {}
        }
        if gc == GeneralCategory::Format
            || c.identifier_type() == Some(IdentifierType::Default_Ignorable)
            || BLANK_SYMBOLS.contains(&c)
        {
            let allowed = match c {
                VS16 => vs_ok,
                ZWJ => zwj_ok && chars.peek().is_some_and(|&next| is_emoji(next)),
                _ => false,
            };
            if !allowed {
                return Err(NameProblem::Invisible(c));
            }
            vs_ok = false;
            zwj_ok &= c == VS16;
            continue;
        }
        vs_ok = is_emoji(c);
        zwj_ok = vs_ok;
    }
    Ok(())
}

/// Spaces, visible content and combining marks, on the NFKC form.
fn check_structure(s: &str) -> Result<(), NameProblem> {
    if s.chars().all(|c| c == ' ') {
        return Err(NameProblem::Blank);
    }
    if s.starts_with(' ') || s.ends_with(' ') {
        return Err(NameProblem::EdgeSpace);
    }
    if s.contains("  ") {
        return Err(NameProblem::DoubleSpace);
    }
    let (mut run, mut prev, mut visible) = (0, ' ', false);
    for c in s.chars() {
        // Every Zs, Zl and Zp character is White_Space, so this covers all separators.
        if c != ' ' && c.is_whitespace() {
            return Err(NameProblem::Whitespace(c));
        }
        if is_mark(c) {
            if prev == ' ' {
                return Err(NameProblem::LeadingMark(c));
            }
            run += 1;
            if run > NAME_MAX_COMBINING_RUN {
                return Err(NameProblem::TooManyMarks {
                    max: NAME_MAX_COMBINING_RUN,
                });
            }
        } else {
            run = 0;
            visible = visible
                || c.is_ascii_alphanumeric()
                || matches!(
                    c.general_category_group(),
                    GeneralCategoryGroup::Letter
                        | GeneralCategoryGroup::Number
                        | GeneralCategoryGroup::Symbol
                );
        }
        prev = c;
    }
    if !visible {
        return Err(NameProblem::NoLetterOrDigit);
    }
    Ok(())
}

/// UTS #39 highly-restrictive check, as in `unicode_security::RestrictionLevelDetection` but
/// without its `identifier_allowed` precondition (names are not programming identifiers).
///
/// The augmented script set of a string is the intersection of its characters' sets, where Han
/// also counts as Japanese, Korean and Han-with-Bopomofo, and Common/Inherited count as every
/// script. A non-empty intersection means single-script. Otherwise the name may still be Latin
/// plus one CJK writing system: the intersection over its non-Latin characters must keep one of
/// the Japanese, Korean or Bopomofo flags. Intersections only shrink, so the first character at
/// which the check fails is the one to report.
fn check_scripts(s: &str) -> Result<(), NameProblem> {
    if s.is_ascii() {
        return Ok(()); // Latin letters and Common characters only.
    }
    let latin = AugmentedScriptSet::for_char('a');
    let mut all = AugmentedScriptSet::default();
    let mut non_latin = AugmentedScriptSet::default();
    let mut first_scripted = None;
    for c in s.chars() {
        let set = match c {
            'a'..='z' | 'A'..='Z' => latin, // the table lookup costs ~70 ns
            _ if c.is_ascii() => continue,  // ASCII digits and punctuation are Common
            _ => AugmentedScriptSet::for_char(c),
        };
        if set.is_all() {
            continue;
        }
        let first = *first_scripted.get_or_insert(c);
        all.intersect_with(set);
        if !set.base.contains_script(Script::Latin) {
            non_latin.intersect_with(set);
        }
        if all.is_empty() && !(non_latin.jpan || non_latin.kore || non_latin.hanb) {
            return Err(NameProblem::MixedScripts { first, second: c });
        }
    }
    Ok(())
}

/// General_Category=Mark (Mn, Mc, Me); nothing below U+0300 is one.
pub(super) fn is_mark(c: char) -> bool {
    c >= '\u{300}' && unicode_normalization::char::is_combining_mark(c)
}

/// Emoji for the ZWJ/VS16 rules: `Emoji=Yes`, minus ASCII (`0-9#*` are `Emoji=Yes` for keycap
/// sequences, and `1\u{FE0F}` would look just like `1`).
fn is_emoji(c: char) -> bool {
    !c.is_ascii() && c.is_emoji_char()
}

/// Formats a code point the way the Unicode standard writes it: `U+200B`.
pub(super) struct U(pub(super) char);

impl fmt::Display for U {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "U+{:04X}", u32::from(self.0))
    }
}

fn script_name(c: char) -> &'static str {
    c.script().full_name()
}

#[cfg(test)]
#[path = "names_tests.rs"]
mod tests;
